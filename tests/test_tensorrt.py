"""TensorRT: the op preflight (no TensorRT needed), engine cache keys, sidecars and stale-engine rules, the
`export tensorrt` command; and, where a GPU and TensorRT exist, real builds and runs compared with the CPU."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from reggan_plugin.backends import create_backend
from reggan_plugin.backends import engine_cache as ec
from reggan_plugin.backends import environment as env
from reggan_plugin.errors import BackendUnavailable

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402
from test_backends import batch, build_tiny_onnx  # noqa: E402  (tests/ is on sys.path under pytest)

from export.cli import export  # noqa: E402
from reggan_plugin.artifact import default_model_path, load_artifact  # noqa: E402
from reggan_plugin.backends import trt_ops  # noqa: E402
from reggan_plugin.backends.parity import sample_face  # noqa: E402
from reggan_plugin.backends.trt_preflight import preflight  # noqa: E402

GPUS, NO_GPU_WHY = env.nvidia_gpus()
TRT = env.tensorrt()
needs_gpu = pytest.mark.skipif(not GPUS, reason=NO_GPU_WHY or "no GPU")
needs_trt = pytest.mark.skipif(not (GPUS and TRT.ok), reason=NO_GPU_WHY if not GPUS else TRT.why)


# ------------------------------------------------------------------------------------------------ preflight
def test_preflight_passes_on_the_tiny_model(tiny_onnx):
    report = preflight(tiny_onnx)
    assert report.ok, report.summary()
    assert report.opset >= 17 and sum(report.op_counts.values()) > 5
    assert "are supported" in report.summary()


def test_preflight_passes_on_the_bundled_model():
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"bundled model not built yet: {path}")
    report = preflight(path)
    assert report.ok, report.summary()


def test_preflight_passes_on_our_helper_model_for_oldest_10x(tmp_path):
    report = preflight(build_tiny_onnx(tmp_path / "m.onnx"), "10.0")
    assert report.ok, report.summary()


@pytest.mark.parametrize(
    "node, op_label, reason",
    [
        (helper.make_node("Fancy", ["h"], ["h_extra"], domain="com.studio", name="studio_fancy"),
         "com.studio::Fancy", "custom-domain op"),
        (helper.make_node("MaxUnpool", ["h", "h"], ["h_extra"], kernel_shape=[1, 1], name="unpool_0"),
         "MaxUnpool", "listed as unsupported"),
        (helper.make_node("Resize", ["h", "", "one_scale"], ["h_extra"], mode="cubic", name="bicubic_up"),
         "Resize", "mode 'cubic'"),
    ],
)
def test_preflight_names_each_unsupported_op_and_its_node(tmp_path, node, op_label, reason):
    path = build_tiny_onnx(tmp_path / "bad.onnx", extra_node=node)
    model = onnx.load(str(path))
    if "one_scale" in node.input:
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(4, np.float32), "one_scale"))
    report = preflight(model, "10.8")
    assert not report.ok
    [finding] = report.findings
    assert finding.op == op_label and finding.node == node.name and reason in finding.reason
    summary = report.summary()
    assert "cannot build this model" in summary and node.name in summary and "TensorRT 10.8 (requested)" in summary
    assert "\n" not in summary


def test_preflight_unknown_op_and_version_gated_op(tmp_path):
    model = onnx.load(str(build_tiny_onnx(tmp_path / "m.onnx")))
    model.graph.node.append(helper.make_node("Mystery", ["output"], ["m_out"], name="mystery_0"))
    model.graph.node.append(helper.make_node("RMSNormalization", ["output", "intensity"], ["r_out"], name="rms_0"))
    report = preflight(model, "10.8")
    reasons = {f.op: f.reason for f in report.findings}
    assert reasons["Mystery"] == "not in the TensorRT ONNX parser's operator list"
    assert reasons["RMSNormalization"] == "supported from TensorRT 10.15 on (target is 10.8)"
    assert {f.op for f in preflight(model, "10.15").findings} == {"Mystery"}


def test_preflight_opset_range_and_old_tensorrt(tmp_path):
    model = onnx.load(str(build_tiny_onnx(tmp_path / "m.onnx")))
    model.opset_import[0].version = 23
    assert any("opset 23 is outside 9..20" in f.reason for f in preflight(model, "10.0").findings)
    assert preflight(model, "10.11").ok
    assert any("older than 10.0" in f.reason for f in preflight(model, "8.6").findings)


def test_preflight_walks_subgraphs(tmp_path):
    model = onnx.load(str(build_tiny_onnx(tmp_path / "m.onnx")))
    inner = helper.make_graph([helper.make_node("Unique", ["intensity"], ["u"], name="inner_unique")], "then",
                              [], [helper.make_tensor_value_info("u", onnx.TensorProto.FLOAT, None)])
    model.graph.node.append(helper.make_node("If", ["cond"], ["if_out"], name="branch", then_branch=inner, else_branch=inner))
    names = [f.node for f in preflight(model, "10.8").findings]
    assert sorted(names) == ["branch/else_branch/inner_unique", "branch/then_branch/inner_unique"]


def test_op_table_is_consistent():
    assert not trt_ops.SUPPORTED & trt_ops.UNSUPPORTED
    assert set(trt_ops.ADDED_IN) <= trt_ops.SUPPORTED
    for op in ("Conv", "InstanceNormalization", "Resize", "Einsum", "Pad", "Slice", "Sigmoid", "Tanh"):
        assert op in trt_ops.SUPPORTED


# ------------------------------------------------------------------------------------------------ cache keys
def spec(**changes) -> ec.EngineSpec:
    base = ec.EngineSpec("a" * 64, "10.8.0.43", "NVIDIA L4", "8.9", "fp16", ec.Profile(1, 8, 32, 128))
    return dataclasses.replace(base, **changes)


KEY_CHANGES = {
    "onnx_sha256": {"onnx_sha256": "b" * 64},
    "tensorrt_version": {"tensorrt_version": "10.8.0.44"},
    "gpu_name": {"gpu_name": "NVIDIA RTX 4090"},
    "compute_capability": {"compute_capability": "9.0"},
    "precision": {"precision": "fp32"},
    "min_batch": {"profile": ec.Profile(2, 8, 32, 128)},
    "opt_batch": {"profile": ec.Profile(1, 16, 32, 128)},
    "max_batch": {"profile": ec.Profile(1, 8, 64, 128)},
    "input_size": {"profile": ec.Profile(1, 8, 32, 256)},
}


def test_cache_key_is_stable():
    assert spec().key == spec().key and len(spec().key) == 64


@pytest.mark.parametrize("field", KEY_CHANGES)
def test_cache_key_changes_with_each_field(field):
    assert spec(**KEY_CHANGES[field]).key != spec().key


def test_engine_paths_differ_by_key_and_share_a_timing_cache_per_trt_and_arch(tmp_path):
    a, b = ec.engine_paths(tmp_path, spec(), "default"), ec.engine_paths(tmp_path, spec(precision="fp32"), "default")
    assert a.engine != b.engine and a.engine.name.startswith("default-") and a.engine.suffix == ".engine"
    assert a.sidecar == a.engine.with_suffix(".json")
    assert a.timing_cache == b.timing_cache == tmp_path / "timing-trt10_8_0_43-sm89.cache"
    assert ec.engine_paths(tmp_path, spec(compute_capability="9.0")).timing_cache != a.timing_cache


def test_profile_must_be_ordered():
    with pytest.raises(ValueError, match="min <= opt <= max"):
        ec.Profile(1, 64, 32, 128)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("REGGAN_CACHE_DIR", str(tmp_path / "c"))
    assert ec.default_cache_dir() == tmp_path / "c" / "engines"
    monkeypatch.delenv("REGGAN_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert ec.default_cache_dir() == tmp_path / "xdg" / "reggan-plugin" / "engines"


# ------------------------------------------------------------------------------------ sidecars and staleness
ENGINE = b"\x00fake-engine-bytes\x01" * 50  # stands in for serialized engine bytes: only hashed and sized here


def store(cache: Path, s: ec.EngineSpec, *, build_seconds: float = 42.0, stem: str = "default") -> ec.EnginePaths:
    paths = ec.engine_paths(cache, s, stem)
    ec.atomic_write(paths.engine, ENGINE)
    ec.write_sidecar(paths.sidecar, ec.make_sidecar(s, engine_bytes=ENGINE, build_seconds=build_seconds,
                                                    onnx_path="/models/default.onnx", workspace_gb=4.0, plugin_version="0.1.0"))
    return paths


def test_sidecar_round_trip(tmp_path):
    paths = store(tmp_path, spec())
    data = ec.read_sidecar(paths.sidecar)
    assert data["tensorrt_version"] == "10.8.0.43" and data["gpu_name"] == "NVIDIA L4"
    assert data["compute_capability"] == "8.9" and data["precision"] == "fp16"
    assert data["profile"] == {"min_batch": 1, "opt_batch": 8, "max_batch": 32, "input_size": 128}
    assert data["onnx_sha256"] == "a" * 64 and data["build_seconds"] == 42.0 and data["reggan_plugin_version"] == "0.1.0"
    assert data["engine_bytes"] == len(ENGINE) and data["key"] == spec().key
    assert ec.sidecar_mismatches(data, spec()) == []
    state = ec.lookup(tmp_path, spec(), "default")
    assert state.status == "hit" and state.usable and state.paths == paths
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_lookup_missing_when_nothing_cached(tmp_path):
    state = ec.lookup(tmp_path, spec(), "default")
    assert state.status == "missing" and "no engine for this model" in state.reason
    assert state.estimate_source.startswith("rough guess") and state.estimate_seconds == ec.DEFAULT_BUILD_SECONDS["fp16"]
    assert "rough guess" in state.rebuild_message()


@pytest.mark.parametrize("field", [f for f in KEY_CHANGES if f != "onnx_sha256"])
def test_new_spec_for_same_model_explains_what_changed_and_estimates_from_previous_build(tmp_path, field):
    store(tmp_path, spec(), build_seconds=300.0)
    now = spec(**KEY_CHANGES[field])
    state = ec.lookup(tmp_path, now, "default")
    assert state.status == "missing" and not state.usable
    label = {"min_batch": "profile", "opt_batch": "profile", "max_batch": "profile", "input_size": "profile",
             "compute_capability": "compute capability", "tensorrt_version": "TensorRT", "gpu_name": "GPU"}.get(field, field)
    assert state.reason.startswith("the cached engine for this model was built for ") and label in state.reason
    if now.gpu_name == "NVIDIA L4" and now.precision == "fp16":
        assert state.estimate_seconds == 300.0 and "previous build" in state.estimate_source
        assert "about 5 min" in state.rebuild_message()


@pytest.mark.parametrize("field", list(KEY_CHANGES))
def test_sidecar_mismatch_in_any_field_is_stale_never_a_hit(tmp_path, field):
    """A sidecar at the expected place that describes another build (edited, copied, or from an older plugin)."""
    paths = store(tmp_path, spec())
    data = ec.read_sidecar(paths.sidecar)
    other = spec(**KEY_CHANGES[field])
    for key, value in dataclasses.asdict(other).items():
        data[key] = value
    ec.write_sidecar(paths.sidecar, data)
    state = ec.lookup(tmp_path, spec(), "default")
    assert state.status == "stale" and state.reason.startswith("cached engine was built for")


def test_sidecar_with_wrong_key_only_is_stale(tmp_path):
    paths = store(tmp_path, spec())
    data = ec.read_sidecar(paths.sidecar)
    data["key"] = "0" * 64
    ec.write_sidecar(paths.sidecar, data)
    assert ec.lookup(tmp_path, spec(), "default").reason == "cached engine was built for cache key differs"


@pytest.mark.parametrize("damage", ["truncated_json", "not_an_object", "missing_fields", "deleted", "old_format"])
def test_corrupt_or_partial_sidecar_means_rebuild(tmp_path, damage):
    paths = store(tmp_path, spec())
    text = paths.sidecar.read_text()
    if damage == "truncated_json":
        paths.sidecar.write_text(text[: len(text) // 2])
    elif damage == "not_an_object":
        paths.sidecar.write_text("[1, 2]")
    elif damage == "missing_fields":
        data = json.loads(text)
        del data["compute_capability"], data["profile"]
        paths.sidecar.write_text(json.dumps(data))
    elif damage == "deleted":
        paths.sidecar.unlink()
    else:
        data = json.loads(text)
        data["format"] = 0
        paths.sidecar.write_text(json.dumps(data))
    state = ec.lookup(tmp_path, spec(), "default")
    assert not state.usable and state.status in ("corrupt", "stale")
    assert "building a TensorRT engine" in state.rebuild_message()


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "deleted"])
def test_damaged_engine_file_means_rebuild(tmp_path, damage):
    paths = store(tmp_path, spec())
    if damage == "truncated":
        paths.engine.write_bytes(ENGINE[:-7])
    elif damage == "flipped_byte":
        paths.engine.write_bytes(b"X" + ENGINE[1:])
    else:
        paths.engine.unlink()
    state = ec.lookup(tmp_path, spec(), "default")
    assert state.status == "corrupt"
    assert {"truncated": "partial write", "flipped_byte": "sha256", "deleted": "missing"}[damage] in state.reason


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    ec.atomic_write(target, b"one")
    ec.atomic_write(target, b"two-longer")
    assert target.read_bytes() == b"two-longer" and os.listdir(target.parent) == ["f.bin"]


# ----------------------------------------------------------------------------------------------- the command
def test_cli_preflight_only_passes_and_fails(tmp_path, tiny_onnx):
    runner = CliRunner()
    ok = runner.invoke(export, ["tensorrt", "--onnx", str(tiny_onnx), "--preflight-only", "--target", "10.0"])
    assert ok.exit_code == 0 and "are supported" in ok.output
    bad = build_tiny_onnx(tmp_path / "bad.onnx", extra_node=helper.make_node(
        "Fancy", ["h"], ["h_extra"], domain="com.studio", name="studio_fancy"))
    result = runner.invoke(export, ["tensorrt", "--onnx", str(bad), "--preflight-only"])
    assert result.exit_code == 6 and "com.studio::Fancy (node 'studio_fancy')" in result.output


def test_cli_build_refuses_unsupported_graph_before_looking_for_tensorrt(tmp_path):
    bad = build_tiny_onnx(tmp_path / "bad.onnx", extra_node=helper.make_node(
        "Fancy", ["h"], ["h_extra"], domain="com.studio", name="studio_fancy"))
    result = CliRunner().invoke(export, ["tensorrt", "--onnx", str(bad), "--out", str(tmp_path / "e")])
    assert result.exit_code == 6 and "cannot build this model" in result.output


@pytest.mark.skipif(bool(GPUS and TRT.ok), reason="checks the error without TensorRT or a GPU")
def test_cli_build_without_tensorrt_or_gpu_exits_4_with_the_reason(tmp_path, tiny_onnx):
    done = subprocess.run([sys.executable, "-m", "reggan_plugin.cli", "export", "tensorrt", "--onnx", str(tiny_onnx),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "cannot build a TensorRT engine" in done.stderr and ("TensorRT" in done.stderr or "NVIDIA" in done.stderr)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- real GPU / TensorRT runs
@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("model", ["tiny", "shipped"])
@pytest.mark.parametrize("precision, atol", [("fp32", 2e-3), ("fp16", 5e-2)])
def test_engine_build_run_and_cache_reuse(tmp_path, tiny_onnx, model, precision, atol, caplog):
    from reggan_plugin.artifact import default_model_path
    from reggan_plugin.backends.trt_build import build_engine

    onnx_path = tiny_onnx if model == "tiny" else default_model_path()
    artifact = load_artifact(onnx_path)
    paths = build_engine(onnx_path, tmp_path, precision=precision, max_batch=4)
    sidecar = ec.read_sidecar(paths.sidecar)
    assert sidecar["precision"] == precision and sidecar["profile"]["max_batch"] == 4
    assert sidecar["gpu_name"] == GPUS[0].name and sidecar["tensorrt_version"] == TRT.value
    assert sidecar["onnx_sha256"] == artifact.sha256 and sidecar["build_seconds"] > 0
    assert paths.timing_cache.is_file()

    image, expression, intensity = batch(artifact, n=7)  # 7 > max batch 4: split into chunks
    cpu = create_backend(artifact, "cpu").run(image, expression, intensity, outputs=("output", "stage1"))
    mtime = paths.engine.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        gpu = create_backend(artifact, "tensorrt", precision=precision, cache_dir=tmp_path, max_batch=4)
    assert paths.engine.stat().st_mtime_ns == mtime, "a valid cached engine must be loaded, not rebuilt"
    assert "building a TensorRT engine" not in caplog.text
    out = gpu.run(image, expression, intensity, outputs=("output", "stage1"))
    for name in ("output", "stage1"):
        assert np.abs(out[name] - cpu[name]).max() <= atol, name
    assert gpu.name == "tensorrt" and precision in gpu.description and GPUS[0].name in gpu.description


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_stale_engine_is_rebuilt_not_loaded(tmp_path, tiny_onnx, caplog):
    from reggan_plugin.backends.trt_build import build_engine

    artifact = load_artifact(tiny_onnx)
    paths = build_engine(tiny_onnx, tmp_path, precision="fp32", max_batch=2)
    data = ec.read_sidecar(paths.sidecar)
    data["tensorrt_version"] = "10.0.0.1"  # pretend it came from another TensorRT
    ec.write_sidecar(paths.sidecar, data)
    with pytest.raises(BackendUnavailable, match=r"built for TensorRT '10\.0\.0\.1'"):
        create_backend(artifact, "tensorrt", cache_dir=tmp_path, max_batch=2, build_engine=False)
    with caplog.at_level(logging.WARNING):
        backend = create_backend(artifact, "tensorrt", cache_dir=tmp_path, max_batch=2)
    assert "building a TensorRT engine" in caplog.text and ec.read_sidecar(paths.sidecar)["tensorrt_version"] == TRT.value
    image, expression, intensity = batch(artifact, n=2)
    assert np.isfinite(backend.run(image, expression, intensity)["output"]).all()


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_auto_uses_a_cached_engine_and_never_builds(tmp_path, tiny_onnx, caplog):
    artifact = load_artifact(tiny_onnx)
    with caplog.at_level(logging.INFO):
        first = create_backend(artifact, "auto", cache_dir=tmp_path)
    assert first.name != "tensorrt" and "build it once with `reggan-plugin export tensorrt" in caplog.text
    assert not list(tmp_path.glob("*.engine"))
    from reggan_plugin.backends.trt_build import build_engine

    build_engine(tiny_onnx, tmp_path, precision="fp32")
    assert create_backend(artifact, "auto", cache_dir=tmp_path).name == "tensorrt"


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("model", ["tiny", "shipped"])
@pytest.mark.parametrize("precision, atol", [("fp32", 2e-3), ("fp16", 5e-2)])
def test_cuda_backend_matches_cpu(tiny_onnx, model, precision, atol):
    artifact = load_artifact(tiny_onnx if model == "tiny" else None)
    try:
        gpu = create_backend(artifact, "cuda", precision=precision)
    except BackendUnavailable as exc:
        if "differs from onnxruntime" in str(exc):  # the backend's own parity check failed: that is a failure
            raise
        pytest.skip(f"cuda backend not installable here: {exc}")
    image, expression, intensity = batch(artifact, n=5)
    if model == "shipped":  # a face, not noise: stage 1's large, cancelling ridge weights answer noise 0.2 off in fp16
        image = np.concatenate([sample_face(artifact.input_size)] * len(image))
    cpu = create_backend(artifact, "cpu").run(image, expression, intensity)["output"]
    assert np.abs(gpu.run(image, expression, intensity)["output"] - cpu).max() <= atol
    assert gpu.name == "cuda" and ("CUDA" in gpu.description)


def test_an_engine_exported_with_any_batch_profile_is_found(tmp_path, tiny_onnx):
    """`export tensorrt --max-batch 64 --opt-batch 16` makes an engine the runtime then finds without the flags."""
    import json

    from reggan_plugin.artifact import load_artifact
    from reggan_plugin.backends import engine_cache
    from reggan_plugin.backends.tensorrt import cached_profile

    art = load_artifact(tiny_onnx)
    for top, opt, precision in ((64, 16, "fp16"), (32, 8, "fp16"), (128, 4, "fp32")):
        sidecar = {"format": engine_cache.SIDECAR_FORMAT, "onnx_sha256": art.sha256, "precision": precision,
                   "profile": {"min_batch": 1, "opt_batch": opt, "max_batch": top, "input_size": art.input_size}}
        (tmp_path / f"e{top}.json").write_text(json.dumps(sidecar))
    assert cached_profile(tmp_path, art, "fp16") == (64, 16)
    assert cached_profile(tmp_path, art, "fp16", max_batch=32) == (32, 8)
    assert cached_profile(tmp_path, art, "fp32") == (128, 4)
    assert cached_profile(tmp_path, art, "fp16", max_batch=48) is None


def test_fp16_engines_keep_the_sampling_grid_in_fp32():
    """The layers an fp16 engine must keep in fp32 are found in the shipped graph and pinned on the network
    (a stand-in network object: TensorRT itself needs a GPU)."""
    from types import SimpleNamespace

    from reggan_plugin.artifact import default_model_path
    from reggan_plugin.backends.trt_build import fp32_tensor_names, pin_fp32_layers

    names = fp32_tensor_names(default_model_path())
    assert names
    trt = SimpleNamespace(float32="f32", float16="f16", int64="i64")

    class Layer:
        def __init__(self, outputs):
            self.outputs = [SimpleNamespace(name=n, dtype=d) for n, d in outputs]
            self.num_outputs, self.precision, self.types = len(outputs), None, {}

        def get_output(self, j):
            return self.outputs[j]

        def set_output_type(self, j, dtype):
            self.types[j] = dtype

    grid = next(iter(names))
    layers = [Layer([(grid, "f16")]), Layer([("conv_out", "f16")]), Layer([(grid + "_shape", "i64")])]
    network = SimpleNamespace(num_layers=3, get_layer=lambda i: layers[i])
    assert pin_fp32_layers(network, names | {grid + "_shape"}, trt) == 1
    assert layers[0].precision == "f32" and layers[0].types == {0: "f32"}
    assert layers[1].precision is None and layers[2].precision is None  # conv stays fp16; shapes are not floats


def test_one_process_at_a_time_builds_an_engine(tmp_path):
    """build_lock: a second builder waits for the first (then finds the engine built) instead of racing it."""
    import subprocess
    import sys
    import time

    from reggan_plugin.backends.trt_build import build_lock

    engine, log = tmp_path / "model.engine", tmp_path / "log.txt"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from reggan_plugin.backends.trt_build import build_lock\n"
        "with build_lock(Path(sys.argv[1])):\n"
        "    open(sys.argv[2], 'a').write('first-start\\n'); time.sleep(1.0); open(sys.argv[2], 'a').write('first-end\\n')"),
        str(engine), str(log)])
    for _ in range(600):  # until the first builder holds the lock
        if log.exists():
            break
        time.sleep(0.05)
    with build_lock(engine):
        log.open("a").write("second\n")
    holder.wait(60)
    assert log.read_text().splitlines() == ["first-start", "first-end", "second"]


def test_engine_keys_name_the_cuda_major_and_the_build_recipe():
    from reggan_plugin.backends import engine_cache

    base = engine_cache.EngineSpec("a" * 64, "10.8.0", "RTX", "8.9", "fp16", engine_cache.Profile(1, 8, 32, 128),
                                   cuda_major="12", recipe=engine_cache.BUILD_RECIPE)
    other_cuda = engine_cache.EngineSpec(*[getattr(base, f) for f in ("onnx_sha256", "tensorrt_version", "gpu_name",
                                           "compute_capability", "precision", "profile")], cuda_major="13", recipe=base.recipe)
    old_recipe = engine_cache.EngineSpec("a" * 64, "10.8.0", "RTX", "8.9", "fp16", base.profile, cuda_major="12", recipe=1)
    assert len({base.key, other_cuda.key, old_recipe.key}) == 3
    sidecar = engine_cache.make_sidecar(old_recipe, engine_bytes=b"x", build_seconds=1, onnx_path="m.onnx",
                                        workspace_gb=4, plugin_version="0")
    assert any("build recipe" in p for p in engine_cache.sidecar_mismatches(sidecar, base))


def test_cuda_python_buffers_need_cuda_python():
    """Without torch CUDA the TensorRT backend moves data with cuda-python; without that, a clear reason."""
    from reggan_plugin.backends import tensorrt as trt_backend

    if trt_backend._cuda_python() is not None:
        pytest.skip("cuda-python is installed here: the GPU tests exercise these buffers")
    with pytest.raises(BackendUnavailable, match="cuda-python is not installed"):
        trt_backend._CudaPythonBuffers(0)


@pytest.mark.gpu
@needs_gpu
def test_cuda_python_buffers_round_trip():
    """Host -> device -> host through cuda-python gives the same bytes back."""
    from reggan_plugin.backends import tensorrt as trt_backend

    if trt_backend._cuda_python() is None:
        pytest.skip("cuda-python is not installed (pip install cuda-python)")
    buffers = trt_backend._CudaPythonBuffers(0)
    data = np.random.default_rng(0).random((3, 5), dtype=np.float32)
    buffers.put("x", data)
    assert np.array_equal(buffers.get("x"), data)
    buffers.close()
