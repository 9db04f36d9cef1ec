"""Backends: selection and its error paths, the CPU backend against onnxruntime, the fp16 NaN/inf check,
the environment report, and the torch route of the cuda backend (its ONNX-graph executor runs on the CPU
here, so its parity with onnxruntime is checked even without a GPU). GPU runs are marked `gpu`."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reggan_plugin.artifact import build_metadata, load_artifact
from reggan_plugin.backends import check_finite, create_backend, describe_environment
from reggan_plugin.backends import environment as env
from reggan_plugin.errors import BackendUnavailable, NumericalError, UsageError
from reggan_plugin.faces.turn import FACING, Pose

EXPRESSIONS = ("neutral", "happy", "sad", "surprised", "angry", "disgusted", "fearful")
TINY_SIZE = 16

onnx = pytest.importorskip("onnx")


def build_tiny_onnx(path: Path, *, size: int = TINY_SIZE, expressions=EXPRESSIONS, extra_node=None, seed: int = 0) -> Path:
    """A tiny RegGAN-shaped ONNX (opset 17, dynamic batch) with the artifact signature and metadata.

    image ++ tiled expression -> conv(stride 2) -> LeakyRelu -> InstanceNorm -> Resize x2 (nearest) ->
    conv -> attention (Sigmoid) -> conv -> Tanh = stage1; output = image + intensity * (stage1 - image).
    `extra_node` (an onnx NodeProto reading "h" and writing "h_extra") splices in an op for preflight tests.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    e = len(expressions)

    def init(name, shape, scale=0.2):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    def const(name, values, dtype=np.int64):
        return numpy_helper.from_array(np.asarray(values, dtype), name)

    c = 8
    inits = [
        init("w1", (c, 3 + e, 3, 3)), init("b1", (c,), 0.05),
        numpy_helper.from_array(np.ones(c, np.float32), "in_scale"), numpy_helper.from_array(np.zeros(c, np.float32), "in_bias"),
        init("w2", (c, c, 3, 3)), init("b2", (c,), 0.05),
        init("wa", (1, c, 1, 1)), init("ba", (1,), 0.05),
        init("w3", (3, c, 3, 3)), init("b3", (3,), 0.05),
        const("axes23", [2, 3]), const("tile_shape", [1, 1, size, size]), const("col", [-1, 1, 1, 1]),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    h_out = "h_extra" if extra_node is not None else "h"
    nodes = [
        helper.make_node("Unsqueeze", ["expression", "axes23"], ["e4"]),
        helper.make_node("Expand", ["e4", "tile_shape"], ["emap"]),
        helper.make_node("Concat", ["image", "emap"], ["x"], axis=1),
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("LeakyRelu", ["c1"], ["r1"], alpha=0.2),
        helper.make_node("InstanceNormalization", ["r1", "in_scale", "in_bias"], ["n1"], epsilon=1e-5),
        helper.make_node("Resize", ["n1", "", "scales"], ["h"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        *([extra_node] if extra_node is not None else []),
        helper.make_node("Conv", [h_out, "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "wa", "ba"], ["alogit"]),
        helper.make_node("Sigmoid", ["alogit"], ["att"]),
        helper.make_node("Mul", ["r2", "att"], ["r2a"]),
        helper.make_node("Conv", ["r2a", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c3"], ["stage1"]),
        helper.make_node("Sub", ["stage1", "image"], ["delta"]),
        helper.make_node("Reshape", ["intensity", "col"], ["alpha"]),
        helper.make_node("Mul", ["alpha", "delta"], ["scaled"]),
        helper.make_node("Add", ["image", "scaled"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_reggan",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size]),
         helper.make_tensor_value_info("expression", TensorProto.FLOAT, ["N", e]),
         helper.make_tensor_value_info("intensity", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, size, size]),
         helper.make_tensor_value_info("stage1", TensorProto.FLOAT, ["N", 3, size, size])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)]
    if extra_node is not None and extra_node.domain not in ("", "ai.onnx"):
        opsets.append(helper.make_opsetid(extra_node.domain, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="reggan-plugin tests")
    model.ir_version = 8
    for key, value in build_metadata(input_size=size, expressions=expressions, provenance={"test": "tiny"}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_artifact(tiny_onnx: Path):
    return load_artifact(tiny_onnx)


def batch(artifact, n: int = 3, seed: int = 1):
    rng = np.random.default_rng(seed)
    s, e = artifact.input_size, len(artifact.expressions)
    image = rng.uniform(-1, 1, (n, 3, s, s)).astype(np.float32)
    weights = np.eye(e, dtype=np.float32)[rng.integers(0, e, n)]
    intensity = rng.uniform(0, 1, n).astype(np.float32)
    turns = rng.uniform(-0.4, 0.4, n)  # a model fitted at turn keys takes each face's weights about its turn
    tilts = rng.uniform(-0.3, 0.15, n)
    expression = np.stack([artifact.posed(w, Pose(t, v)) for w, t, v in zip(weights, turns, tilts)])
    return image, expression, intensity


NO_GPU = not env.nvidia_gpus()[0]
NO_GPU_REASON = env.nvidia_gpus()[1] or "a GPU is present"
requires_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks the GPU-less error paths; this machine has an NVIDIA GPU")


# ----------------------------------------------------------------------------------------------- cpu backend
def test_cpu_backend_equals_direct_onnxruntime(tiny_artifact):
    import onnxruntime as ort

    image, expression, intensity = batch(tiny_artifact)
    backend = create_backend(tiny_artifact, "cpu")
    got = backend.run(image, expression, intensity, outputs=("output", "stage1"))
    session = ort.InferenceSession(str(tiny_artifact.path), providers=["CPUExecutionProvider"])
    want_out, want_s1 = session.run(["output", "stage1"], {"image": image, "expression": expression, "intensity": intensity})
    np.testing.assert_allclose(got["output"], want_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got["stage1"], want_s1, rtol=0, atol=1e-5)
    assert got["output"].dtype == np.float32 and got["output"].shape == image.shape
    assert backend.name == "cpu" and "onnxruntime" in backend.description and "fp32" in backend.description
    assert backend.session.get_providers() == ["CPUExecutionProvider"]
    # the tuned options really are set
    assert backend.session.get_session_options().intra_op_num_threads == env.physical_cores()


def test_cpu_backend_intensity_zero_is_identity_and_accepts_a_path(tiny_onnx):
    backend = create_backend(tiny_onnx, "cpu")
    image, expression, _ = batch(backend.artifact, n=2)
    out = backend.run(image, expression, np.zeros(2, np.float32))["output"]
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_cpu_backend_rejects_bad_shapes_and_outputs(tiny_artifact):
    backend = create_backend(tiny_artifact, "cpu")
    image, expression, intensity = batch(tiny_artifact, n=2)
    s = tiny_artifact.input_size
    with pytest.raises(UsageError, match=rf"\[N,3,{s},{s}\]"):
        backend.run(image[:, :, :8], expression, intensity)
    with pytest.raises(UsageError, match="expression batch"):
        backend.run(image, expression[:, :3], intensity)
    with pytest.raises(UsageError, match="intensity batch"):
        backend.run(image, expression, intensity[:1])
    with pytest.raises(UsageError, match="unknown output"):
        backend.run(image, expression, intensity, outputs=("logits",))


def test_cpu_backend_refuses_fp16_explicitly(tiny_artifact):
    with pytest.raises(UsageError, match="fp32 only"):
        create_backend(tiny_artifact, "cpu", precision="fp16")


def test_unknown_backend_and_precision(tiny_artifact):
    with pytest.raises(UsageError, match="unknown backend 'rocm'"):
        create_backend(tiny_artifact, "rocm")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown precision"):
        create_backend(tiny_artifact, "cpu", precision="int8")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- selection on a GPU-less box
@requires_no_gpu
@pytest.mark.parametrize("name", ["cuda", "tensorrt"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_explicit_gpu_backend_without_gpu_is_an_error_with_the_reason(tiny_artifact, name, precision):
    with pytest.raises(BackendUnavailable) as info:
        create_backend(tiny_artifact, name, precision=precision)
    message = str(info.value)
    assert message.startswith(f"{name} backend")
    assert "no NVIDIA GPU" in message and "nvidia-smi not found" in message
    assert "install the NVIDIA driver" in message  # the fix
    assert "\n" not in message


@requires_no_gpu
def test_auto_without_gpu_picks_cpu_and_logs_why(tiny_artifact, caplog):
    with caplog.at_level(logging.INFO, logger="reggan_plugin.backends"):
        backend = create_backend(tiny_artifact, "auto")
    assert backend.name == "cpu"
    text = caplog.text
    assert "picked cpu" in text
    assert "tensorrt backend: no NVIDIA GPU" in text and "cuda backend: no NVIDIA GPU" in text
    assert backend.selection.startswith("auto picked cpu") and "no NVIDIA GPU" in backend.selection
    assert "tensorrt and cuda backends: no NVIDIA GPU" in backend.selection  # one reason, said once
    assert backend.selection.count("no NVIDIA GPU") == 1
    image, expression, intensity = batch(tiny_artifact, n=1)
    assert backend.run(image, expression, intensity)["output"].shape == image.shape


@requires_no_gpu
def test_auto_fp16_without_gpu_runs_fp32_on_cpu_and_says_so(tiny_artifact, caplog):
    with caplog.at_level(logging.INFO, logger="reggan_plugin.backends"):
        backend = create_backend(tiny_artifact, "auto", precision="fp16")
    assert backend.name == "cpu" and backend.precision == "fp32"
    assert "fp16 is not available on the CPU" in caplog.text


def test_cuda_error_names_missing_onnxruntime_gpu_and_torch_cuda(tiny_artifact, monkeypatch):
    """With a GPU seen but neither onnxruntime-gpu nor torch CUDA present, both reasons and fixes are named.

    The GPU probe is replaced (the only stand-in in this file): everything after it is the real code path
    on this machine's real onnxruntime (CPU build) and torch (CPU build)."""
    if env.onnxruntime_cuda().ok or env.torch_cuda().ok:
        pytest.skip("this machine has onnxruntime-gpu or torch CUDA")
    monkeypatch.setattr(env, "gpu", lambda device_id=0: env.Probe(True, "GPU 0 (stand-in)"))
    with pytest.raises(BackendUnavailable) as info:
        create_backend(tiny_artifact, "cuda")
    message = str(info.value)
    assert "onnxruntime-gpu" in message and "pip install onnxruntime-gpu" in message
    assert "torch CUDA" in message and ("CPU-only build" in message or "not installed" in message)


def test_tensorrt_error_names_missing_tensorrt(tiny_artifact, monkeypatch):
    if env.tensorrt().ok:
        pytest.skip("TensorRT is installed here")
    monkeypatch.setattr(env, "gpu", lambda device_id=0: env.Probe(True, "GPU 0 (stand-in)"))
    with pytest.raises(BackendUnavailable, match=r"tensorrt backend: .*TensorRT.*(not installed|do not load)"):
        create_backend(tiny_artifact, "tensorrt")


# ----------------------------------------------------------------------------------------- NaN/inf check
def test_check_finite_passes_finite_arrays():
    check_finite({"output": np.zeros((2, 3, 4, 4), np.float32)}, backend="tensorrt", precision="fp16")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_fp16_suggests_fp32(bad):
    array = np.zeros((2, 3, 4, 4), np.float32)
    array[1, 2, 3, 0] = bad
    with pytest.raises(NumericalError) as info:
        check_finite({"output": array}, backend="tensorrt", precision="fp16")
    message = str(info.value)
    assert "--precision fp32" in message and "'output'" in message and "batch item 1" in message and "1 NaN/inf" in message


def test_check_finite_fp32_does_not_suggest_fp32():
    array = np.full((1, 3, 2, 2), np.nan, np.float32)
    with pytest.raises(NumericalError) as info:
        check_finite({"stage1": array}, backend="cuda", precision="fp32")
    assert "12 NaN/inf" in str(info.value) and "--precision fp32" not in str(info.value)


# ------------------------------------------------------------------------------------ environment report
def test_describe_environment_rows_say_why_not():
    rows = dict(describe_environment())
    for label in ("CUDA runtime", "onnxruntime", "onnxruntime CUDA", "TensorRT", "torch CUDA", "engine cache",
                  "backend cpu", "backend cuda", "backend tensorrt", "backend auto"):
        assert label in rows, label
    assert rows["backend cpu"].startswith("yes")
    assert "CPUExecutionProvider" in rows["onnxruntime"]
    if NO_GPU:
        assert rows["GPU"].startswith("none: no NVIDIA GPU")
        assert rows["backend cuda"].startswith("no: no NVIDIA GPU")
        assert rows["backend tensorrt"].startswith("no: ")
        assert rows["backend auto"] == "would pick cpu: onnxruntime CPUExecutionProvider"


def test_importing_backends_imports_no_torch_tensorrt_or_onnxruntime():
    code = ("import sys, reggan_plugin.backends, reggan_plugin.backends.tensorrt, reggan_plugin.backends.cuda; "
            "bad = [m for m in ('torch', 'tensorrt', 'onnxruntime', 'onnx') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_physical_cores_is_sane():
    import os

    assert 1 <= env.physical_cores() <= (os.cpu_count() or 1)


# ----------------------------------------------------------- cuda backend's torch route, executed on the CPU
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("which", ["tiny_onnx", "helper_model"])
def test_torch_route_matches_onnxruntime_on_cpu(tiny_onnx, tmp_path, which):
    """The executor the cuda backend uses without onnxruntime-gpu, run on the CPU device: same numbers as onnxruntime."""
    from reggan_plugin.backends.cuda import TorchCudaBackend

    path = tiny_onnx if which == "tiny_onnx" else build_tiny_onnx(tmp_path / "helper.onnx")
    artifact = load_artifact(path)
    backend = TorchCudaBackend(artifact, precision="fp32", device="cpu")  # verifies itself against onnxruntime too
    image, expression, intensity = batch(artifact, n=4)
    want = create_backend(artifact, "cpu").run(image, expression, intensity, outputs=("output", "stage1"))
    got = backend.run(image, expression, intensity, outputs=("output", "stage1"))
    for name in ("output", "stage1"):
        assert np.abs(got[name] - want[name]).max() < 1e-4, name
    assert "ONNX graph on cpu" in backend.description and "fp32" in backend.description


def test_the_torch_route_takes_read_only_arrays_without_a_warning(tiny_onnx):
    """numpy hands out read-only arrays (a decoded frame, a broadcast); torch warns once on wrapping one ("undefined
    behavior"), which users of the cuda backend saw on every run: the route copies those first."""
    import warnings

    from reggan_plugin.backends.cuda import TorchCudaBackend

    artifact = load_artifact(tiny_onnx)
    backend = TorchCudaBackend(artifact, precision="fp32", device="cpu", verify=False)
    arrays = batch(artifact, n=2)
    for array in arrays:
        array.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = backend.run(*arrays)["output"]
    assert np.abs(got - create_backend(artifact, "cpu").run(*arrays)["output"]).max() < 1e-4


def test_torch_route_fp16_on_cpu_is_close(tiny_onnx):
    from reggan_plugin.backends.cuda import TorchCudaBackend
    from reggan_plugin.backends.parity import PARITY_TOLERANCE

    artifact = load_artifact(tiny_onnx)
    try:
        backend = TorchCudaBackend(artifact, precision="fp16", device="cpu", verify=False)
        image, expression, intensity = batch(artifact, n=2)
        got = backend.run(image, expression, intensity)["output"]
    except BackendUnavailable as exc:
        if "not implemented for 'Half'" in str(exc):
            pytest.skip(f"this torch build has no fp16 CPU kernels: {exc}")
        raise
    want = create_backend(artifact, "cpu").run(image, expression, intensity)["output"]
    assert np.abs(got - want).max() < PARITY_TOLERANCE["fp16"]


def test_torch_route_refuses_unknown_ops_naming_them(tmp_path):
    from onnx import helper

    from reggan_plugin.backends.torch_graph import TorchGraph

    path = build_tiny_onnx(tmp_path / "odd.onnx", extra_node=helper.make_node("DFT", ["h"], ["h_extra"], name="spectral_0"))
    with pytest.raises(BackendUnavailable, match=r"unsupported op\(s\) DFT \(spectral_0\).*pip install onnxruntime-gpu"):
        TorchGraph(onnx.load(str(path)))


def test_tensorrt_versions_outside_10_are_refused_with_the_fix():
    from reggan_plugin.backends.environment import tensorrt_version_problem

    assert tensorrt_version_problem("10.8.0.43") is None
    assert "too old" in tensorrt_version_problem("8.6.1") and "tensorrt>=10,<11" in tensorrt_version_problem("8.6.1")
    assert "not supported yet" in tensorrt_version_problem("11.0.0")


@pytest.mark.parametrize("failure", [RuntimeError("CUDA driver initialization failed"),
                                     AttributeError("module 'tensorrt' has no attribute 'BuilderFlag'"),
                                     OSError("libcudart.so.12: cannot open shared object file")])
def test_gpu_library_failures_are_an_unavailable_backend(tiny_onnx, monkeypatch, failure):
    """Whatever a GPU library raises becomes BackendUnavailable (exit 4), so `auto` goes on to the CPU."""
    from reggan_plugin.backends import cuda, tensorrt
    from reggan_plugin.errors import BackendUnavailable

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(cuda, "create_cuda_backend", broken)  # stands in for the GPU library, not the code under test
    monkeypatch.setattr(tensorrt, "create_tensorrt_backend", broken)
    for name in ("cuda", "tensorrt"):
        with pytest.raises(BackendUnavailable, match=f"{name} backend: {type(failure).__name__}"):
            create_backend(tiny_onnx, name)
    assert create_backend(tiny_onnx, "auto").name == "cpu"


@pytest.mark.parametrize("layout, stem", [("nvidia/cuda_runtime/lib", "cudart"), ("nvidia/cu13/lib", "cudart"),
                                          ("nvidia/cudnn/lib", "cudnn")])
def test_cuda_libraries_are_looked_for_where_the_pip_wheels_put_them(tmp_path, monkeypatch, layout, stem):
    import importlib

    (tmp_path / layout).mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    assert str(tmp_path / layout) in env._pip_library_dirs(env.PIP_LIBRARY_FOLDERS[stem])


def test_sessions_never_fall_back_to_the_cpu_silently(tiny_onnx):
    from reggan_plugin.backends.cpu import create_session, session_options

    session = create_session(str(tiny_onnx), ["CPUExecutionProvider"], session_options())
    assert session._enable_fallback is False  # onnxruntime's own flag, read by run() on a provider failure


def test_cuda_device_ids_map_to_nvml_indices_through_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert env.nvml_index(1) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a farm slot: CUDA's device 1 is the node's GPU 3
    assert env.nvml_index(0) == 2 and env.nvml_index(1) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f6e2a1c")
    assert env.nvml_index(0) == 0


@pytest.mark.slow
def test_the_shipped_model_in_half_precision_meets_the_fp16_tolerance():
    """The cuda backend's torch route in fp16, emulated on the CPU: the sampling grid and GridSample stay in
    float32 (half-precision grids misplace pixels: 0.3 error before), the rest runs in half. On the parity check's
    sample face, as the backend checks it (uniform noise is no face: stage 1's large, cancelling ridge weights answer
    it 0.2 off in half precision)."""
    torch = pytest.importorskip("torch", reason="the torch route needs torch")
    import onnxruntime as ort

    from reggan_plugin.backends.graph_precision import grid_arithmetic
    from reggan_plugin.backends.parity import PARITY_TOLERANCE, sample_face
    from reggan_plugin.backends.torch_graph import TorchGraph, load_onnx

    art = load_artifact(None)
    model = load_onnx(art.path)
    assert grid_arithmetic(model)  # the shipped graph samples with a computed grid
    feeds = {"image": np.concatenate([sample_face(art.input_size)] * 2),
             "expression": np.stack([art.posed(np.eye(len(art.expressions), dtype=np.float32)[index], pose)
                                     for index, pose in ((1, FACING), (2, Pose(0.2, -0.1)))]),  # the second face between keys
             "intensity": np.array([1.0, 0.7], np.float32)}
    want = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(["output"], feeds)[0]
    half = TorchGraph(model, device="cpu", dtype=torch.float16)
    got = half.run({k: torch.from_numpy(v) for k, v in feeds.items()}, ["output"])["output"].float().numpy()
    assert float(np.abs(got - want).max()) < PARITY_TOLERANCE["fp16"]


def test_the_torch_route_runs_the_channel_model_as_onnxruntime_does():
    """The channel model's 1 x 1 field pads by nothing, and channel mixes weigh neutral below 0: the cuda backend's
    torch route (here on the CPU, in fp32) computes what onnxruntime does."""
    torch = pytest.importorskip("torch", reason="the torch route needs torch")
    import onnxruntime as ort

    from reggan_plugin.artifact import channels_model_path
    from reggan_plugin.backends.parity import PARITY_TOLERANCE
    from reggan_plugin.backends.torch_graph import TorchGraph, load_onnx

    art = load_artifact(channels_model_path())
    rng = np.random.default_rng(0)
    feeds = {"image": rng.uniform(-1, 1, (2, 3, art.input_size, art.input_size)).astype(np.float32),
             "expression": np.stack([art.expression_weights("jawOpen=0.5,mouthSmileLeft=1,browDownRight=0.3"),
                                     art.expression_weights("eyeBlinkLeft")]),
             "intensity": np.array([1.0, 0.6], np.float32)}
    want = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(["output"], feeds)[0]
    graph = TorchGraph(load_onnx(art.path), device="cpu")
    got = graph.run({k: torch.from_numpy(v) for k, v in feeds.items()}, ["output"])["output"].numpy()
    assert float(np.abs(got - want).max()) < PARITY_TOLERANCE["fp32"]


def test_the_torch_route_runs_a_carried_mix_as_onnxruntime_does(tmp_path):
    """A stage 1 that carries each expression's paint to the mix (`ModelConfig.mix`), given mixes and a partial
    intensity: the cuda backend's torch route (here on the CPU, in fp32) computes what onnxruntime does."""
    import onnxruntime as ort
    from conftest import make_tiny_model

    from reggan_plugin.backends.parity import PARITY_TOLERANCE
    from reggan_plugin.backends.torch_graph import TorchGraph, load_onnx

    art = load_artifact(make_tiny_model(tmp_path / "carried.onnx", mix="carried"))
    rng = np.random.default_rng(1)
    feeds = {"image": rng.uniform(-1, 1, (3, 3, art.input_size, art.input_size)).astype(np.float32),
             "expression": np.stack([art.expression_weights(e) for e in ("happy=0.5,surprised=0.5", "sad=0.3",
                                                                         "angry")]),
             "intensity": np.array([1.0, 1.0, 0.6], np.float32)}
    want = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(["output"], feeds)[0]
    graph = TorchGraph(load_onnx(art.path), device="cpu")
    got = graph.run({k: torch.from_numpy(v) for k, v in feeds.items()}, ["output"])["output"].numpy()
    assert float(np.abs(got - want).max()) < PARITY_TOLERANCE["fp32"]


def test_gpu_backends_are_checked_on_a_sample_face(tiny_model, tmp_path):
    """check_parity passes a backend that computes the model and refuses one that computes something else."""
    from conftest import make_tiny_model

    from reggan_plugin.backends.cpu import CpuBackend
    from reggan_plugin.backends.parity import check_parity, sample_face

    face = sample_face(64)
    assert face.shape == (1, 3, 64, 64) and -1 <= face.min() < face.max() <= 1
    art = load_artifact(tiny_model)
    assert check_parity(CpuBackend(art), art, "cpu") == 0.0
    other = CpuBackend(load_artifact(make_tiny_model(tmp_path / "other.onnx", seed=1)))  # a wrong engine
    with pytest.raises(BackendUnavailable, match="differs from onnxruntime"):
        check_parity(other, art, "tensorrt backend (engine x)")


def test_auto_selection_names_each_reason_once():
    from reggan_plugin.backends.select import _merged

    same = ["tensorrt backend: no GPU", "cuda backend: no GPU"]
    assert _merged(same) == "tensorrt and cuda backends: no GPU"
    apart = ["tensorrt backend: no engine", "cuda backend: no cuDNN", "fp16 is not available"]
    assert _merged(apart) == "tensorrt backend: no engine; cuda backend: no cuDNN; fp16 is not available"
