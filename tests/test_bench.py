"""`reggan-plugin bench`: its counting helpers, and an end-to-end smoke run on a tiny model (no timings asserted)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from benchmarks import bench, network, pipeline, timing  # noqa: E402


def _conv_model(path, cin=3, cout=5, k=3, stride=2, size=16):
    weight = numpy_helper.from_array(np.zeros((cout, cin, k, k), np.float32), "w")
    mat = numpy_helper.from_array(np.zeros((cout * (size // stride) ** 2, 7), np.float32), "m")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[k, k], strides=[stride, stride], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["y"], ["f"]),
        helper.make_node("MatMul", ["f", "m"], ["z"]),
        helper.make_node("Einsum", ["z", "z"], ["e"], equation="ni,nj->nij"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", cin, size, size])],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)], initializer=[weight, mat])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(proto, path)


def test_model_macs_counts_conv_matmul_and_einsum(tmp_path):
    _conv_model(tmp_path / "m.onnx")
    macs = network.model_macs(tmp_path / "m.onnx")
    out_elems = 5 * 8 * 8
    assert macs["Conv"] == out_elems * 3 * 3 * 3  # each output sums Cin * k * k products
    assert macs["MatMul"] == 7 * out_elems  # [1, 320] x [320, 7]
    assert macs["Einsum"] == 1 * 7 * 7


def test_bar_chart_draws_every_bar(tmp_path):
    path = tmp_path / "chart.png"
    timing.bar_chart(path, [("a", 1.0), ("b", 10.0), ("c", 5.0)], "title", "/s")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[0] > 3 * 20
    coloured = (np.abs(image.astype(int) - image.mean(axis=2, keepdims=True)) > 30).any(axis=2)
    rows = np.flatnonzero(coloured.any(axis=1))
    bands = 1 + int(np.count_nonzero(np.diff(rows) > 1))
    assert bands == 3  # one coloured bar per value
    widths = [int(coloured[r].sum()) for r in (rows[0], rows[-1])]
    assert widths[0] < widths[1]  # 1.0 is drawn shorter than 5.0


def test_synthetic_frame_is_an_rgba_render_with_a_face():
    frame = pipeline.synthetic_frame(160, 90, 0, (80, 45, 40))
    assert frame.shape == (90, 160, 4) and frame.dtype == np.uint8
    assert (frame[..., 3] == 255).all()
    assert frame[45, 80, 0] > frame[5, 5, 0] + 60  # skin is brighter than the background


@pytest.mark.slow
def test_bench_quick_runs_end_to_end_and_writes_the_table(tmp_path):
    result = CliRunner().invoke(bench.bench, ["--quick", "--out", str(tmp_path), "--frames", "2", "--long-frames", "3"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = (tmp_path / "BENCHMARKS.md").read_text()
    for needle in ("## Acceptance", "torch eager, 1 face per call", "cpu backend (onnxruntime), best batch",
                   "regression stage alone", "render pipeline", "GEMM ceiling", "Memory over 3 frames", "Quick smoke run"):
        assert needle in text, needle
    table = [line for line in text.splitlines() if line.startswith("| a |")]
    assert table and float(table[0].split("|")[3]) > 0
    assert Image.open(tmp_path / "benchmarks.png").size[0] > 200


def test_architecture_variants_build_and_keep_the_model_contract():
    """The variants are built by module surgery on the current RegGAN: a refiner change must not break them."""
    import torch

    from training.config import ModelConfig

    config = ModelConfig(image_size=32, conv_dim=8, n_res=1)
    models = network.variant_models(config)
    assert len(models) == 6
    image, expression = torch.rand(1, 3, 32, 32) * 2 - 1, torch.eye(len(config.expressions))[1:2]
    shapes = {name: tuple(model(image, expression, torch.ones(1))[0].shape) for name, model in models.items()}
    assert set(shapes.values()) == {(1, 3, 32, 32)}, shapes


def test_face_frame_puts_the_sample_face_at_the_wanted_height():
    from benchmarks import face_sizes

    pixels, (x, y, w, h) = face_sizes.face_frame(640, 360, 200)
    assert pixels.shape == (360, 640, 4) and pixels.dtype == np.uint8 and (pixels[..., 3] == 255).all()
    assert h == pytest.approx(200) and abs(x + w / 2 - 320) <= 1 and abs(y + h / 2 - 180) <= 1
    inside = pixels[int(y + h / 2), int(x + w / 2), :3].astype(int)
    corner = pixels[5, 5, :3].astype(int)
    assert inside[0] > corner[0] + 80  # skin, not the backdrop


def test_step_costs_time_every_step_and_the_table_compares_faces(tmp_path):
    from benchmarks import face_sizes
    from reggan_plugin.config import InferenceConfig
    from reggan_plugin.renderer import ExpressionRenderer

    renderer = ExpressionRenderer(InferenceConfig(backend="cpu", batch=1))
    cases = []
    for face in (60, 120):
        path = tmp_path / f"f{face}.png"
        box = face_sizes.write_face_frame(path, 320, 240, face)
        cases.append(face_sizes.SizeCase(320, 240, face, face_sizes.step_costs(path, box, renderer, repeats=1)))
    assert all(set(c.ms) == set(face_sizes.STEPS) and all(v >= 0 for v in c.ms.values()) for c in cases)
    path = tmp_path / "grainy.png"
    box = face_sizes.write_face_frame(path, 320, 240, 120, noise=face_sizes.GRAINY_SIGMA)
    cases.append(face_sizes.SizeCase(320, 240, 120, face_sizes.step_costs(path, box, renderer, repeats=1),
                                     face_sizes.GRAINY_SIGMA))
    cases.append(face_sizes.SizeCase(320, 240, 120, {step: 2 * ms for step, ms in cases[1].ms.items()},
                                     expression=face_sizes.OPEN_EXPRESSION))
    assert face_sizes.size_ratio(cases, face=120, reference=60, height=240) == pytest.approx(cases[1].total / cases[0].total)
    assert face_sizes.size_ratio(cases, face=120, reference=60, height=240, expression=face_sizes.OPEN_EXPRESSION) == \
        pytest.approx(cases[3].total / cases[0].total)  # against the default case, not the other expression's
    table = face_sizes.face_size_markdown(cases, reference=60)
    assert table[0].startswith("| step | 60 px, 240p | 120 px, 240p | 120 px, 240p, noise sigma 6 | "
                               f"120 px, 240p, {face_sizes.OPEN_EXPRESSION} |")
    assert table[-1].split("|")[2].strip() == "1.00x"
    assert table[-1].split("|")[4].strip() == f"{cases[2].total / cases[0].total:.2f}x"  # against the clean face
    assert table[-1].split("|")[5].strip() == f"{cases[3].total / cases[0].total:.2f}x"


def test_memory_trend_tells_growth_from_a_transient():
    from benchmarks.pipeline import rss_trend

    flat = [1000.0 + 80.0 * (i % 3) for i in range(200)]  # the queues' fill moving RSS up and down
    flat[-5] = 1250.0  # a moment with every queue full
    early, late = rss_trend(flat)
    assert abs(late - early) < 50
    leaking = [1000.0 + 2.0 * i for i in range(200)]  # 2 MiB more every frame
    early, late = rss_trend(leaking)
    assert late - early > 300


def test_the_benchmarks_batches_fit_the_shipped_model_and_its_torch_twin(tmp_path):
    """The shipped model takes a weight per expression and turn key: the benchmark's batches have that width, and both
    the model and the torch twin it times run them."""
    import torch

    from reggan_plugin.artifact import default_model_path, load_artifact
    from reggan_plugin.backends import create_backend

    model, path, _ = network.load_shipped(default_model_path(), tmp_path)
    artifact = load_artifact(path)
    feeds = network.inputs(2, model.config.image_size, network.expression_width(model.config))
    assert feeds["expression"].shape == (2, artifact.input_width) and artifact.input_width > len(artifact.expressions)
    assert create_backend(artifact, "cpu").run(feeds["image"], feeds["expression"], feeds["intensity"])["output"].shape[0] == 2
    with torch.no_grad():
        assert model(*(torch.from_numpy(v) for v in feeds.values()))[0].shape[0] == 2


def test_the_shipped_models_regression_stage_is_counted():
    """The turn-keyed model mixes its stage-1 weights through reshapes ONNX's shape inference cannot follow: its
    einsums are counted all the same (a shape left unknown would count them as nothing)."""
    from reggan_plugin.artifact import default_model_path

    macs = network.model_macs(default_model_path())
    assert macs["Einsum"] > 1e6 and macs["Conv"] > 1e9
