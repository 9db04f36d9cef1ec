"""Fit the map from BlazeFace's keypoints to the five points the model's crops are cut on
(``reggan_plugin/faces/keypoint_map.py``).

    python tools/make_keypoint_map.py --data data/ict160 --data data/ict128b --data data/ict96 \
        --data data/ict128turned --out reggan_plugin/faces/models/keypoint_map.npy

The training split's neutral renders (the face model's own, facing the camera and turned), each looked at by the
detector the runtime uses on whole pictures (``faces.locate.TRACKING``); least squares from the keypoints to the
renders' own five points, both in the crop the keypoints give (a ridge of 1e-3 on inputs of about +-0.5 only keeps
the fit defined on a few faces). Written by hand: a 9 x 10 linear fit needs no library.
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--data", "data_dirs", multiple=True, required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="Paired render folders (repeat).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def main(data_dirs: tuple[Path, ...], out: Path) -> None:
    from PIL import Image

    from reggan_plugin.atomic import atomic_path
    from reggan_plugin.faces import box_from_landmarks
    from reggan_plugin.faces.detector import FaceDetector, face_keypoints
    from reggan_plugin.faces.keypoint_map import FEATURES, SIZE, features, target
    from reggan_plugin.faces.locate import TRACKING
    from training.data.landmarks import find_five_points
    from training.evaluate.cases import scan_cases

    detector = FaceDetector(config=TRACKING)
    neutrals = sorted({case.neutral for folder in data_dirs for case in scan_cases(folder, ("happy",), "train")[1]})
    inputs, outputs, missed = [], [], 0
    with click.progressbar(neutrals, label="detecting") as bar:
        for path in bar:
            points = find_five_points(path)
            if points is None:
                raise click.ClickException(f"{path}: no landmark file beside the render")
            found = detector.find(np.asarray(Image.open(path).convert("RGB")))
            if not len(found):
                missed += 1
                continue
            x, y, w, h = box_from_landmarks(points)
            centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2.0
            nearest = int(np.argmin(np.linalg.norm(centres - (x + w / 2, y + h / 2), axis=1)))
            m, row = features(face_keypoints(found, nearest))
            inputs.append(row)
            outputs.append(target(m, points))
    a, b = np.array(inputs), np.array(outputs)
    weights = np.linalg.solve(a.T @ a + 1e-3 * np.eye(FEATURES), a.T @ b)
    error = np.linalg.norm((a @ weights - b).reshape(-1, 5, 2), axis=2).mean() * SIZE
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, weights)
    click.echo(f"wrote {out}: fitted on {len(a)} neutral training renders ({missed} without a face found); "
               f"mean point error {error:.2f} px of a {SIZE} px crop")


if __name__ == "__main__":
    main()
