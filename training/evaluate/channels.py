"""The channel model on held-out renders of random ARKit channel combinations: how much closer to the true render the
edit is than the neutral input, on the face, for each channel group a combination moves.

    python -m training.evaluate.channels --write-mixes mixes.json --seed 9393      # 12 random mixes as a recipe table
                                                                                  # (--count N for more)
    reggan-plugin dataset render --out held_frontal --identities 5 --start 5000 --seed 9393 --recipes mixes.json \
        --expressions all
    reggan-plugin dataset render --out held_turned --identities 5 --start 5000 --seed 9494 --yaw 0,30 --pitch 10 \
        --recipes mixes.json --expressions all
    python -m training.evaluate.channels --data held_frontal --data held_turned [--model M] [--out docs/channels]
    python -m training.evaluate.channels --keys-of keys_frontal --keys-of keys_turned --model KEYED --baseline PLAIN

The last scores a model's keys (`key_gains`) on channels rendered alone at 0.5 (`dataset render --intensities 0.5`).

Each DIR is a `dataset render` folder whose expressions are channel mixes (its manifest records the exact blendshape
weights each picture was rendered with; those, less the neutral's gaze, are the mix the edit is given). Identities
from 5000 up are never rendered for fitting.
"""
from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from reggan_plugin.artifact import channels_model_path
from reggan_plugin.config import InferenceConfig
from reggan_plugin.edit.blend import feather_mask
from reggan_plugin.expressions import CHANNEL_GROUPS, channel_group
from reggan_plugin.faces import Face
from reggan_plugin.renderer import ExpressionRenderer

from ..data.split import split_of
from . import metrics, realism
from .cases import given_face

CHANNEL_TABLE = Path(__file__).resolve().parents[1] / "synth" / "arkit_channels.json"


def channel_weights(shapes: dict[str, float], neutral: dict[str, float]) -> dict[str, float]:
    """The ARKit channel mix of a render: its face-model blendshape weights less the neutral's (the gaze), by the
    channel table's correspondence, each clipped to [0, 1]."""
    table = json.loads(CHANNEL_TABLE.read_text())["au_to_blendshapes"]
    mix = {}
    for channel, entry in table.items():
        values = [shapes.get(s, 0.0) - neutral.get(s, 0.0) for s in entry["blendshapes"]]
        weight = float(np.mean(values))
        if weight > 1e-3:
            mix[channel] = min(1.0, weight)
    return mix


def write_mixes(path: Path, seed: int, count: int = 12) -> None:
    """A recipe table (`training.synth.recipes`' layout) of ``count`` mixes of 1-5 random channels at 0.3-1, for
    `dataset render --recipes`; strengths over 0.975 as in the channel table (the renders' mean AU jitter)."""
    table = json.loads(CHANNEL_TABLE.read_text())
    channels = [name for name in table["expressions"] if name != "neutral"]
    rng = random.Random(seed)
    mixes: dict[str, dict] = {"neutral": {"aus": {}}}
    for i in range(count):
        picked = rng.sample(channels, rng.randint(1, 5))
        mixes[f"mix{i:02d}"] = {"aus": {c: round(rng.uniform(0.3, 1.0) / 0.975, 4) for c in picked}}
    table["expressions"] = mixes
    table["about"] = f"Held-out channel mixes: 1-5 random channels at 0.3-1 (seed {seed})."
    path.write_text(json.dumps(table, indent=1))


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _neutral(folder: Path, identity: str) -> tuple[np.ndarray, Face]:
    """A render folder's neutral picture of ``identity`` and its face, from the render's own landmarks."""
    points = np.asarray(json.loads((folder / identity / "neutral.landmarks.json").read_text())["points"], float)
    return _rgb(folder / identity / "neutral.png"), given_face(points)


def _face_region(renderer: ExpressionRenderer, face: Face, shape: tuple[int, ...]) -> np.ndarray:
    """Where the scores are taken: the frame's pixels under the inner half of the crop's paste mask."""
    return realism.frame_region(feather_mask(renderer.size) >= 0.5, renderer.crop_matrix(face, shape), shape)


