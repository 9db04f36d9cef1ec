"""Frames as a sequence: which ones a worker renders (`shards`, `frame_range`), per-frame curves, shot cuts, streaming."""
