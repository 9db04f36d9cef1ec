"""The render hook: with "Apply After Each Rendered Frame" on, every frame an animation render writes
is edited into a sibling folder (<output folder>_reggan_<expression>/, same file name).

`render_write` runs on the main thread right after Blender wrote a frame: it only works out the
faces (the scene is at that frame, so "From Scene" boxes are exact) and queues the file. A single
worker thread edits the queued frames in order, so rendering goes on while they are processed; the
runtime writes each output atomically.
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


@dataclass
class HookQueue:
    tasks: queue.Queue[tuple | None] = field(default_factory=queue.Queue)
    results: queue.Queue[tuple[str, Path, Any]] = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None
    pending: int = 0
    done: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    last_output: Path | None = None

    def submit(self, source: Path, target: Path, mode: str, faces: list | None, run: engine.RunSettings) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, name="reggan: render hook", daemon=True)
            self.thread.start()
        self.pending += 1
        self.last_output = target.parent
        self.tasks.put((source, target, mode, faces, run))

    def _loop(self) -> None:
        while (task := self.tasks.get()) is not None:
            source, target, mode, faces, run = task
            try:
                count = engine.edit_file(source, target, mode=mode, faces=faces, settings=run)
            except Exception as exc:  # reported per frame on the main thread; the next frame goes on
                self.results.put(("error", source, exc))
            else:
                self.results.put(("ok", source, count))

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
    except (LookupError, ValueError) as exc:
        HOOK.failed.append((source, str(exc)))
        log.warning("RegGAN render hook: %s: %s", source, exc)
        return
    target = engine.sibling_dir(source.parent, settings.expression) / source.name
    HOOK.submit(source, target, settings.face_source, faces, run)
    operators.ensure_timer()


def register() -> None:
    if on_render_write not in bpy.app.handlers.render_write:
        bpy.app.handlers.render_write.append(on_render_write)


def unregister() -> None:
    while on_render_write in bpy.app.handlers.render_write:
        bpy.app.handlers.render_write.remove(on_render_write)
    HOOK.stop()