def evaluate(folder: Path, renderer: ExpressionRenderer) -> list[dict]:
    """A row per (identity, mix): its channels, groups, and the PSNR of input and edit against the true render over
    the face (the crop's paste mask, inner half)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = []
    for name, ident in sorted(manifest["identities"].items()):
        images = ident["images"]
        neutral, face = _neutral(folder, name)
        region = _face_region(renderer, face, neutral.shape)
        for stem, entry in sorted(images.items()):
            if stem == "neutral" or not (folder / name / f"{stem}.png").is_file():
                continue
            mix = channel_weights(entry["blendshapes"], images["neutral"]["blendshapes"])
            target = _rgb(folder / name / f"{stem}.png")
            out = renderer.apply_array(neutral, faces=[face], expression=mix)
            rows.append({"identity": name, "mix": mix, "groups": sorted({channel_group(c) for c in mix}),
                         "copy": metrics.psnr(neutral[region], target[region]),
                         "edit": metrics.psnr(out[region], target[region])})
    return rows


def key_gains(folders: list[Path], keyed: ExpressionRenderer, plain: ExpressionRenderer,
              val_fraction: float = 0.15) -> dict[str, tuple[int, float, float]]:
    """For each channel rendered alone below weight 1 in ``folders`` (`dataset render --intensities`), on the identities
    the channel recipe validates on (its ``val_fraction``; the folder's name seeds the split): the number of renders
    and the PSNR gain over copy of ``plain``'s edit and of ``keyed``'s, each given the render's own channel weight.
    A key earns its place where ``keyed`` (the model with it) beats ``plain`` (without it)."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        for name, ident in sorted(manifest["identities"].items()):
            if split_of(f"{folder.name}/{name}", val_fraction, 0.0) != "val":
                continue
            images = ident["images"]
            neutral, face = _neutral(folder, name)
            region = _face_region(keyed, face, neutral.shape)
            for stem, entry in sorted(images.items()):
                if entry["expression"] == "neutral" or float(entry.get("intensity", 1.0)) >= 1.0:
                    continue
                channel = entry["expression"]
                weight = channel_weights(entry["blendshapes"], images["neutral"]["blendshapes"]).get(channel, 0.0)
                target = _rgb(folder / name / f"{stem}.png")
                scores[channel]["copy"].append(metrics.psnr(neutral[region], target[region]))
                for label, renderer in (("plain", plain), ("keyed", keyed)):
                    out = renderer.apply_array(neutral, faces=[face], expression={channel: weight})
                    scores[channel][label].append(metrics.psnr(out[region], target[region]))
    return {channel: (len(s["copy"]), float(np.mean(s["plain"]) - np.mean(s["copy"])),
                      float(np.mean(s["keyed"]) - np.mean(s["copy"]))) for channel, s in scores.items()}


def key_table(gains: dict[str, tuple[int, float, float]]) -> str:
    lines = ["| channel | renders | without its key (dB) | with it (dB) | key's gain (dB) |", "|---|---|---|---|---|"]
    lines += [f"| {c} | {n} | {p:+.2f} | {k:+.2f} | {k - p:+.2f} |" for c, (n, p, k) in gains.items()]
    return "\n".join(lines) + "\n"


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| renders | " + " | ".join(g for g, _ in CHANNEL_GROUPS) + " | all |", "|---" * (len(CHANNEL_GROUPS) + 2) + "|"]
    for label, rows in results.items():
        by_group: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            for group in row["groups"]:
                by_group[group].append(row["edit"] - row["copy"])
        cells = [f"{np.mean(by_group[g]):+.2f} (n={len(by_group[g])})" if by_group[g] else "-" for g, _ in CHANNEL_GROUPS]
        gains = [row["edit"] - row["copy"] for row in rows]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.mean(gains):+.2f} (min {min(gains):+.2f}) |")
    return "\n".join(lines) + "\n"


