"""Render the bundled demo shot: one synthetic ICT identity turning its head, neutral, plus the exact
68 landmarks of every frame as samples/faces.json (the most trusted face source of `render --faces`).

    python tools/make_samples.py --face-model ../shared/data/ict-face-model/ict_face_model.npz

Needs bpy (pip install '.[blender]'). The identity comes from a seed never used for training data.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import numpy as np
from PIL import Image

SEED = 424242  # not a training seed


@click.command()
@click.option("--face-model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", default=Path("samples"), type=click.Path(file_okay=False, path_type=Path), show_default=True)
@click.option("--frames", default=8, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--samples", default=32, show_default=True, help="Cycles samples per pixel.")
@click.option("--index", default=3, show_default=True, help="Which identity of the seed.")
def main(face_model: Path, out: Path, frames: int, size: int, samples: int, index: int) -> None:
    from training.synth.background import composite, make_background
    from training.synth.camera import CM_TO_M, frame_face, project
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes
    from training.synth.scene import FaceScene
    from training.synth.variation import sample_identity

    model = load_face_model(face_model)
    params = sample_identity(SEED, index, model.n_identities, load_recipes())
    weights = np.asarray(params.identity_weights, np.float32)
    verts = model.vertices(weights)
    scene = FaceScene(model, size, samples, True, 2)
    background = make_background(params.background, size, params.render_seed)
    folder = out / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    faces = {}
    for i, yaw in enumerate(np.linspace(-14, 14, frames)):
        camera = dataclasses.replace(params.camera, yaw=float(yaw), roll=float(2 * np.sin(i)))
        pose = frame_face(verts[model.landmarks68] * CM_TO_M, camera)
        scene.set_identity(params, verts, pose)
        scene.set_vertices(verts)
        rgba = scene.render_rgba(folder / f".{i:04d}.render.png")
        name = f"shot_{i + 1:04d}.png"
        Image.fromarray(composite(rgba, background), "RGBA").save(folder / name, optimize=True)
        points = project(verts[model.landmarks68] * CM_TO_M, pose, size)
        faces[name] = [{"landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in points]}]
        click.echo(f"{folder / name}")
    (out / "faces.json").write_text(json.dumps({"version": 1, "frames": faces}, indent=1))


if __name__ == "__main__":
    main()
