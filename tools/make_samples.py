"""Render the bundled demo shot: one synthetic ICT identity turning its head, neutral, plus the exact
68 landmarks of every frame as samples/faces.json (the most trusted face source of `render --faces`).

    python tools/make_samples.py --face-model ../shared/data/ict-face-model/ict_face_model.npz

With ``--ramp N`` it renders instead the truth of benchmarks/curves.py's ramp: the same identity in the pose of the
shot's first frame, its blendshapes driven by the ramp's curves (neutral at frame 1, a smile at N/2, surprise at N,
linear between), as OUT/expressions/f0001.png ... (the expressions' recipes) or OUT/channels/f0001.png ... (the
ARKit channels' own blendshapes, ``--ramp-of channels``), each folder with its faces.json (every frame's 68
landmarks). The benchmark measures them with ``--truth OUT``:

    python tools/make_samples.py --face-model ../shared/data/ict-face-model/ict_face_model.npz --ramp 48 --out ramp48
    python tools/make_samples.py --face-model ../shared/data/ict-face-model/ict_face_model.npz --ramp 48 --out ramp48 \
        --ramp-of channels

Needs bpy (pip install '.[blender]'). The identity comes from a seed never used for training data.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEED = 424242  # not a training seed
FIRST_YAW = -14.0  # the shot turns from -14 to +14 degrees
CHANNEL_RECIPES = Path(__file__).resolve().parent.parent / "training" / "synth" / "arkit_channels.json"


@click.command()
@click.option("--face-model", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", default=Path("samples"), type=click.Path(file_okay=False, path_type=Path), show_default=True)
@click.option("--frames", default=8, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--samples", default=32, show_default=True, help="Cycles samples per pixel.")
@click.option("--index", default=3, show_default=True, help="Which identity of the seed.")
@click.option("--ramp", type=click.IntRange(min=8), default=None,
              help="Render benchmarks/curves.py's ramp over this many frames instead (resumes).")
@click.option("--ramp-of", type=click.Choice(["expressions", "channels"]), default="expressions", show_default=True,
              help="Which of the benchmark's ramps: the six expressions' or the ARKit channels'.")
def main(face_model: Path, out: Path, frames: int, size: int, samples: int, index: int, ramp: int | None,
         ramp_of: str) -> None:
    from training.synth.background import composite, make_background
    from training.synth.camera import CM_TO_M, CameraPose, frame_face, project
    from training.synth.face_model import load_face_model
    from training.synth.recipes import load_recipes
    from training.synth.scene import FaceScene
    from training.synth.variation import sample_identity

    model = load_face_model(face_model)
    recipes = load_recipes()
    params = sample_identity(SEED, index, model.n_identities, recipes)
    weights = np.asarray(params.identity_weights, np.float32)
    verts = model.vertices(weights)
    scene = FaceScene(model, size, samples, True, 2)
    background = make_background(params.background, size, params.render_seed)
    folder = out / (ramp_of if ramp is not None else "frames")
    folder.mkdir(parents=True, exist_ok=True)

    def render(name: str, vertices: np.ndarray) -> None:
        scene.set_vertices(vertices)
        rgba = scene.render_rgba(folder / f".{name}.render.png")
        Image.fromarray(composite(rgba, background), "RGBA").save(folder / f".{name}", format="PNG", optimize=True)
        (folder / f".{name}").replace(folder / name)  # whole frames only: a stopped run resumes
        click.echo(f"{folder / name}")

    def landmarks(vertices: np.ndarray, pose: CameraPose) -> list[dict[str, list[list[float]]]]:
        """The frame's face as faces.json gives it: the face model's 68 landmarks, projected."""
        points = project(vertices[model.landmarks68] * CM_TO_M, pose, size)
        return [{"landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in points]}]

    faces: dict[str, list[dict[str, list[list[float]]]]] = {}
    if ramp is not None:
        from benchmarks.curves import ramp_curves

        camera = dataclasses.replace(params.camera, yaw=FIRST_YAW, roll=0.0)
        pose = frame_face(verts[model.landmarks68] * CM_TO_M, camera)
        scene.set_identity(params, verts, pose)
        curves = ramp_curves(ramp, ramp_of)
        channels = load_recipes(CHANNEL_RECIPES).au_to_blendshapes if ramp_of == "channels" else None
        for frame in range(1, ramp + 1):
            name = f"f{frame:04d}.png"
            shapes: dict[str, float] = {}
            for key, weight in curves.mix_at(frame).items():  # a mix's blendshapes add, and channels'
                # a channel at weight w is its own shape at w; an expression its recipe, in this person's style
                each = ({shape: weight * gain for shape, gain in channels[key].items()} if channels is not None
                        else recipes.blendshapes(key, weight, params.au_scale))
                for shape, value in each.items():
                    shapes[shape] = shapes.get(shape, 0.0) + value
            posed = model.vertices(weights, model.expression_vector(shapes))
            faces[name] = landmarks(posed, pose)
            if not (folder / name).is_file():
                render(name, posed)
        (folder / "faces.json").write_text(json.dumps({"version": 1, "frames": faces}, indent=1))
        return

    for i, yaw in enumerate(np.linspace(FIRST_YAW, -FIRST_YAW, frames)):
        camera = dataclasses.replace(params.camera, yaw=float(yaw), roll=float(2 * np.sin(i)))
        pose = frame_face(verts[model.landmarks68] * CM_TO_M, camera)
        scene.set_identity(params, verts, pose)
        name = f"shot_{i + 1:04d}.png"
        render(name, verts)
        faces[name] = landmarks(verts, pose)
    (out / "faces.json").write_text(json.dumps({"version": 1, "frames": faces}, indent=1))


if __name__ == "__main__":
    main()
