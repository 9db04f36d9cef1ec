"""The face's edit: the network's change on the crops, and the stages that carry it into the frame (`chain`)."""