def strip(renderer: ExpressionRenderer, folder: Path, identity: str, rows: dict[str, list[dict[str, float]]],
          out: Path) -> None:
    """A picture of ``identity``'s neutral render edited by each row's mixes, left to right (a channel swept, or a
    curve's frames), rows one under another; JPEG."""
    neutral, face = _neutral(folder, identity)
    lines = [np.concatenate([renderer.apply_array(neutral, faces=[face], expression=mix) if mix else neutral
                             for mix in mixes], axis=1) for mixes in rows.values()]
    Image.fromarray(np.concatenate(lines, axis=0)).save(out, quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--write-mixes", type=Path, default=None, help="write a recipe table of random mixes and stop")
    parser.add_argument("--seed", type=int, default=9393)
    parser.add_argument("--count", type=int, default=12, help="with --write-mixes: how many mixes")
    parser.add_argument("--model", type=Path, default=channels_model_path())
    parser.add_argument("--out", type=Path, default=None, help="folder for channels.json and CHANNELS_EVAL.md")
    parser.add_argument("--keys-of", type=Path, action="append", default=[],
                        help="key renders (channels alone at 0.5): score --model's keys against --baseline's edits")
    parser.add_argument("--baseline", type=Path, default=None, help="with --keys-of: the model without the keys")
    args = parser.parse_args(argv)
    if args.write_mixes is not None:
        write_mixes(args.write_mixes, args.seed, args.count)
        return 0
    if args.keys_of:
        if args.baseline is None:
            parser.error("--keys-of needs --baseline")
        keyed, plain = (ExpressionRenderer(InferenceConfig(model=m, backend="cpu", subject="render"))
                        for m in (args.model, args.baseline))
        text = key_table(key_gains(args.keys_of, keyed, plain))
        print(text)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "KEYS.md").write_text(
                "# Channel keys on validation renders\n\nGenerated by `python -m training.evaluate.channels --keys-of "
                "DIR --model KEYED --baseline PLAIN` (docs/CHANNELS.md gives the models). Each channel alone at about "
                "0.5 (the render's own weight), on the identities the channel recipe validates on: PSNR gain over "
                "copy on the face of the model without a key for it, and with one.\n\n" + text)
        return 0
    if not args.data:
        parser.error("give --data (or --write-mixes)")
    renderer = ExpressionRenderer(InferenceConfig(model=args.model, backend="cpu", subject="render"))
    results = {folder.name: evaluate(folder, renderer) for folder in args.data}
    text = table(results)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "channels.json").write_text(json.dumps(results, indent=1))
        first = args.data[0]
        identities = sorted(p.name for p in first.iterdir() if p.is_dir())
        steps = (0.0, 0.25, 0.5, 0.75, 1.0)
        strip(renderer, first, identities[0], {c: [{c: w} if w else {} for w in steps]
                                           for c in ("mouthSmileLeft", "jawOpen", "browInnerUp", "eyeBlinkRight")},
              args.out / "sweep.jpg")
        # a take's ramp: the corners rise (the left first), then the jaw opens part way and the inner brows lift
        ramp = [{"mouthSmileLeft": min(1, f / 16), "mouthSmileRight": min(1, f / 24), "jawOpen": 0.6 * max(0, f - 24) / 24,
                 "browInnerUp": 0.8 * max(0, f - 24) / 24} for f in range(0, 49, 8)]
        strip(renderer, first, identities[1], {"shot": [{k: v for k, v in m.items() if v > 0} for m in ramp]},
              args.out / "shot.jpg")
        (args.out / "CHANNELS_EVAL.md").write_text(
            "# Channel model on held-out renders\n\nGenerated by `python -m training.evaluate.channels` (its docstring "
            "gives the renders). Gain in dB of the edit over the neutral input against the true render, on the face, "
            "per channel group (mean over the mixes that move it; n: identities x mixes).\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
