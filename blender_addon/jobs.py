"""Background jobs: the runtime works in a thread, bpy is touched only on the main thread.

A `Job` runs `work(progress, cancel)` in a `threading.Thread`; the worker never touches bpy. Progress,
the result and errors travel back through a `queue.Queue` that `drain` empties on the main thread
(called by a `bpy.app.timers` timer, or by hand in tests and in background mode where timers do not
run). `finish(result)` then runs on the main thread and may write into bpy data. Cancel sets a
`threading.Event` that the worker checks between frames; a cancelled job is not an error.
"""
from __future__ import annotations

import logging
import queue
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Work = Callable[[Callable[[int, int], None], threading.Event], Any]  # runs in the worker thread


@dataclass(frozen=True)
class Outcome:
    """How a job that ran to its end went: "done" (everything edited), "partial" (some frames failed or had no face;
    the rest was done), "nothing" (nothing was edited: no face found). A script sees "done" and "partial" as
    {'FINISHED'} ("partial" with a WARNING report) and "nothing" as {'CANCELLED'} with a WARNING report, as Blender's
    own operators return CANCELLED when they had nothing to act on."""

    message: str
    state: Literal["done", "partial", "nothing"] = "done"


Finish = Callable[[Any], str | Outcome]  # runs on the main thread; a one-line message for the panel (str: done)

TIMER_INTERVAL = 0.1  # seconds between drains while a job runs


@dataclass
class JobStatus:
    """What the panel shows about the current or last job."""

    label: str = ""
    state: str = "idle"  # idle | running | cancelling | done | partial | nothing | cancelled | failed
    done: int = 0
    total: int = 0
    message: str = ""
    hint: str = ""  # how to fix a failure, when known

    @property
    def factor(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def active(self) -> bool:
        return self.state in ("running", "cancelling")


@dataclass
class Job:
    label: str
    work: Work
    finish: Finish
    on_cancel: Callable[[], None] | None = None  # main thread, after a cancelled job stopped
    cancel: threading.Event = field(default_factory=threading.Event)
    messages: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"reggan: {self.label}", daemon=True)
        self.thread.start()

    def _progress(self, done: int, total: int) -> None:
        self.messages.put(("progress", (done, total)))

    def _run(self) -> None:
        try:
            result = self.work(self._progress, self.cancel)
        except InterruptedError:
            self.messages.put(("cancelled", None))
        except Exception as exc:  # a worker thread must hand every failure to the main thread, or it is lost
            from reggan_plugin.errors import RegganError

            if not isinstance(exc, RegganError):
                log.error("RegGAN job %r failed:\n%s", self.label, traceback.format_exc())
            self.messages.put(("error", exc))
        else:
            self.messages.put(("result", result))


# The runtime's messages name the command line's options; the panel names its own fields. Most specific first.
PANEL_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"give --faces or --region"), "choose Faces: From Scene or Box"),
    (re.compile(r"\S*reggan-faces-[^\s/\\]*\.json marks it \[\], without a face"),
     "From Scene: the head is not in the camera's view"),
    (re.compile(r"--subject render\b"), "Subject: Render"),
    (re.compile(r"--subject auto\b"), "Subject: Auto"),
    (re.compile(r"--out\b"), "Output folder"),
    (re.compile(r"--frames\b"), "Frames folder"),
    (re.compile(r"--region\b"), "Box"),
    (re.compile(r"--faces\b"), "faces file"),
    (re.compile(r"--model\b"), "Model File"),
    (re.compile(r"--backend\b"), "Backend"),
    (re.compile(r"--colorspace\b"), "colour space"),
)


def panel_words(text: str) -> str:
    """A runtime message in the panel's words (`--out` is the Output folder, ...)."""
    for pattern, words in PANEL_WORDS:
        text = pattern.sub(words, text)
    return text


def _hint(exc: BaseException) -> str:
    from reggan_plugin.errors import BackendUnavailable, ModelError

    if isinstance(exc, ModelError):
        return "Choose a model file in the panel or in the add-on preferences"
    if isinstance(exc, BackendUnavailable):
        return "Pick the CPU or Auto backend, or install the missing GPU library"
    if isinstance(exc, LookupError):
        return "Check the face source settings (camera, head object, bone, vertex group)"
    return ""


class JobManager:
    """One job at a time (a second Apply while one runs is refused with a message)."""

    def __init__(self) -> None:
        self.job: Job | None = None
        self.status = JobStatus()
        self.listeners: list[Callable[[JobStatus], None]] = []  # main thread: progress bar, redraws

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self, job: Job, total: int = 0) -> None:
        if self.job is not None:
            raise RuntimeError(f"RegGAN is busy with {self.job.label!r}; cancel it or wait")
        self.job = job
        self.status = JobStatus(label=job.label, state="running", total=total)
        job.start()
        self._notify()

    def request_cancel(self) -> bool:
        if self.job is None:
            return False
        self.job.cancel.set()
        self.status.state = "cancelling"
        self._notify()
        return True

    def drain(self) -> bool:
        """Handle everything the worker sent (main thread). True while a job is still running."""
        job = self.job
        if job is None:
            return False
        while True:
            try:
                kind, value = job.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                self.status.done, self.status.total = value
            else:
                self._end(job, kind, value)
                break
        self._notify()
        return self.job is not None

    def _end(self, job: Job, kind: str, value: Any) -> None:
        self.job = None
        status = self.status
        if kind == "result":
            try:
                outcome = job.finish(value)
                outcome = Outcome(outcome) if isinstance(outcome, str) else outcome
                status.message = panel_words(outcome.message)
                status.state = "cancelled" if job.cancel.is_set() and getattr(value, "cancelled", False) else outcome.state
            except (ReferenceError, LookupError, RuntimeError, OSError) as exc:  # bpy data gone, file trouble
                status.state, status.message, status.hint = "failed", panel_words(str(exc)), _hint(exc)
        elif kind == "cancelled":
            status.state, status.message = "cancelled", f"{job.label}: cancelled"
            if job.on_cancel is not None:
                job.on_cancel()
        else:
            status.state, status.message, status.hint = "failed", panel_words(f"{job.label}: {value}"), _hint(value)
        if status.state == "failed":  # the panel may not be on screen: the console always gets it
            print(f"RegGAN: {status.message}" + (f" ({status.hint})" if status.hint else ""), flush=True)
        log.info("RegGAN %s: %s", status.state, status.message)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel and forget the running job without calling its finish (the add-on is being disabled)."""
        job = self.job
        if job is None:
            return
        job.cancel.set()
        if job.thread is not None:
            job.thread.join(timeout)
        self.job = None
        self.status = JobStatus(label=job.label, state="cancelled", message=f"{job.label}: cancelled")

    def wait(self, timeout: float | None = 60.0, report: Callable[[JobStatus], None] | None = None) -> JobStatus:
        """Drain until the job ends (tests, background mode); `report` sees each change of progress.
        Raises TimeoutError (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        shown = -1
        while self.drain():
            if report is not None and self.status.done != shown:
                shown = self.status.done
                report(self.status)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"RegGAN job {self.status.label!r} still running after {timeout} s")
            time.sleep(0.01)
        return self.status

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self.status)


JOBS = JobManager()
