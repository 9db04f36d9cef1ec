"""Typed numpy array aliases for annotations (``mypy --strict`` rejects a bare ``np.ndarray``).

Use the most specific alias that is true of every value that reaches the annotation; ``Array`` where the
dtype varies (image pixels may be uint8, uint16, float16 or float32) or is decided by the caller.
"""
from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

Array: TypeAlias = NDArray[Any]
"""Any dtype: pixels as read (uint8/uint16/float), values whose dtype follows the caller's."""
FloatArray: TypeAlias = NDArray[np.float32]
"""float32: network crops, frames in the pipeline's working precision, masks and weights."""
Float64Array: TypeAlias = NDArray[np.float64]
"""float64: geometry (affine matrices, landmarks, templates) and curve values."""
IntArray: TypeAlias = NDArray[np.int64]
"""int64: frame numbers (curve keys)."""
BoolArray: TypeAlias = NDArray[np.bool_]
"""bool: per-pixel selections."""
UInt8Array: TypeAlias = NDArray[np.uint8]
"""uint8: 8-bit pixels (the face detector's input, unfiltered PNG bytes)."""
