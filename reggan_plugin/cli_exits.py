"""How a `reggan-plugin` command ends: typed errors as one line and their exit code (`exit_on_error`), Ctrl-C and
SIGTERM as a quiet 130 (`stops_on_signals`)."""
from __future__ import annotations

import errno
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeVar

import click

from .errors import RegganError

EXIT_FRAMES_FAILED = 1
EXIT_INTERRUPTED = 130

T = TypeVar("T")

_NOT_THE_INPUT = (errno.ENOSPC, errno.EIO, errno.EDQUOT)  # the machine's trouble, not a bad path given


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Map typed errors to one-line messages and exit codes (every sub-command runs inside this). An OSError no
    check foresaw (a file in the way, a read-only mount, /proc) is the path and the reason in one line: exit 2,
    or 1 for a full disk or an I/O error."""
    try:
        yield
    except RegganError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if _caused_by_interrupt(exc):  # a library turned the interrupt into an error of its own (an import's)
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        if isinstance(exc, EOFError):  # a file that ends early; click would report it as an abort
            click.echo(f"error: a file ended early: {exc}", err=True)
            sys.exit(2)
        if not isinstance(exc, OSError):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1 if exc.errno in _NOT_THE_INPUT else 2)


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while an interrupt was being handled, or because of one."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ or link.__context__
    return False


def _stop(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C or SIGTERM: stop like Ctrl-C (the frames already finished are kept, nothing half-written is); further
    signals are ignored so that a second Ctrl-C cannot break the clean-up and leave temp files behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextmanager
def stops_on_signals(restore: bool = True) -> Iterator[None]:
    """`_stop` on SIGINT and SIGTERM while a command runs; afterwards the previous handlers (a host, a test run), or,
    when the process ends with the command (``restore`` False), none: a signal between the command's end and the
    process's exit would otherwise kill it with the default handler after its work is done."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _stop)
    try:
        yield
    finally:
        try:
            _hand_back(previous, restore)
        except KeyboardInterrupt:  # a signal as the command ends, its work done: it ends as it would have
            _hand_back(previous, restore)


def _hand_back(previous: dict[signal.Signals, Any], restore: bool) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler if restore else signal.SIG_IGN)


def run_or_exit(action: Callable[[], T]) -> T:
    """Run ``action()``; typed errors become a one-line message and their exit code."""
    with exit_on_error():
        return action()
