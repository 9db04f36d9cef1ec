"""One picture's faces with another expression: align -> batched inference -> paste back (on large faces the
lips moved whole where the mouth opens, reggan_plugin.edit.lips, and the opening's inside at the frame's pixels:
reggan_plugin.edit.interior).

`ExpressionRenderer` owns the model session; the add-on, studio scripts and `render_sequence` (which
runs it over a directory of frames) use it. Arrays follow reggan_plugin.imageio's conventions.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from .arrays import Array
from .artifact import ModelArtifact, load_artifact
from .backends import create_backend
from .backends.preview_graph import stage_network
from .backends.region_graphs import region_ops_for
from .config import EditConfig, InferenceConfig
from .edit.blend import apply_planes, feather_mask
from .edit.calibration import Gains, calibrated, lower_face, mixed, model_gains
from .edit.chain import PasteContext, face_edits, run_stages
from .edit.coverage import FaceCoverage
from .edit.crop_inference import EditedCrops, edit_crops
from .edit.face_level import lift_gains
from .edit.interior import Inside, MouthInterior
from .edit.subject import photo_weights
from .errors import InputError
from .faces import Face
from .faces.locate import SharedDetector
from .faces.refine import BOX_HINTS, hint_region, needs_refining, refine_box_face
from .faces.turn import FACING, Pose, face_pose
from .geometry.align import (
    CANONICAL_5PT,
    Matrix,
    crop_matrix_from_box,
    matrix_scale,
    shift_to_region,
    similarity_from_points,
    units_to_crop_px,
)
from .geometry.resample import warp_to_crop
from .imageio import ImageData, detector_rgb, non_finite_pixels, write_edit
from .imageio.transparency import region_behind_the_subject
from .imaging.filters import degrained
from .prepared_image import PreparedImage, face_region, network_rgbs

MIN_FACE_PX = 8.0  # a crop side smaller than this in the picture holds no face to edit
MAX_FACE_FRACTION = 4.0  # a crop side more than this many picture sides is a broken box, not a close-up


class ExpressionRenderer:
    """One loaded model + backend. Arrays follow reggan_plugin.imageio's conventions."""

    def __init__(self, inference: InferenceConfig = InferenceConfig()) -> None:
        self.inference = inference
        self.artifact: ModelArtifact = load_artifact(inference.model)
        network, (self._output, self._motion) = stage_network(self.artifact, inference.stage)
        self.backend = create_backend(network, inference.backend, precision=inference.precision)
        self.region_ops = region_ops_for(self.backend, inference.region_graphs)
        self.has_motion = network.has_motion
        self.size = self.artifact.input_size
        template = self.artifact.crop_template
        self._template_px = None if template is None else units_to_crop_px(template, self.size)
        # where the motion opens a large face's mouth the lips move whole (reggan_plugin.edit.lips)
        self.lip_corners = (units_to_crop_px((CANONICAL_5PT if template is None else template)[3:5], self.size)
                             if inference.lip_split else None)
        self.mask = feather_mask(self.size)
        self._detector = SharedDetector(BOX_HINTS)  # frames may be prepared in several reader threads
        # the model's gains for photographs (reggan_plugin.edit.calibration): the face pass's edit, for every face (photo) or those that read as photographs (auto, reggan_plugin.edit.subject)
        self.gains = {} if inference.subject == "render" else model_gains(self.artifact, "photo")
        self.lower_face = lower_face(self.size) if self.gains and self.has_motion else None
        self.interior = MouthInterior.load() if inference.lip_split else None  # drawn into the gaps the lips open
        self.coverage = FaceCoverage() if inference.coverage else None

    # -- prepare: faces -> aligned crops --------------------------------------------------------
    def crop_matrix(self, face: Face, frame_shape: Sequence[int]) -> Matrix:
        """Image px -> crop px: landmarks when known, else the box (the whole image maps onto the crop)."""
        size = self.size
        if face.source == "whole":
            height, width = frame_shape[:2]
            scale = size / max(height, width)
            return np.array([[scale, 0, (size - scale * width) / 2], [0, scale, (size - scale * height) / 2]])
        points = face.landmarks5()
        if points is not None and self._template_px is not None:
            return similarity_from_points(points, self._template_px)
        return crop_matrix_from_box(face.box, size)

    def checked_crop_matrix(self, image: ImageData, index: int, face: Face) -> Matrix:
        """`crop_matrix`, refusing geometry no face can have (InputError naming the picture and the face):
        degenerate landmarks, a face under MIN_FACE_PX or far larger than the picture. Such a face would
        otherwise make the crop sampler allocate without bound."""
        where = f"face {index + 1} ({face.source}, box {', '.join(f'{v:.4g}' for v in face.box)})"
        try:
            m = self.crop_matrix(face, image.pixels.shape)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise InputError(image.path, f"{where}: {exc}") from None
        scale = matrix_scale(m) if np.isfinite(m).all() else 0.0
        face_px = self.size / scale if scale > 0 else float("inf")
        if not np.isfinite(face_px) or face_px < MIN_FACE_PX:
            raise InputError(image.path, f"{where}: the face would be {face_px:.3g} px across; "
                                         f"at least {MIN_FACE_PX} px is needed (degenerate landmarks or a tiny box)")
        if face_px > MAX_FACE_FRACTION * max(image.height, image.width):
            raise InputError(image.path, f"{where}: the face would be {face_px:.0f} px across, far larger than the "
                                         f"{image.width}x{image.height} picture")
        return m

    # -- forward: crops -> edited crops ----------------------------------------------------------
    def forward(self, crops: Array, edit: EditConfig | Sequence[EditConfig], lift: Array | None = None,
                poses: Sequence[Pose] | None = None) -> Array:
        """crops [n,S,S,3] float32 sRGB [0,1] -> edited crops [n,S,S,3], in batches of `batch_for`; for a model
        with motion outputs [n,S,S,5]: the edited RGB, then the motion (x, y crop px) that paste-back applies
        to the frame itself (see `reggan_plugin.edit.blend.paste_back`). ``edit``: one for every crop, or one per crop;
        ``lift``: as `edit_crops`; ``poses``: each face's turn and tilt (`reggan_plugin.faces.turn`), for a model with
        pose keys (none: facing the camera)."""
        wanted = (self._output, self._motion) if self.has_motion else (self._output,)
        if isinstance(edit, EditConfig) and not self.artifact.turn_keys:
            weights, alpha = self.artifact.network_input(edit.expression, edit.intensity)
            return edit_crops(self.backend, weights, crops, alpha, self.batch_for([weights]), wanted, lift)
        edits = [edit] * len(crops) if isinstance(edit, EditConfig) else list(edit)
        poses = [FACING] * len(crops) if poses is None else list(poses)
        inputs = [self.artifact.network_input(e.expression, e.intensity) for e in edits]
        each = [self.artifact.posed(w, pose) for (w, _), pose in zip(inputs, poses)]
        weights = np.stack(each) if each else np.zeros((0, self.artifact.input_width), np.float32)
        return edit_crops(self.backend, weights, crops, np.array([a for _, a in inputs], np.float32),
                          self.batch_for(each), wanted, lift)

    def forward_images(self, prepared: Sequence[PreparedImage], edit: EditConfig | Sequence[EditConfig]
                       ) -> list[EditedCrops]:
        """Several pictures' crops through the networks in shared batches: each picture's `EditedCrops`. ``edit``: one
        for every picture, or one per picture (each frame's mix of expression curves, `reggan_plugin.sequence.curves`)."""
        edits = [edit] * len(prepared) if isinstance(edit, EditConfig) else list(edit)
        if len(edits) != len(prepared):
            raise ValueError(f"{len(edits)} edits for {len(prepared)} pictures")
        counts = [len(p.crops) for p in prepared]
        weights = [self.artifact.expression_weights(e.expression) for e in edits]
        crops_in = np.concatenate([p.crops for p in prepared])
        lift = lift_gains(crops_in)
        faces = self.forward(crops_in, [e for e, n in zip(edits, counts) for _ in range(n)], lift,
                             [pose for p in prepared for pose in p.poses])
        # each picture's share of the model's gains for photographs (reggan_plugin.edit.subject)
        gains = [mixed(self.gains, self.artifact.expressions, w) for w in weights]
        shares = self.photo_shares(prepared, gains)
        faces_at = np.cumsum([0, *counts])
        withheld: list[Array | None] = [None] * len(edits)
        if self.lower_face is not None:
            for i, (g, share, start, stop) in enumerate(zip(gains, shares, faces_at, faces_at[1:])):
                if not g.is_identity:
                    faces[start:stop], withheld[i] = calibrated(crops_in[start:stop], faces[start:stop],
                                                                g.partly(share), self.lower_face, self.artifact.warp,
                                                                edits[i].intensity)
        return [EditedCrops(faces[start:stop],
                            None if self.interior is None else self.interior.inside_for(e.expression, e.intensity),
                            share, held)
                for e, share, held, start, stop in zip(edits, shares, withheld, faces_at, faces_at[1:])]

    def batch_for(self, weights: Sequence[Array]) -> int:
        """Faces per network call for edits of these weights: `InferenceConfig.batch`, or 1 where an edit mixes
        expressions (a partial intensity too: a mix with neutral, `ModelArtifact.network_input`). The network sums a
        mix's weighted paints in a matrix product whose rounding depends on how many rows it holds (onnxruntime's CPU
        kernels differ by some 1e-6 between 1 and 3 rows), so a mixed face is run alone: its pixels never depend on the
        frames batched with it, and shards and resumed runs write one run's bytes. On the CPU one face a call is no
        slower (measured: about 80 ms a face at 1, 97 at 8, bundled model)."""
        return self.inference.batch if all(np.count_nonzero(w) <= 1 for w in weights) else 1

    def photo_shares(self, prepared: Sequence[PreparedImage], gains: Gains | Sequence[Gains]) -> list[float]:
        """How much of the gains for photographs each picture's faces take: all (photo), or as much as they read as
        photographs (auto: the mean of its faces', `reggan_plugin.edit.subject`); none where the gains change nothing.
        ``gains``: the edit's, or each picture's own."""
        each = [gains] * len(prepared) if isinstance(gains, Gains) else list(gains)
        return [0.0 if g.is_identity  # no gains for the edit, or --subject render (none loaded)
                else 1.0 if self.inference.subject == "photo"
                else float(photo_weights(p.crops).mean()) if len(p.crops) else 0.0
                for p, g in zip(prepared, each)]

    # -- paste back ------------------------------------------------------------------------------
    def paste(self, rgb: Array, matrices: Sequence[Matrix], crops_in: Array, crops_out: Array,
              *, inplace: bool = False, interior: Inside | None = None, withheld: Array | None = None,
              photo: float = 0.0) -> tuple[Array, Array]:
        """Every face's edit pasted into the region ``rgb`` (written into it when ``inplace``), then ``interior``
        drawn into the gaps the lips open (`reggan_plugin.edit.interior`): (new rgb, mask). ``withheld``, ``photo``:
        the paint the gains for photographs left out, per face, and the share of them the faces took
        (`EditedCrops`). A record per face through the stages of `reggan_plugin.edit.chain`."""
        ctx = PasteContext(rgb, self.region_ops.paste if self.region_ops is not None else apply_planes, inplace,
                           lip_corners=self.lip_corners, coverage=self.coverage,
                           interior=interior, warp=self.artifact.warp)
        return run_stages(face_edits(matrices, crops_in, crops_out, self.mask, withheld, photo), ctx)

    # -- whole pictures --------------------------------------------------------------------------
    def find_in_boxes(self, image: ImageData, faces: Sequence[Face]) -> list[Face]:
        """Faces given by a box alone get the landmarks of the face the detector finds inside the box
        (``reggan_plugin.faces.refine``); only the region around those boxes is converted and searched."""
        hinted = [face for face in faces if needs_refining(face)]
        if not (self.inference.find_in_box and hinted):
            return list(faces)
        rows, cols = hint_region(hinted, image.height, image.width)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            return list(faces)
        rgb = detector_rgb(dataclasses.replace(image, pixels=image.pixels[rows, cols]))
        return [refine_box_face(rgb, face, self._detector.get(), (cols.start, rows.start)) for face in faces]

    def prepare_image(self, image: ImageData, faces: Sequence[Face]) -> PreparedImage:
        """Locate the faces' region, convert only it to network colour, and align the crops."""
        faces = self.find_in_boxes(image, faces)
        shape = image.pixels.shape
        matrices = [self.checked_crop_matrix(image, i, face) for i, face in enumerate(faces)]
        rows, cols = face_region(matrices, self.size, shape) if matrices else (slice(0, 0), slice(0, 0))
        region = dataclasses.replace(image, pixels=image.pixels[rows, cols])
        # the region as paste-back reads it and as the network sees it (the same without alpha)
        rgb, seen = network_rgbs(image, rows, cols, (True, False))
        local = [shift_to_region(m, rows, cols) for m in matrices]
        size = self.size
        # A grainy region goes to the network as its structure (reggan_plugin.imaging.filters), split at the region's own
        # scale: fed grain, the model paints it back as coloured speckle and smear, and in a crop smaller than the
        # face the grain falls below what measures as grainy yet still reaches the model. The edit is taken
        # against this same crop, so the frame keeps its own grain. The network sees a transparent picture's
        # antialiased edge as it is: fed it as the subject's colour, its neutral edit of the demo's frames moved the
        # face by up to 4 levels, where it gives the picture back within one. Only paste-back reads it so.
        source = degrained(seen)
        align = self.region_ops.align if self.region_ops is not None else warp_to_crop
        crops = np.stack([align(source, m, size) for m in local]) if local else np.zeros((0, size, size, 3), np.float32)
        return PreparedImage(image, (rows, cols), rgb, local, crops, non_finite_pixels(region),
                             tuple(face_pose(face) for face in faces))

    def finish_image(self, prepared: PreparedImage, edited: EditedCrops) -> ImageData:
        """Paste the edited crops back into the region and the region into a copy of the picture."""
        if not prepared.matrices:
            return prepared.image
        owned = prepared.rgb is None  # made again just now: pasted into in place
        return self.compose(prepared, *self.paste(prepared.region_rgb(), prepared.matrices, prepared.crops,
                                                  edited.faces, inplace=owned, interior=edited.interior,
                                                  withheld=edited.withheld, photo=edited.photo))

    @staticmethod
    def compose(prepared: PreparedImage, new_rgb: Array, mask: Array) -> ImageData:
        """The pasted region (network colour, with its mask) written into a copy of the picture in its own format."""
        image, (rows, cols) = prepared.image, prepared.roi
        region = dataclasses.replace(image, pixels=image.pixels[rows, cols])
        behind = region_behind_the_subject(image, rows, cols)
        if behind is not None:  # where the edit read the subject's colour, not the picture's, the picture's stays
            mask = np.where(behind, 0.0, mask)
        pixels = image.pixels.copy()
        write_edit(pixels[rows, cols], region, new_rgb, mask)
        return dataclasses.replace(image, pixels=pixels)

    def apply_image(self, image: ImageData, faces: Sequence[Face], edit: EditConfig) -> ImageData:
        return self.edit_image(image, faces, edit)[0]

    def edit_image(self, image: ImageData, faces: Sequence[Face], edit: EditConfig) -> tuple[ImageData, bool]:
        """`apply_image`, and whether its faces read as photographs and took their gains (`reads_as_photograph`)."""
        return self.edit_prepared(self.prepare_image(image, faces), edit)

    def edit_prepared(self, prepared: PreparedImage, edit: EditConfig) -> tuple[ImageData, bool]:
        """`edit_image` of a picture `prepare_image` has made ready."""
        if not prepared.matrices:
            return prepared.image, False
        edited = self.forward_images([prepared], edit)[0]
        return self.finish_image(prepared, edited), self.reads_as_photograph(edited)

    def reads_as_photograph(self, edited: EditedCrops) -> bool:
        """Whether a picture's faces read as photographs of people and took their gains (``--subject auto``): what
        the user is told, with `subject.PHOTOGRAPH_NOTE`."""
        return edited.photo > 0 and self.inference.subject == "auto"

    def apply_array(
        self, pixels: Array, *, faces: Sequence[Face] | None = None, expression: str | Mapping[str, float] = "happy",
        intensity: float = 1.0, linear: bool = False,
    ) -> Array:
        """HxWxC pixels (uint8/uint16/float32; float32 linear when `linear`) -> same shape and dtype.

        ``faces``: where the faces are (`Face` boxes or landmarks, as faces.json gives them); None: found by the face
        detector, as the CLI (`render`, `texture --detect`) and the add-on find them; a picture without a face comes
        back unchanged. ``expression``: a name or a mix ("happy=0.6,surprised=0.4"); ``intensity`` in [0, 1]: a
        value outside either is a UsageError, never handed to the network. `render_sequence` runs a folder of frames
        the same way (faces from its SequenceConfig: faces.json, a region, the whole image, else the detector)."""
        edit = EditConfig(expression, intensity)
        image = ImageData(pixels=pixels, path=None, format="exr" if linear else "png", linear=linear, info={})
        if faces is None:
            from .faces.locate import FaceLocator

            faces = FaceLocator().faces("array", image)
        return self.apply_image(image, faces, edit).pixels
