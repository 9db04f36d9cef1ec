"""ONNX export: parity with torch, metadata the runtime trusts, bad metadata rejected clearly."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is needed for export (pip install .[export])")
torch = pytest.importorskip("torch", reason="torch is needed for export (pip install .[export])")

from export.onnx_export import ExportError, export_checkpoint, verify_onnx  # noqa: E402
from reggan_plugin.artifact import PREFIX, load_artifact  # noqa: E402
from reggan_plugin.errors import ModelError, UsageError  # noqa: E402
from training.checkpoint import load_generator, save_generator  # noqa: E402
from training.config import TINY  # noqa: E402
from training.models import RegGAN  # noqa: E402


def test_artifact_metadata_and_signature(tiny_model):
    art = load_artifact(tiny_model)
    assert art.input_size == 64 and art.expressions[1] == "happy" and art.has_intensity
    assert art.crop_template.shape == (5, 2)
    assert len(art.sha256) == 64
    proto = onnx.load(str(tiny_model))
    assert proto.opset_import[0].version >= 17
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnx_matches_torch_and_dynamic_batch(tmp_path):
    torch.manual_seed(3)
    model = RegGAN(TINY)
    ckpt = save_generator(tmp_path / "10-G", model, {"iterations": 10})
    onnx_path = export_checkpoint(ckpt, tmp_path / "m.onnx")
    reloaded, info = load_generator(tmp_path / "10-G")
    assert info == {"iterations": 10}
    assert verify_onnx(reloaded, onnx_path, batches=(1, 5)) <= 1e-4
    assert json.loads(load_artifact(onnx_path).provenance["model_config"])["image_size"] == 32


@pytest.mark.parametrize("exposure_reference", [0.0, 0.2])
def test_onnx_matches_torch_with_a_stage1_motion_and_region(tmp_path, exposure_reference):
    torch.manual_seed(4)
    model = RegGAN(dataclasses.replace(TINY, exposure_reference=exposure_reference))
    with torch.no_grad():
        model.stage1.flow.normal_(0, 0.05)
        model.stage1.region.uniform_(0, 1)
    onnx_path = export_checkpoint(save_generator(tmp_path / "1-G", model), tmp_path / "m.onnx")
    assert verify_onnx(model.eval(), onnx_path, batches=(1, 3)) <= 1e-4


def test_stage1_weights_every_colour_shares_are_stored_once(tmp_path):
    """A shared-colour fit exports a third of stage 1's weight maps (the export checks its outputs against the model's);
    channels fitted apart keep theirs."""
    torch.manual_seed(5)
    model = RegGAN(TINY)
    with torch.no_grad():
        model.stage1.weight.copy_(torch.rand_like(model.stage1.weight[:, :1]).expand_as(model.stage1.weight) * 0.2)
    sizes = {}
    for name in ("shared", "apart"):
        onnx_path = export_checkpoint(save_generator(tmp_path / f"{name}-G", model), tmp_path / f"{name}.onnx")
        sizes[name] = onnx_path.stat().st_size
        with torch.no_grad():
            model.stage1.weight[:, 1].mul_(0.5)
    assert model.stage1.weight.shape[1] == 3  # the export's copy is the one changed
    assert sizes["shared"] < 0.6 * sizes["apart"]



@pytest.mark.parametrize("keys", [(), (-0.4, -0.2, 0.0, 0.2, 0.4)])
def test_stage1_weights_shared_by_some_expressions_colours_are_stored_once_for_those(tmp_path, monkeypatch, keys):
    """Where one expression's weights are its own per colour and the others' shared (a recipe's `ridge_shared_colour`
    for some expressions alone), the file stores the shared ones once and that expression's colours beside them:
    smaller than every expression's three, larger than one each, and onnxruntime, the torch route and the preview
    graph compute what the model does. With turn keys (mirrored: stored for one side) and without."""

    from export.half_weights import round_weights_half
    from export.onnx_export import export_model
    from reggan_plugin.faces.turn import Pose, pose_weights

    monkeypatch.setenv("REGGAN_CACHE_DIR", str(tmp_path / "cache"))
    happy = TINY.expressions.index("happy")

    def model(own: tuple[int, ...]) -> RegGAN:
        torch.manual_seed(6)
        out = RegGAN(dataclasses.replace(TINY, turn_keys=keys)).eval()
        with torch.no_grad():
            out.stage1.weight.copy_(torch.rand_like(out.stage1.weight[:, :1]).expand_as(out.stage1.weight) * 0.2)
            out.stage1.bias.add_(torch.rand(out.stage1.bias.shape) * 0.05)
            for e in own:  # that expression's rows (one per key) get colours of their own
                rows = slice(e * max(len(keys), 1), (e + 1) * max(len(keys), 1))
                out.stage1.weight[rows, 1].mul_(0.5)
                out.stage1.weight[rows, 2].add_(0.03)
            if keys:
                out.stage1.mirror_keys()
        return out

    everyone = tuple(range(len(TINY.expressions)))
    sizes = {name: export_model(model(own), tmp_path / f"{name}.onnx").stat().st_size
             for name, own in (("shared", ()), ("happy", (happy,)), ("apart", everyone))}
    assert sizes["shared"] < sizes["happy"] < sizes["apart"]
    assert sizes["happy"] - sizes["shared"] < 0.5 * (sizes["apart"] - sizes["shared"])

    mixed, path = model((happy,)), tmp_path / "happy.onnx"
    if keys:  # every keyed map, the smile's colours among them, stored for the keys facing the camera and one side
        assert {int(i.dims[1]) for i in onnx.load(str(path)).graph.initializer if len(i.dims) == 3} == {3}
    assert mixed.stage1.share_colour() and mixed.stage1.own_colour == (happy,)
    round_weights_half(mixed)  # as the file stores it
    rng = np.random.default_rng(0)
    count = len(TINY.expressions)
    weights = np.stack([np.kron(np.eye(count)[e], pose_weights(Pose(t, None), keys, ())) if keys else np.eye(count)[e]
                        for e, t in ((happy, -0.3), (happy, 0.35), (2, 0.1))]).astype(np.float32)
    weights[2, :] += weights[0, :] * 0.5  # a mix of happy and another
    feeds = {"image": rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32), "expression": weights,
             "intensity": np.array([1.0, 0.7, 1.0], np.float32)}
    _assert_every_route_computes(mixed, path, feeds)


def _assert_every_route_computes(model: RegGAN, path, feeds: dict[str, np.ndarray]) -> None:
    """onnxruntime on the exported ``path`` computes what ``model`` (rounded as the file stores it) does, and the torch
    route and the preview graph cut from the file what onnxruntime does."""
    import onnxruntime as ort

    from reggan_plugin.backends.parity import PARITY_TOLERANCE
    from reggan_plugin.backends.torch_graph import TorchGraph, load_onnx
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    with torch.no_grad():
        want = [t.numpy() for t in model(*(torch.from_numpy(feeds[k]) for k in ("image", "expression", "intensity")))]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["output", "stage1"], feeds)
    assert max(float(np.abs(g - w).max()) for g, w in zip(got, want)) < 1e-4
    graph = TorchGraph(load_onnx(path), device="cpu")
    routed = graph.run({k: torch.from_numpy(v) for k, v in feeds.items()}, ["output"])["output"].numpy()
    assert float(np.abs(routed - got[0]).max()) < PARITY_TOLERANCE["fp32"]
    preview = ExpressionRenderer(InferenceConfig(model=path, backend="cpu", stage="regression"))
    cut = preview.backend.run(feeds["image"], feeds["expression"], feeds["intensity"], outputs=("output",))["output"]
    np.testing.assert_allclose(cut, got[1], atol=1e-6)


@pytest.mark.parametrize("warp", ["bilinear", "bicubic"])
def test_the_paste_moves_the_crop_as_the_model_does(tmp_path, warp):
    """The paste takes the paint as the model's output less the crop moved by the model's motion: the runtime must
    move it with the model's own kernel. With identity maps stage 1 is the moved crop plus its bias, so the two
    agree to float precision; with the other kernel they do not."""
    import onnxruntime as ort

    from reggan_plugin.geometry.resample import moved_crop

    torch.manual_seed(5)
    model = RegGAN(dataclasses.replace(TINY, image_size=64, warp=warp))
    with torch.no_grad():
        y, x = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
        model.stage1.flow[:] = torch.stack([0.05 * torch.sin(3 * y), 0.04 * torch.cos(2 * x)])[None]
    path = export_checkpoint(save_generator(tmp_path / "1-G", model), tmp_path / "m.onnx")
    art = load_artifact(path)
    assert art.warp == warp
    image = np.random.default_rng(1).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    expression = np.eye(len(TINY.expressions), dtype=np.float32)[1:2]
    session = ort.InferenceSession(str(path))
    out = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"image": image, "expression": expression, "intensity": np.ones(1, np.float32)})))
    stage1, motion = out["stage1"][0].transpose(1, 2, 0), out["stage1_motion"][0].transpose(1, 2, 0)
    bias = model.stage1.bias[1].detach().half().float().numpy().transpose(1, 2, 0)  # stored in half precision
    crop = image[0].transpose(1, 2, 0)
    other = "bilinear" if warp == "bicubic" else "bicubic"
    same = np.abs(stage1 - np.clip(moved_crop(crop, motion, warp) + bias, -1, 1)).max()
    different = np.abs(stage1 - np.clip(moved_crop(crop, motion, other) + bias, -1, 1)).max()
    assert same < 1e-4 < 0.05 < different


def test_verify_rejects_a_model_that_differs(tmp_path, tiny_model):
    other = RegGAN(dataclasses.replace(TINY, image_size=64))  # other random weights than the exported ones
    with pytest.raises(ExportError, match="differs from torch"):
        verify_onnx(other, tiny_model)


def _rewrite_metadata(src, dst, edit):
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    edit(props)
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p.pop(PREFIX + "expressions"), "missing"),
        (lambda p: p.update({PREFIX + "format_version": "99"}), "format_version"),
        (lambda p: p.update({PREFIX + "input_size": "abc"}), "input_size"),
        (lambda p: p.update({PREFIX + "input_size": "128"}), "shape"),
        (lambda p: p.update({PREFIX + "expressions": "[\"happy\"]"}), "expression"),
        (lambda p: p.update({PREFIX + "expressions": "not json"}), "not JSON"),
        (lambda p: p.update({PREFIX + "expressions": json.dumps(["neutral", "happy", "smile@0.5"])}), "not a key"),
        (lambda p: p.update({PREFIX + "value_range": "0,1"}), "value_range"),
        (lambda p: p.update({PREFIX + "crop_template": "[[1, 2]]"}), "crop_template"),
        (lambda p: p.update({PREFIX + "provenance": json.dumps({"model_config": json.dumps({"warp": "lanczos"})})}),
         "warp"),
    ],
)
def test_bad_metadata_is_a_clear_model_error(tmp_path, tiny_model, edit, message):
    bad = _rewrite_metadata(tiny_model, tmp_path / "bad.onnx", edit)
    with pytest.raises(ModelError, match=message) as info:
        load_artifact(bad)
    assert str(bad) in str(info.value)


def test_not_a_model_and_missing_model(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_artifact(junk)
    with pytest.raises(ModelError, match="not found"):
        load_artifact(tmp_path / "absent.onnx")


def test_expression_weights(tiny_model):
    art = load_artifact(tiny_model)
    assert art.expression_weights("sad").tolist() == [0, 0, 1, 0, 0, 0, 0]
    np.testing.assert_allclose(art.expression_weights("happy=0.6,surprised=0.4")[[1, 3]], [0.6, 0.4])
    with pytest.raises(UsageError, match="unknown expression 'smug'"):
        art.expression_weights("smug")
    with pytest.raises(UsageError, match="sum to at most 1"):
        art.expression_weights("happy=0.9,sad=0.9")


def test_a_mix_below_one_is_that_much_neutral(tiny_model):
    """The regression stage blends per-expression maps: the rest of a mix goes to neutral, not nowhere."""
    art = load_artifact(tiny_model)
    assert art.expression_weights("happy=0.25,sad=0.25").tolist() == [0.5, 0.25, 0.25, 0, 0, 0, 0]
    assert art.expression_weights({"happy": 0.0}).tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert art.expression_weights({"happy": 0.5, "neutral": 0.25}).tolist() == [0.25, 0.5, 0, 0, 0, 0, 0]


@pytest.mark.slow  # torch export and verification in a subprocess
def test_export_onnx_command(tmp_path):
    import subprocess
    import sys

    torch.manual_seed(5)
    save_generator(tmp_path / "7-G", RegGAN(TINY), {"iterations": 7})
    proc = subprocess.run(
        [sys.executable, "-m", "reggan_plugin.cli", "export", "onnx", "--checkpoint", tmp_path / "7-G", "--out", tmp_path / "m.onnx"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert load_artifact(tmp_path / "m.onnx").provenance["iterations"] == 7
    carried = subprocess.run(
        [sys.executable, "-m", "reggan_plugin.cli", "export", "onnx", "--checkpoint", tmp_path / "7-G", "--out",
         tmp_path / "c.onnx", "--mix", "carried"], capture_output=True, text=True,
    )
    assert carried.returncode == 0, carried.stderr
    assert json.loads(load_artifact(tmp_path / "c.onnx").provenance["model_config"])["mix"] == "carried"
    missing = subprocess.run(
        [sys.executable, "-m", "reggan_plugin.cli", "export", "onnx", "--checkpoint", tmp_path / "nope", "--out", tmp_path / "x.onnx"],
        capture_output=True, text=True,
    )
    assert missing.returncode == 3 and "nope.safetensors" in missing.stderr and not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("exposure_reference", [0.0, 0.2])
def test_preview_graph_is_the_regression_stage_alone_and_the_renderer_uses_it(tmp_path, monkeypatch, exposure_reference):
    """`--stage regression` runs stage 1 cut out of the model (cached per user), equal to the full graph's stage 1,
    its exposure normalisation included."""
    from conftest import make_tiny_model

    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends.preview_graph import PREVIEW_OF_KEY, preview_path
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    tiny_model = make_tiny_model(tmp_path / "tiny.onnx", exposure_reference=exposure_reference)
    monkeypatch.setenv("REGGAN_CACHE_DIR", str(tmp_path / "cache"))
    assert not tiny_model.with_name(tiny_model.stem + ".preview.onnx").exists()  # export writes no second graph
    art = load_artifact(tiny_model)
    fast = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", stage="regression"))
    cut = preview_path(art.sha256, tmp_path / "cache")
    assert fast.backend.artifact.path == cut.resolve()
    proto = onnx.load(str(cut))
    onnx.checker.check_model(proto)
    nodes = {n.op_type for n in proto.graph.node}
    assert "Conv" not in nodes and "InstanceNormalization" not in nodes  # the refiner is gone
    assert load_artifact(cut).metadata[PREVIEW_OF_KEY] == art.sha256
    assert load_artifact(cut).expressions == art.expressions and load_artifact(cut).has_motion

    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    expression = np.eye(len(art.expressions), dtype=np.float32)[[0, 1, 2]]
    intensity = np.array([1.0, 0.7, 0.3], np.float32)
    full = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu"))
    want = full.backend.run(image, expression, intensity, outputs=("stage1", "stage1_motion"))
    got = fast.backend.run(image, expression, intensity, outputs=("output", "motion"))
    np.testing.assert_array_equal(got["output"], want["stage1"])
    np.testing.assert_array_equal(got["motion"], want["stage1_motion"])

    mtime = cut.stat().st_mtime_ns
    ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", stage="regression"))
    assert cut.stat().st_mtime_ns == mtime  # cut once, then reused


def test_a_graph_that_cannot_be_cut_falls_back_to_the_full_graph(tmp_path, tiny_model, monkeypatch, caplog):
    from reggan_plugin.backends.preview_graph import cut_regression_stage
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.errors import ModelError
    from reggan_plugin.renderer import ExpressionRenderer

    with pytest.raises(ModelError, match="stage1"):
        proto = onnx.load(str(tiny_model))
        for output in proto.graph.output:
            if output.name == "stage1":
                output.name = "renamed"
        cut_regression_stage(proto.SerializeToString(), "0" * 64)
    with pytest.raises(ModelError, match="truncated"):
        cut_regression_stage(tiny_model.read_bytes()[:1000], "0" * 64)
    unwritable = tmp_path / "cache"
    unwritable.write_text("a file where the cache folder should be")
    monkeypatch.setenv("REGGAN_CACHE_DIR", str(unwritable))
    renderer = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu", stage="regression"))
    assert renderer.backend.artifact.path == tiny_model.resolve()  # the full graph, fetching stage1
    crops = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    assert renderer.forward(crops, EditConfig("sad", 0.7)).shape == (2, 64, 64, 5)


def test_motion_outputs_are_optional_but_come_together(tmp_path, tiny_model):
    from reggan_plugin.backends.preview_graph import derive_preview
    from reggan_plugin.config import EditConfig, InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    art = load_artifact(tiny_model)
    assert art.has_motion and load_artifact(derive_preview(tiny_model, art.sha256, cache=tmp_path)).has_motion
    crops = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    with_motion = ExpressionRenderer(InferenceConfig(model=tiny_model, backend="cpu")).forward(crops, EditConfig("happy"))
    assert with_motion.shape == (2, 64, 64, 5) and np.abs(with_motion[..., 3:]).max() > 0

    def without(names: set[str]):
        proto = onnx.load(str(tiny_model))
        kept = [o for o in proto.graph.output if o.name not in names]
        del proto.graph.output[:]
        proto.graph.output.extend(kept)
        path = tmp_path / f"no_{'_'.join(sorted(names))}.onnx"
        onnx.save(proto, str(path))
        return path

    with pytest.raises(ModelError, match="motion outputs come together"):
        load_artifact(without({"stage1_motion"}))
    older = without({"motion", "stage1_motion"})  # a model exported before the motion outputs
    assert not load_artifact(older).has_motion
    plain = ExpressionRenderer(InferenceConfig(model=older, backend="cpu")).forward(crops, EditConfig("happy"))
    np.testing.assert_allclose(plain, with_motion[..., :3], atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny", "default"])
def test_every_preset_exports_a_model_that_renders(tmp_path, preset):
    import torch

    from export.onnx_export import export_model
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.faces import whole_image_face
    from reggan_plugin.renderer import ExpressionRenderer
    from training.cli import PRESETS
    from training.models import RegGAN

    torch.manual_seed(0)
    path = export_model(RegGAN(PRESETS[preset]), tmp_path / f"{preset}.onnx")
    renderer = ExpressionRenderer(InferenceConfig(model=path, backend="cpu"))
    pixels = np.random.default_rng(0).integers(0, 256, (96, 80, 3), dtype=np.uint8)
    out = renderer.apply_array(pixels, faces=[whole_image_face(96, 80)], expression="happy")
    assert out.shape == pixels.shape and out.dtype == np.uint8


def test_export_refuses_a_model_render_could_not_run(tmp_path):
    import torch

    from export.onnx_export import export_model
    from training.models import RegGAN

    torch.manual_seed(0)
    with pytest.raises(ExportError, match=r"would not run in `render`.*16 px crops"):
        export_model(RegGAN(dataclasses.replace(TINY, image_size=16)), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("tilts", [(), (-0.2, 0.1)])
def test_a_stage1_whose_turned_keys_mirror_each_other_is_stored_for_one_side(tmp_path, monkeypatch, tilts):
    """Keys turned one way that are the mirror images of the other way's (`LocalRegression.mirror_keys`) are made in
    the graph from those: the file keeps three of five keys, and onnxruntime, the torch route and the preview graph
    compute what the model does. A stage 1 whose keys are fitted apart keeps them all. With tilt keys too (a flow
    per turn and tilt key, faces between them)."""
    from reggan_plugin.faces.turn import Pose, pose_weights

    keys = (-0.4, -0.2, 0.0, 0.2, 0.4)
    monkeypatch.setenv("REGGAN_CACHE_DIR", str(tmp_path / "cache"))

    def model(mirrored: bool) -> RegGAN:
        torch.manual_seed(0)
        out = RegGAN(dataclasses.replace(TINY, turn_keys=keys, tilt_keys=tilts, mix="carried")).eval()
        with torch.no_grad():
            for tensor in (out.stage1.weight, out.stage1.bias, out.stage1.flow, out.stage1.region):
                tensor.add_(torch.rand(tensor.shape) * 0.05)
        if mirrored:
            out.stage1.mirror_keys()
        return out

    def keyed_counts(path) -> set[int]:
        return {int(i.dims[1]) for i in onnx.load(str(path)).graph.initializer
                if len(i.dims) == 3 and i.dims[0] == len(TINY.expressions)}

    from export.onnx_export import export_model

    mirrored = model(True)
    path = export_model(mirrored, tmp_path / "mirrored.onnx")
    assert keyed_counts(path) == {3}
    assert keyed_counts(export_model(model(False), tmp_path / "apart.onnx")) == {5}

    rng = np.random.default_rng(0)
    weights = np.stack([np.kron(np.eye(len(TINY.expressions))[e], pose_weights(Pose(t, v), keys, tilts))
                        for e, t, v in ((1, -0.3, -0.1), (3, 0.35, 0.0), (2, -0.4, None))]).astype(np.float32)
    feeds = {"image": rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32), "expression": weights,
             "intensity": np.array([1.0, 0.7, 1.0], np.float32)}
    from export.half_weights import round_weights_half

    round_weights_half(mirrored)  # as the file stores it
    _assert_every_route_computes(mirrored, path, feeds)
