"""Convert MediaPipe's BlazeFace face detector (.tflite in the mediapipe 0.10.14 wheel) to ONNX and verify it.

Dev-time only; the runtime ships the resulting .onnx in reggan_plugin/faces/models/ and never needs
mediapipe, TensorFlow Lite or this script. Run it in a throwaway virtual environment:

    python3.11 -m venv .venv-convert && . .venv-convert/bin/activate
    pip install "numpy<2" tflite2onnx==0.4.1 ai-edge-litert onnx onnxruntime pillow
    python tools/convert_blazeface.py [--wheel mediapipe-0.10.14-...whl] \
        [--check-images ../shared/data/london-faces/neutral]

Steps: fetch the wheel (``pip download --no-deps mediapipe==0.10.14``) unless given, unzip the
.tflite, convert it with tflite2onnx, make the batch dimension dynamic, record provenance in the
ONNX metadata, then run the original .tflite (ai-edge-litert) and the .onnx (onnxruntime) on the same
inputs (random tensors, plus photos when --check-images is given) and fail unless the outputs agree
(max abs difference of regressors, in input pixels, and of logits below --tolerance).
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

MEDIAPIPE_VERSION = "0.10.14"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "reggan_plugin" / "faces" / "models"
MODELS = {
    # onnx name: (path inside the wheel, input size, anchors)
    "blazeface_short_range.onnx": ("mediapipe/modules/face_detection/face_detection_short_range.tflite", 128, 896),
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={MEDIAPIPE_VERSION}",
         "--only-binary", ":all:", "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "-d", str(dest)],
        check=True,
    )
    (wheel,) = dest.glob("mediapipe-*.whl")
    return wheel


def convert(tflite_path: Path, onnx_path: Path, provenance: dict[str, str]) -> None:
    import onnx
    from onnx import numpy_helper
    from tflite2onnx import convert as tflite2onnx_convert

    onnx_path.unlink(missing_ok=True)
    tflite2onnx_convert(str(tflite_path), str(onnx_path))
    model = onnx.load(str(onnx_path))
    # Dynamic batch: rename dim 0 of inputs/outputs and let Reshape copy dim 0 (0) instead of fixing 1.
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    reshape_shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for init in model.graph.initializer:
        if init.name in reshape_shapes:
            shape = numpy_helper.to_array(init).copy()
            assert shape[0] == 1, f"unexpected reshape target {shape}"
            shape[0] = 0
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    # tflite2onnx emits initializers in set order: sort them so that the file is reproducible byte for byte.
    initializers = sorted(model.graph.initializer, key=lambda t: t.name)
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model, full_check=True)
    model.producer_name = "reggan-plugin tools/convert_blazeface.py (tflite2onnx 0.4.1)"
    del model.metadata_props[:]
    for key, value in provenance.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(onnx_path))


def verify(tflite_path: Path, onnx_path: Path, size: int, images: list[Path], tolerance: float) -> dict[str, float]:
    """Run both models on the same inputs; return max abs differences, fail when beyond ``tolerance``.

    The reference is the .tflite on TFLite's builtin (non-XNNPACK) kernels. Photos are judged by
    absolute differences (regressors in input pixels, logits); random noise inputs, whose activations
    run into the thousands, by differences relative to the largest output magnitude.
    """
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(tflite_path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    outs = {d["name"]: d["index"] for d in interp.get_output_details()}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    noise = [rng.uniform(-1, 1, (size, size, 3)).astype(np.float32) for _ in range(4)] + [np.full((size, size, 3), -1.0, np.float32)]
    photos = []
    if images:
        from PIL import Image

        for path in images:
            rgb = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            photos.append(np.asarray(rgb, np.float32) / 127.5 - 1.0)

    def sigmoid(v: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(v.astype(np.float64), -100, 100)))

    stats: dict[str, float] = {"noise_inputs": len(noise), "photo_inputs": len(photos)}
    import onnxruntime

    stats["onnxruntime"] = onnxruntime.__version__  # type: ignore[assignment]
    for kind, batch in (("noise", noise), ("photo", photos)):
        if not batch:
            continue
        x = np.stack(batch)
        reg_onnx, cls_onnx = session.run(["regressors", "classificators"], {"input": x.transpose(0, 3, 1, 2)})
        d_reg = d_cls = d_score = scale = 0.0
        agree = 0
        for i in range(len(x)):
            interp.set_tensor(inp["index"], x[i : i + 1])
            interp.invoke()
            reg = interp.get_tensor(outs["regressors"])[0]
            cls = interp.get_tensor(outs["classificators"])[0]
            d_reg = max(d_reg, float(np.abs(reg - reg_onnx[i]).max()))
            d_cls = max(d_cls, float(np.abs(cls - cls_onnx[i]).max()))
            d_score = max(d_score, float(np.abs(sigmoid(cls) - sigmoid(cls_onnx[i])).max()))
            scale = max(scale, float(np.abs(reg).max()), float(np.abs(cls).max()))
            agree += int(np.array_equal(sigmoid(cls) >= 0.5, sigmoid(cls_onnx[i]) >= 0.5))
        stats[f"{kind}_regressors_max_abs_diff"] = d_reg
        stats[f"{kind}_logits_max_abs_diff"] = d_cls
        stats[f"{kind}_score_max_abs_diff"] = d_score
        stats[f"{kind}_max_relative_diff"] = max(d_reg, d_cls) / max(scale, 1e-12)
        stats[f"{kind}_inputs_same_anchors_over_0.5"] = agree
        bad = agree != len(x) or (d_reg > tolerance or d_cls > tolerance if kind == "photo" else max(d_reg, d_cls) > tolerance * scale * 1e-2)
        if bad:
            raise SystemExit(f"{onnx_path.name}: ONNX does not match the .tflite on {kind} inputs: {stats}")
    return stats


def record_check(onnx_path: Path, stats: dict[str, float]) -> None:
    """Keep the verification numbers in the model's metadata (``check_vs_tflite``, JSON), for docs/DETECTION.md."""
    import json

    import ai_edge_litert
    import onnx

    model = onnx.load(str(onnx_path))
    record = {"reference": f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')} builtin kernels", **stats}
    model.metadata_props.add(key="check_vs_tflite", value=json.dumps(record, sort_keys=True))
    onnx.save(model, str(onnx_path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="mediapipe wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the .onnx files")
    parser.add_argument("--check-images", type=Path, help="folder of face photos (.jpg/.png) also used for the check")
    parser.add_argument("--tolerance", type=float, default=2e-3, help="max abs difference allowed on photos (pixels / logits); 1%% of it, relative, on noise")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        wheel = args.wheel or fetch_wheel(tmp)
        wheel_sha = sha256(wheel.read_bytes())
        images = sorted(p for p in args.check_images.iterdir() if p.suffix.lower() in (".jpg", ".png")) if args.check_images else []
        args.out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for onnx_name, (member, size, anchors) in MODELS.items():
                data = zf.read(member)
                tflite_path = tmp / Path(member).name
                tflite_path.write_bytes(data)
                provenance = {
                    "source": f"mediapipe {MEDIAPIPE_VERSION} wheel ({wheel.name}), {member}",
                    "source_wheel_sha256": wheel_sha,
                    "source_tflite_sha256": sha256(data),
                    "license": "Apache-2.0 (Copyright The MediaPipe Authors); see LICENSE.mediapipe.txt",
                    "input": f"input float32 [N,3,{size},{size}] RGB in [-1,1]",
                    "outputs": f"regressors float32 [N,{anchors},16], classificators float32 [N,{anchors},1] (logits)",
                    "converter": "tflite2onnx 0.4.1 + dynamic batch (tools/convert_blazeface.py)",
                }
                onnx_path = args.out / onnx_name
                convert(tflite_path, onnx_path, provenance)
                stats = verify(tflite_path, onnx_path, size, images, args.tolerance)
                record_check(onnx_path, stats)
                print(f"{onnx_name}: {onnx_path.stat().st_size} bytes, sha256 {sha256(onnx_path.read_bytes())[:16]}")
                for key, value in stats.items():
                    print(f"  {key}: {value:.3g}" if isinstance(value, float) else f"  {key}: {value}")
            license_text = zf.read(f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE")
        (args.out / "LICENSE.mediapipe.txt").write_bytes(license_text)


if __name__ == "__main__":
    main()
