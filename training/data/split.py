"""A deterministic split by identity: no person is in two of train / val / test.

Each identity key ("<dataset>/<person>") is hashed (SHA-256 with a fixed salt) to a number u in
[0, 1): u < test_fraction is test, the next val_fraction is val, the rest train. The split of a
person never depends on which other people are in the folder, so adding renders never moves
anyone across the line, and the evaluation can recompute it from the names alone.
"""
from __future__ import annotations

import hashlib
from typing import Literal, get_args

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
SALT = "reggan-split-v1"


def identity_unit(identity: str, salt: str = SALT) -> float:
    digest = hashlib.sha256(f"{salt}:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def in_choosing_half(identity: str) -> bool:
    """Whether a photographed person (``folder/stem``) is in the half of a photo set that fits and chooses (photo
    gains, the photo reader, training); the other half checks them."""
    return identity_unit(identity) < 0.5


def split_of(identity: str, val_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = SALT) -> Split:
    u = identity_unit(identity, salt)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"
