"""RegGAN Expressions: a Blender 4.2+ extension that changes the facial expression of the Render
Result, of a folder of rendered frames and of face textures, with the torch-free reggan-plugin runtime.

The runtime and its dependencies come as wheels inside the extension (blender_manifest.toml); nothing
is installed at run time. Inference runs in background threads; bpy is touched only on the main
thread (jobs.py). See docs/BLENDER.md.
"""
from __future__ import annotations

import bpy

from . import handlers, jobs, mix_import, operators, panels, settings

classes = settings.classes + operators.classes + mix_import.classes + panels.classes


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    settings.register_properties()
    handlers.register()
    if operators.progress_listener not in jobs.JOBS.listeners:
        jobs.JOBS.listeners.append(operators.progress_listener)


def unregister() -> None:
    jobs.JOBS.shutdown()
    if operators.progress_listener in jobs.JOBS.listeners:
        jobs.JOBS.listeners.remove(operators.progress_listener)
    if bpy.app.timers.is_registered(operators._tick):
        bpy.app.timers.unregister(operators._tick)
    handlers.unregister()
    settings.unregister_properties()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
