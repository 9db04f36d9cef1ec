"""The mouth pass: on a large face the mouth is painted again, by the mouth model, at twice the face crop's scale.

In the face crop a mouth is about a fifth of the crop wide (25 px of 128). On a 600 px face paste-back magnifies
that paint about eight times: the motion keeps the frame's own detail, but what is painted (teeth, an opened
mouth's inside and rim) comes out as soft bands. The mouth model is the regression stage fitted on a crop about
the mouth at ``tuning.MOUTH_ZOOM`` times the face crop's scale (``reggan-plugin train --config mouth``). Where the face
model's paint would be magnified four times or more (a face crop of 512 frame px: a face box from about 285 px), the
mouth model's edit, pasted as the face's is (its motion moves the frame, the lips whole where it opens them, its
paint is added, a little blurred: ``PAINT_BLUR``), replaces the face model's inside an ellipse about the mouth: fully
from eight times on (a face box from about 570 px), faded in between, so a face growing through a shot never switches
mouths from one frame to the next. On smaller faces the face model's paint is near the frame's own scale and the pass
does not run. A mouth model may name the expressions its pass paints (metadata key ``reggan.mouth_pass``, a JSON list;
by default every one it knows): an edit with any other expression keeps the face model's mouth (the bundled one paints
sad, angry and fearful; it knows happy too, whose mouth the face model paints closer to the true smiles: docs/experiments/MODEL_NOTES.md).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..arrays import Array
from ..artifact import ModelArtifact, default_model_path, load_artifact, parse_expression
from ..backends import create_backend
from ..backends.preview_graph import stage_network
from ..config import InferenceConfig
from ..errors import ModelError
from ..geometry.align import (
    Matrix,
    crop_template,
    large_face_share,
    shift_to_region,
    similarity_from_points,
    units_to_crop_px,
)
from ..geometry.resample import crop_roi, warp_to_crop
from ..tuning import MOUTH_MASK_FEATHER, MOUTH_MASK_RADII, MOUTH_ZOOM, PAINT_BLUR
from .blend import crop_planes, feather_mask
from .lips import lips_whole

PASS_KEY = "reggan.mouth_pass"  # metadata: the expressions the pass paints (a JSON list; default: all it knows)

Paste = Callable[..., tuple[Array, Array]]  # (region, planes, matrix, inplace=...) -> (region, frame mask)


def is_mouth_template(template: Array | None, face_template: Array | None = None) -> bool:
    """Whether a crop template (crop units) magnifies the face crop's (None: ``CANONICAL_5PT``) about the mouth:
    its eyes at least half as far apart again."""
    if template is None:
        return False
    face = crop_template("face") if face_template is None else face_template
    return bool(np.linalg.norm(template[1] - template[0]) >= 1.5 * np.linalg.norm(face[1] - face[0]))


def pass_expressions(artifact: ModelArtifact) -> tuple[str, ...]:
    """The expressions a mouth model's pass paints (``PASS_KEY``, else every one it knows but neutral); a ModelError
    naming the file and the key when the list is malformed or names an expression the model does not know."""
    text = artifact.metadata.get(PASS_KEY)
    known = tuple(name for name in artifact.expressions if name != "neutral")
    if text is None:
        return known
    try:
        names = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) and name in known for name in names):
        raise ModelError(artifact.path, f"bad metadata {PASS_KEY}={text!r}: give a JSON list of the model's expressions "
                                        f"({', '.join(known)})")
    return tuple(names)


def bundled_mouth_model_path() -> Path:
    """The mouth model that ships beside the default face model (fitted on the same renders; MODEL_CARD.md)."""
    return Path(__file__).parents[1] / "models" / "mouth.onnx"


@dataclass
class MouthCrops:
    """The mouths of one picture's faces: region px -> mouth crop px per face (None where the pass does not run),
    and the crops of those that run, [k,S,S,3] float32 sRGB [0,1], in face order, with their strengths (`strength`)."""

    matrices: list[Matrix | None]
    crops: Array
    strengths: list[float]


def strength(m: Matrix) -> float:
    """How much of the mouth the pass paints for a mouth crop map ``m``: `align.large_face_share` of the face its
    crop shows (``MOUTH_ZOOM`` times the face crop's scale), 0 where the face crop's paint would be magnified less than
    four times (``tuning.LARGE_FACE_SCALE``), 1 from eight (``tuning.FULL_LARGE_FACE_SCALE``), linear in between."""
    return large_face_share(m, MOUTH_ZOOM)


class MouthPass:
    """The mouth model's backend and the geometry that ties its crop to the face model's."""

    def __init__(self, artifact: ModelArtifact, face_template: Array | None, face_size: int,
                 inference: InferenceConfig, colour_weight: Array | None = None) -> None:
        face = crop_template("face") if face_template is None else face_template
        template = artifact.crop_template
        if template is None or not artifact.has_motion or not is_mouth_template(template, face):
            raise ModelError(artifact.path, "not a mouth model: it needs motion outputs and a crop template that "
                                            "magnifies the face crop's mouth (reggan-plugin train --config mouth)")
        self.artifact = artifact
        self.expressions = pass_expressions(artifact)
        self.size = artifact.input_size
        # face crop px -> mouth crop px: the similarity between the two templates (exact: one is the other zoomed)
        self.from_face = np.vstack([similarity_from_points(units_to_crop_px(face, face_size),
                                                           units_to_crop_px(template, self.size)),
                                    [0.0, 0.0, 1.0]])
        network, self.outputs = stage_network(artifact, inference.stage)
        self.backend = create_backend(network, inference.backend, precision=inference.precision)
        self.mask = feather_mask(self.size, center=(0.5, 0.5), radii=MOUTH_MASK_RADII, feather=MOUTH_MASK_FEATHER)
        # where the motion opens the mouth the lips move whole, as in the face pass (reggan_plugin.edit.lips)
        self.lip_corners = units_to_crop_px(template[3:5], self.size) if inference.lip_split else None
        # where the face pass pastes its paint as a change of shading, so does the mouth pass: the same weight, in
        # the mouth crop (its mask reaches past the lips onto the skin)
        self.colour_weight = None if colour_weight is None else warp_to_crop(colour_weight, self.from_face[:2], self.size)

    @classmethod
    def for_inference(cls, inference: InferenceConfig, face: ModelArtifact,
                      colour_weight: Array | None = None) -> MouthPass | None:
        """The pass `inference` asks for: its mouth model, or the bundled one beside the bundled face model; None
        when it is turned off or a face model of one's own has no mouth model named."""
        if not inference.mouth_pass:
            return None
        path = inference.mouth_model
        if path is None:
            if face.path != default_model_path().resolve() or not bundled_mouth_model_path().is_file():
                return None
            path = bundled_mouth_model_path()
        artifact = load_artifact(path)
        if not set(face.expressions) & set(artifact.expressions) - {"neutral"}:
            raise ModelError(artifact.path, f"the mouth model knows none of the face model's expressions "
                                            f"({', '.join(face.expressions)})")
        return cls(artifact, face.crop_template, face.input_size, inference, colour_weight)

    def covers(self, expression: str | Mapping[str, float]) -> bool:
        """Whether the pass paints every expression of an edit (a name or a mix; `pass_expressions`); else the face
        model's mouth stays."""
        mix = parse_expression(expression) if isinstance(expression, str) else dict(expression)
        return all(name in self.expressions for name, weight in mix.items() if weight)

    def matrix(self, face_matrix: Matrix) -> Matrix | None:
        """Region px -> mouth crop px for a face aligned by ``face_matrix``; None where the pass does not run."""
        m = (self.from_face @ np.vstack([face_matrix, [0.0, 0.0, 1.0]]))[:2]
        return m if strength(m) > 0 else None

    def prepare(self, source: Array, face_matrices: Sequence[Matrix],
                align: Callable[[Array, Matrix, int], Array]) -> MouthCrops:
        matrices = [self.matrix(m) for m in face_matrices]
        kept = [m for m in matrices if m is not None]
        crops = np.stack([align(source, m, self.size) for m in kept]) if kept else np.zeros((0, self.size, self.size, 3),
                                                                                             np.float32)
        return MouthCrops(matrices, crops, [strength(m) for m in kept])

    def originals(self, rgb: Array, mouths: MouthCrops) -> list[tuple[tuple[slice, slice], Array]]:
        """Copies of the region around each mouth, taken before the faces are pasted: the mouth pass moves and
        paints the picture as it was, as the face pass does."""
        out = []
        reach = self.size // 8  # the motion reads the picture a little past the mask's edge
        around = (-reach, -reach, self.size + reach, self.size + reach)
        for m in mouths.matrices:
            if m is not None:
                rows, cols = crop_roi(m, self.size, (rgb.shape[0], rgb.shape[1]), around)
                out.append(((rows, cols), rgb[rows, cols].copy()))
        return out

    def paste(self, rgb: Array, mouths: MouthCrops, originals: list[tuple[tuple[slice, slice], Array]],
              edited: Array, paste: Paste) -> tuple[Array, list[Array | None]]:
        """Each mouth's edit, pasted into its copy of the picture as it was, laid over ``rgb`` (the faces pasted,
        written in place) under the mouth's mask. Returns the frame mask of the mouths and, for each mouth that runs,
        the gap opened between its lips (mouth crop, `lips.lips_whole`; None where it stays closed)."""
        mask = np.zeros(rgb.shape[:2], np.float32)
        gaps: list[Array | None] = []
        kept = [m for m in mouths.matrices if m is not None]
        for m, ((rows, cols), original), crop_in, crop_out, amount in zip(kept, originals, mouths.crops, edited,
                                                                          mouths.strengths):
            local = shift_to_region(m, rows, cols)
            motion, moved_crop, gap = crop_out[..., 3:], None, None
            if self.lip_corners is not None:
                motion, moved_crop, gap = lips_whole(crop_in, motion, self.lip_corners, original, local,
                                                     self.artifact.warp)
            gaps.append(gap)
            planes = crop_planes(crop_in, crop_out[..., :3], self.mask, motion=motion, colour_match=False,
                                 colour_weight=self.colour_weight, moved=moved_crop, gap=gap, paint_blur=PAINT_BLUR,
                                 warp=self.artifact.warp)
            moved, weight = paste(original, planes, local, inplace=True)
            ys, xs = np.flatnonzero(weight.any(axis=1)), np.flatnonzero(weight.any(axis=0))
            if not len(ys):
                continue
            inside = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))  # the blend reads only where the mask is
            w = weight[inside] * amount
            target = rgb[rows, cols][inside]
            target += w[..., None] * (moved[inside] - target)
            np.maximum(mask[rows, cols][inside], w, out=mask[rows, cols][inside])
        return mask, gaps
