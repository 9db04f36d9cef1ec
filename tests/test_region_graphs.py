"""The region graphs (align and paste-back in onnxruntime): the numpy path's results, its fallbacks, its choice."""
from __future__ import annotations

import numpy as np
import pytest

from reggan_plugin.artifact import load_artifact
from reggan_plugin.backends import create_backend
from reggan_plugin.backends import environment as env
from reggan_plugin.backends.cpu import session_options
from reggan_plugin.backends.region_graphs import RegionOps, region_ops_for
from reggan_plugin.config import EditConfig, InferenceConfig
from reggan_plugin.edit.blend import apply_planes, crop_planes, feather_mask
from reggan_plugin.faces import Face
from reggan_plugin.geometry import resample
from reggan_plugin.geometry.resample import warp_to_crop
from reggan_plugin.imageio import ImageData
from reggan_plugin.renderer import ExpressionRenderer

GPUS, NO_GPU_WHY = env.nvidia_gpus()
SIZE = 64

# The frame moved by the motion: bicubic in both, but OpenCV (numpy's path) places samples to 1/32 px, onnxruntime's
# GridSample exactly: at a sharp edge (0.3 a px) they differ by up to a level.
MOVED_TOLERANCE = 4e-3


@pytest.fixture(scope="module")
def ops() -> RegionOps:
    return RegionOps(["CPUExecutionProvider"], session_options())


