"""The expression vocabulary shared by training, export, runtime and the add-on.

The order is part of the model artifact's contract: a model stores its own list in its metadata and
the runtime always trusts that list; this tuple is only the default for new models.
"""
from __future__ import annotations

from typing import Literal, get_args

Expression = Literal["neutral", "happy", "sad", "surprised", "angry", "disgusted", "fearful"]
EXPRESSIONS: tuple[str, ...] = get_args(Expression)
