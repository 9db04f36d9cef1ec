"""A text file the user gives (faces.json, a curves CSV), read whole or refused in one line naming it and the reason."""
from __future__ import annotations

from pathlib import Path

from .errors import InputError


def read_text_input(path: Path, what: str, expected: str, encoding: str = "utf-8") -> str:
    """``path``'s text, or InputError: not found, a directory, not UTF-8, unreadable, or empty. ``what``: how the file
    is named in the message ("faces file"); ``expected``: what it should hold ("a JSON object")."""
    try:
        text = path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise InputError(path, f"{what} is a directory, expected {expected}") from None
    except UnicodeDecodeError:
        raise InputError(path, f"{what} is not UTF-8 text (expected {expected})") from None
    except OSError as err:
        raise InputError(path, f"cannot read {what}: {err.strerror or err}") from None
    if not text.strip():
        raise InputError(path, f"{what} is empty (expected {expected})")
    return text
