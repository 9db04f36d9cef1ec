"""Synthetic paired training data: the ICT Face Model rendered with Blender/Cycles (docs/DATASET.md).

Modules: ``face_model`` (packed npz, meshes, landmarks), ``recipes`` (+ ``recipes.json``: FACS AUs ->
ARKit blendshapes), ``variation`` (seeded parameters), ``camera`` / ``regions`` / ``background``
(numpy helpers), ``scene`` + ``shaders`` (bpy), ``render`` (job runner), ``contact_sheet``,
``obj_convert`` (ICT-FaceKit OBJ folder -> npz), ``bench`` (render speed), ``cli`` (``dataset`` group).
Nothing here imports bpy at import time.
"""
