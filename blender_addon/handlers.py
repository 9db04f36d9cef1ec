"""The render hook: with "Apply After Each Rendered Frame" on, every frame an animation render writes
is edited into a sibling folder (<output folder>_reggan_<expression>/, or _reggan_mix/ with the Mix sliders,
_reggan_channels/ with the Channel sliders, same file name); with "Use Mix Sliders" or "Use Channel Sliders" each frame
gets the sliders at its own frame (blender_addon.mix).

`render_write` runs on the main thread right after Blender wrote a frame: it only works out the
faces (the scene is at that frame, so "From Scene" boxes are exact) and queues the file. A single
worker thread edits the queued frames in order, so rendering goes on while they are processed; the
runtime writes each output atomically. With the detector (Auto), a frame's faces are smoothed over its
neighbours exactly as "Apply to Frames" and the CLI do (`reggan_plugin.faces.tracks`): it is edited once
the frames after it within the smoothing window have been rendered, or when the render ends.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
from bpy.app.handlers import persistent

from . import engine

log = logging.getLogger(__name__)


END = "end of render"  # queued by on_render_end: edit the frames still waiting for their neighbours


@dataclass
class _Shot:
    """The detector's results for the frames of the render in progress, by render order."""

    found: dict[int, list] = field(default_factory=dict)
    thumbs: dict[int, Any] = field(default_factory=dict)
    waiting: list[tuple[int, Path, Path, engine.RunSettings, float]] = field(default_factory=list)


@dataclass
class HookQueue:
    tasks: queue.Queue[tuple | str | None] = field(default_factory=queue.Queue)
    results: queue.Queue[tuple[str, Path, Any]] = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None
    pending: int = 0
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    last_output: Path | None = None

    def submit(self, source: Path, target: Path, mode: str, faces: list | None, run: engine.RunSettings,
               smooth: float = 0.0) -> None:
        self._start()
        self.pending += 1
        self.last_output = target.parent
        self.tasks.put((source, target, mode, faces, run, smooth))

    def end_of_render(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.tasks.put(END)

    def _start(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="reggan: render hook", daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        shot = _Shot()
        while (task := self.tasks.get()) is not None:
            if task == END:
                self._edit_waiting(shot, len(shot.found), everything=True)
                shot = _Shot()
                continue
            assert isinstance(task, tuple)
            source, target, mode, faces, run, smooth = task
            if faces is not None or mode != "AUTO" or smooth <= 0:
                self._edit(source, target, mode, faces, run)
                continue
            self._detect(shot, source, target, run, smooth)
            self._edit_waiting(shot, len(shot.found), everything=False)

    def _edit(self, source: Path, target: Path, mode: engine.FaceMode, faces: list | None, run: engine.RunSettings) -> None:
        try:
            count = engine.edit_file(source, target, mode=mode, faces=faces, settings=run)
        except Exception as exc:  # reported per frame on the main thread; the next frame goes on
            self.results.put(("error", source, exc))
        else:
            self.results.put(("ok", source, count))

    def _detect(self, shot: _Shot, source: Path, target: Path, run: engine.RunSettings, smooth: float) -> None:
        from reggan_plugin.imageio import read_image
        from reggan_plugin.sequence.shots import thumbnail

        index = len(shot.found)
        try:
            image = read_image(source, report=False)  # edit_file reads it again and reports
            shot.found[index], shot.thumbs[index] = engine.locate_faces(image, "AUTO", None), thumbnail(image)
        except Exception as exc:  # an unreadable frame: reported, and a cut for its neighbours
            shot.found[index], shot.thumbs[index] = [], None
            self.results.put(("error", source, exc))
            return
        shot.waiting.append((index, source, target, run, smooth))

    def _edit_waiting(self, shot: _Shot, n_frames: int, everything: bool) -> None:
        from reggan_plugin.faces.smoothing import window_reach
        from reggan_plugin.faces.tracks import smoothed_faces

        still = []
        for index, source, target, run, smooth in shot.waiting:
            if everything or index + window_reach(smooth) < n_frames:
                faces = smoothed_faces(shot.found, shot.thumbs, index, n_frames, smooth)
                self._edit(source, target, "AUTO", faces, run)
            else:
                still.append((index, source, target, run, smooth))
        shot.waiting = still

    def drain(self) -> bool:
        """Main thread: collect finished frames. True while frames are still queued."""
        while True:
            try:
                kind, source, value = self.results.get_nowait()
            except queue.Empty:
                break
            self.pending -= 1
            if kind == "ok":
                self.done += 1
            else:
                self.failed.append((source, str(value)))
                log.warning("RegGAN render hook: %s: %s", source, value)
        return self.pending > 0

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.drain():
            if time.monotonic() > deadline:
                raise TimeoutError(f"render hook: {self.pending} frame(s) still queued after {timeout} s")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.tasks.put(None)
            self.thread.join(timeout=30)
        self.thread = None

    def text(self) -> str:
        if not (self.pending or self.done or self.failed):
            return ""
        head = f"Render hook: {self.done} edited, {self.pending} queued"
        return head + (f", {len(self.failed)} failed" if self.failed else "")


HOOK = HookQueue()


@persistent
def on_render_write(scene: Any, *_args: Any) -> None:
    from reggan_plugin.errors import RegganError

    from . import operators

    settings = getattr(scene, "reggan", None)
    if settings is None or not settings.auto_apply:
        return
    source = Path(scene.render.frame_path(frame=scene.frame_current))
    if not source.is_file():
        log.warning("RegGAN render hook: %s was not written as an image file (movie output?); skipped", source)
        return
    width, height = (int(v) for v in (scene.render.resolution_x * scene.render.resolution_percentage / 100,
                                     scene.render.resolution_y * scene.render.resolution_percentage / 100))
    try:
        faces = operators.given_faces(scene, height, width)
        run = operators.run_settings(bpy.context, scene)
    except (LookupError, ValueError, RegganError) as exc:  # e.g. no head, Mix past 1, no channel model
        HOOK.failed.append((source, str(exc)))
        log.warning("RegGAN render hook: %s: %s", source, exc)
        return
    target = engine.sibling_dir(source.parent, operators.output_tag(settings)) / source.name
    HOOK.submit(source, target, settings.face_source, faces, run, settings.smooth)
    operators.ensure_timer()


@persistent
def on_render_end(scene: Any, *_args: Any) -> None:
    """The render finished or was cancelled: the frames still waiting for later neighbours are edited now."""
    HOOK.end_of_render()


HANDLERS = (("render_write", on_render_write), ("render_complete", on_render_end), ("render_cancel", on_render_end))


def register() -> None:
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if handler not in handlers:
            handlers.append(handler)


def unregister() -> None:
    for name, handler in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        while handler in handlers:
            handlers.remove(handler)
    HOOK.stop()
