"""Pixel maths on whole pictures, with no notion of a face: luma and smooth ramps (`tone`), blur and grain (`filters`)."""