def _picture(h: int, w: int, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    """A smooth picture with edges (what a face region has), plus Gaussian grain of ``noise`` levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    pic = np.stack([0.5 + 0.3 * np.sin(9 * x + 4 * y), 0.4 + 0.3 * np.cos(7 * y), 0.3 + 0.2 * (x > 0.5)], -1)
    pic = pic + rng.normal(0, noise / 255, pic.shape)
    return np.clip(pic, 0, 1).astype(np.float32)


def _matrix(scale: float, angle: float = 0.2, shift: tuple[float, float] = (-20.0, -15.0)) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def _planes(seed: int = 1, motion: bool = True, gap: bool = False) -> np.ndarray:
    """Planes as `crop_planes` makes them; ``gap``: with a gap between the lips (reggan_plugin.edit.lips), its edges in
    part, where the difference gives back what the paste takes of the moved frame."""
    rng = np.random.default_rng(seed)
    delta = rng.normal(0, 0.05, (SIZE, SIZE, 3))
    layers = [delta, feather_mask(SIZE)[..., None]]
    if motion:
        y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
        layers.append(np.stack([2 * np.sin(3 * y), -1.5 * np.cos(2 * x)], -1))
    if gap:
        opening = np.zeros((SIZE, SIZE, 1))
        opening[36:44, 20:44] = 1.0
        opening[[35, 44], 20:44] = 0.5
        layers[0] = delta + 0.5 * opening
        layers.append(opening)
    return np.concatenate(layers, -1).astype(np.float32)


@pytest.mark.parametrize("scale", [1.7, 0.9, 0.5, 0.3, 0.12])
def test_align_graph_is_warp_to_crop(ops, scale):
    """Upsampling, plain bilinear and mean-pooled downsampling (k = 2, 3, 8) give warp_to_crop's crop."""
    region = _picture(700, 650)
    m = _matrix(scale, shift=(-scale * 200, -scale * 180))
    assert np.abs(ops.align(region, m, SIZE) - warp_to_crop(region, m, SIZE)).max() < 1e-4


@pytest.mark.parametrize("scale, motion, gap", [(0.9, True, False), (0.5, True, False), (0.3, True, False),
                                                (0.3, False, False), (0.5, True, True)])
def test_paste_graph_is_apply_planes(ops, scale, motion, gap):
    region = _picture(300, 280)
    m = _matrix(scale)
    planes = _planes(motion=motion, gap=gap)
    assert planes.shape[-1] == (7 if gap else 6 if motion else 4)
    want, want_mask = apply_planes(region, planes, m)
    got, got_mask = ops.paste(region, planes, m)
    inside = want_mask > 0
    assert inside.sum() > 1000 and np.array_equal(inside, got_mask > 0)
    assert np.abs(got_mask - want_mask).max() < 1e-5
    assert np.abs(got - want)[inside].max() < MOVED_TOLERANCE
    assert np.array_equal(got[~inside], region[~inside]), "pixels the mask does not reach must come back bit for bit"


@pytest.mark.parametrize("gap", [False, True])
def test_paste_graph_moves_a_magnified_face_with_its_detail_as_numpy_does(ops, gap):
    """A magnified face keeps its pixel-scale detail in the graph as in numpy, and where
    the lips' gap opens (the only faces it opens on) shows the paint alone there. Where the mask is 1 both move the
    frame by the same (constant) motion; elsewhere a close-up's planes are sampled apart."""
    rng = np.random.default_rng(2)
    region = np.clip(_picture(400, 400) + rng.uniform(-0.03, 0.03, (400, 400, 1)), 0, 1).astype(np.float32)
    m = _matrix(0.2, angle=0.0, shift=(-8.0, -8.0))
    planes = np.concatenate([np.zeros((SIZE, SIZE, 3)), feather_mask(SIZE)[..., None],
                             np.broadcast_to([1.37, -0.71], (SIZE, SIZE, 2))], -1).astype(np.float32)
    if gap:
        opening = np.zeros((SIZE, SIZE, 1), np.float32)
        opening[36:44, 20:44] = 1.0
        planes = np.concatenate([planes[..., :3] + 0.5 * opening, planes[..., 3:], opening], -1)
    want, want_mask = apply_planes(region, planes, m)
    got, got_mask = ops.paste(region, planes, m)
    full = (want_mask == 1) & (got_mask == 1)
    if gap:  # numpy fills a magnified crop's planes in linearly between two samples a crop pixel (align.
        # warp_planes_from_crop), the graph samples each pixel: they differ along the gap's edge, its one step
        roi, warped = resample.warp_planes_from_crop(planes[..., 6], m, region.shape)
        edge = np.zeros_like(full)
        edge[roi] = (warped[0] > 0) & (warped[0] < 1)
        for _ in range(3):  # and the pixels beside it, where the two put the step's ends
            edge[1:] |= edge[:-1]
            edge[:-1] |= edge[1:]
            edge[:, 1:] |= edge[:, :-1]
            edge[:, :-1] |= edge[:, 1:]
        full &= ~edge
        np.testing.assert_allclose(got[230:250, 160:250], 0.5, atol=1e-5)  # crop rows 38-42: the paint alone
    assert full.sum() > 20000
    assert np.abs(got - want)[full].max() < MOVED_TOLERANCE
    bilinear = resample.sample(region, *np.meshgrid(np.arange(400) + 1.37 / 0.2, np.arange(400) - 0.71 / 0.2))
    assert np.abs(got - bilinear)[full].max() > 0.01, "the graph must not interpolate the detail away"


def test_paste_graph_in_place_writes_the_callers_array(ops):
    region = _picture(300, 280)
    mine = region.copy()
    got, _ = ops.paste(mine, _planes(), _matrix(0.5), inplace=True)
    assert got is mine and not np.array_equal(mine, region)


@pytest.mark.parametrize("case", ["grainy", "small face"])
def test_what_the_paste_graph_cannot_do_is_pasted_in_numpy(ops, case):
    """A grainy region (its structure moves, its grain stays) and a face under half the crop's size (the crop is
    box-downsampled onto it) give exactly the numpy result."""
    region = _picture(300, 280, noise=6.0 if case == "grainy" else 0.0)
    m = _matrix(0.5 if case == "grainy" else 2.5)
    planes = _planes()
    want, want_mask = apply_planes(region, planes, m)
    got, got_mask = ops.paste(region, planes, m)
    assert np.array_equal(got, want) and np.array_equal(got_mask, want_mask)


def test_crop_planes_and_apply_planes_are_paste_back():
    from reggan_plugin.edit.blend import paste_back

    region = _picture(300, 280)
    m = _matrix(0.5)
    crop_in = warp_to_crop(region, m, SIZE)
    crop_out = np.clip(crop_in + _planes()[..., :3], 0, 1)
    motion = _planes()[..., 4:]
    mask = feather_mask(SIZE)
    whole = paste_back(region, crop_in, crop_out, m, mask, motion=motion)
    halves = apply_planes(region, crop_planes(crop_in, crop_out, mask, motion=motion), m)
    assert all(np.array_equal(a, b) for a, b in zip(whole, halves))


def test_region_graphs_are_chosen_where_they_run_on_a_gpu(tiny_onnx):
    cpu = create_backend(load_artifact(tiny_onnx), "cpu")
    assert region_ops_for(cpu, "off") is None
    assert region_ops_for(cpu, "auto") is None, "numpy is faster than the graphs on the CPU"
    assert region_ops_for(cpu, "on").providers == ["CPUExecutionProvider"]


def _render(region_graphs: str, pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    renderer = ExpressionRenderer(InferenceConfig(backend="cpu", region_graphs=region_graphs, find_in_box=False))
    image = ImageData(pixels=pixels, path=None, format="png", linear=False, info={})
    return renderer.apply_image(image, [Face(box=box, landmarks=None, source="given")], EditConfig("happy")).pixels


def test_render_with_the_region_graphs_matches_numpy_and_keeps_alpha():
    """The shipped model on an RGBA frame: the same edit within 3 levels (about 1% of its pixels off by more than one:
    see ``MOVED_TOLERANCE``), every pixel outside the face and the alpha channel bit for bit."""
    from benchmarks.face_sizes import face_frame

    pixels, box = face_frame(480, 360, 200, 0, 1.0)
    assert pixels.shape[2] == 4
    numpy_path, graphs = _render("off", pixels, box), _render("on", pixels, box)
    changed = np.any(numpy_path != pixels, axis=2) | np.any(graphs != pixels, axis=2)
    assert changed.sum() > 1000
    assert np.array_equal(numpy_path[~changed], graphs[~changed])
    assert np.array_equal(graphs[..., 3], pixels[..., 3])
    off = np.abs(numpy_path.astype(int) - graphs.astype(int))
    assert off.max() <= 3 and (off > 1).sum() < 0.02 * changed.sum()


@pytest.mark.gpu
@pytest.mark.skipif(not GPUS, reason=NO_GPU_WHY or "no GPU")
def test_region_graphs_run_on_the_gpu_beside_the_network():
    from benchmarks.face_sizes import face_frame

    renderer = ExpressionRenderer(InferenceConfig(backend="cuda"))
    if renderer.region_ops is None:
        pytest.skip("the cuda backend runs through torch here (no onnxruntime-gpu): the region graphs need it")
    assert renderer.region_ops.providers[0] == "CUDAExecutionProvider"
    pixels, box = face_frame(1920, 1080, 640, 0, 1.0)
    image = ImageData(pixels=pixels, path=None, format="png", linear=False, info={})
    face = [Face(box=box, landmarks=None, source="given")]
    gpu = renderer.apply_image(image, face, EditConfig("happy")).pixels
    cpu = _render("on", pixels, box)
    assert np.abs(gpu.astype(int) - cpu.astype(int)).max() <= 2


def test_the_shipped_graphs_are_what_the_export_makes(tmp_path, ops):
    pytest.importorskip("torch", reason="torch is needed for export (pip install .[export])")
    from click.testing import CliRunner

    from export.cli import export

    done = CliRunner().invoke(export, ["region-graphs", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    fresh = RegionOps(["CPUExecutionProvider"], session_options(), models=tmp_path)
    region, m, planes = _picture(300, 280), _matrix(0.3), _planes()
    assert np.array_equal(fresh.align(region, m, SIZE), ops.align(region, m, SIZE))
    assert all(np.array_equal(a, b) for a, b in zip(fresh.paste(region, planes, m), ops.paste(region, planes, m)))
