"""Typed errors: library code raises these; only the CLI maps them to exit codes and one-line messages."""
from __future__ import annotations

from pathlib import Path


def shown(path: str | Path) -> str:
    """A path as printed in one line: as it is when printable, else escaped like a Python string (a newline, a
    terminal escape or an unpaired byte in a file name can neither break the line nor forge another report line)."""
    text = str(path)
    if text.isprintable():
        return text
    return repr(text)[1:-1]


class RegganError(Exception):
    """Base class. ``str(err)`` is a one-line message fit for a user."""

    exit_code = 1


class InputError(RegganError):
    """A bad input file or directory; names the path and the reason."""

    exit_code = 2

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}" if self.path is not None else reason)


class UsageError(RegganError):
    """A bad option value (unknown expression, malformed --shard, ...)."""

    exit_code = 2


class ModelError(RegganError):
    """A model file that is missing, unreadable or whose metadata is wrong."""

    exit_code = 3

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{shown(self.path)}: {reason}")


class BackendUnavailable(RegganError):
    """An explicitly requested backend cannot run here; says what is missing and how to fix it."""

    exit_code = 4


class NumericalError(RegganError):
    """A backend produced NaN or inf (typically fp16 overflow)."""

    exit_code = 5
