"""`reggan-plugin bench`: speed of the network and of the render pipeline, measured side by side in one run.

Sections (all on the same random weights of one RegGAN built from a ModelConfig; speed does not depend on
the weights):
  a  torch eager, one face per call (the authors' style)      b  torch eager, batched
  c  the default onnxruntime CPU backend, batch 1 and best    d  the regression stage alone (preview)
  e  the whole `render` pipeline on 1920x1080 PNG frames vs the network alone
  f  peak memory (RSS) over a long sequence, and the detector's own cost
  g  the machine's float32 GEMM ceiling and the model's FLOPs per face (network share of the ceiling)

The machine is shared, so timings are taken in interleaved rounds and the best round of each case is kept:
a burst of someone else's load hits one round of one case, not a whole column. torch, onnx and the
exporter are imported inside the functions that need them; importing this module is torch-free.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import sys
import tempfile
from pathlib import Path

import click

from benchmarks.network import (
    PROBE_SIZES,
    bench_network,
    bench_variants,
    build_models,
    gemm_ceiling,
    model_macs,
    op_profile,
)
from benchmarks.pipeline import bench_detector, bench_memory, bench_pipeline, memory_marks
from benchmarks.timing import Report, bar_chart, load_average, machine_facts


@click.command("bench")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("docs"), show_default=True,
              help="Where BENCHMARKS.md and benchmarks.png are written.")
@click.option("--quick", is_flag=True, help="Tiny model, small frames, short timings: a smoke test, not a measurement.")
@click.option("--frames", "frame_count", type=click.IntRange(1), default=40, show_default=True,
              help="Frames for the pipeline measurement (e).")
@click.option("--long-frames", type=click.IntRange(0), default=500, show_default=True,
              help="Frames for the memory measurement (f); 0 skips it.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Interleaved rounds (best kept).")
@click.option("--seconds", type=click.FloatRange(0), default=1.5, show_default=True, help="Time per case per round.")
@click.option("--batch", type=click.IntRange(1), default=8, show_default=True, help="The pipeline's --batch.")
@click.option("--variants/--no-variants", default=True, show_default=True,
              help="Also time architecture variants (for the model's designers).")
def bench(out_dir: Path, quick: bool, frame_count: int, long_frames: int, rounds: int, seconds: float, batch: int,
          variants: bool) -> None:
    """Measure the network and the render pipeline side by side, in one run, and write docs/BENCHMARKS.md.

    Needs torch and onnx (it builds and exports a RegGAN with random weights: speed does not depend on
    the weights). Run it on a quiet machine; it takes about 10 minutes on 2 cores.
    """
    from training.config import TINY, ModelConfig

    # TINY's 32 px crop is smaller than the paste-back mask allows (blend.feather_mask needs >= 48 px)
    config = dataclasses.replace(TINY, image_size=48) if quick else ModelConfig()
    width, height = (320, 240) if quick else (1920, 1080)
    if quick:
        frame_count, long_frames, rounds, seconds, variants = min(frame_count, 4), min(long_frames, 6), 1, 0.05, False
    batches = (1, 2, 4) if quick else PROBE_SIZES
    report = Report()
    report.facts.update(machine_facts())
    report.facts["load_before"] = load_average()
    report.facts["command"] = "reggan-plugin bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "bench"
    report.facts["started"] = datetime.datetime.now().isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="reggan-bench-") as tmp:
        workdir = Path(tmp)
        click.echo(f"building and exporting RegGAN {config} ...", err=True)
        model, path, stage1_path = build_models(config, workdir)
        report.facts.update(machine_facts())  # torch and onnx are loaded now
        macs = model_macs(path)
        stage1_macs = model_macs(stage1_path)
        gflop = 2 * sum(macs.values()) / 1e9
        click.echo("GEMM ceiling ...", err=True)
        gemm = gemm_ceiling(seconds, sizes=(64, 128) if quick else (512, 1024, 1536, 2048), rounds=rounds)
        ceiling_name = max(gemm, key=lambda name: gemm[name])
        ceiling = gemm[ceiling_name]
        net = bench_network(report, model, path, stage1_path, rounds=rounds, seconds=seconds, batches=batches,
                            pipeline_batch=batch)
        share = net["cpu_best"] * gflop / ceiling
        report.add("g", f"GEMM ceiling: {ceiling_name} x {ceiling_name.split()[-1]} float32", ceiling, unit="GFLOP/s",
                   note="(" + ", ".join(f"{k}: {v:.0f}" for k, v in gemm.items()) + ")")
        report.add("g", "network at best batch", net["cpu_best"] * gflop, unit="GFLOP/s",
                   note=f"({gflop:.2f} GFLOP/face; {share:.0%} of the ceiling)")
        profile = op_profile(path, net["best_batch"], config.image_size, len(config.expressions))
        pipe = bench_pipeline(report, workdir, path, count=frame_count, width=width, height=height, batch=batch,
                              rounds=max(1, min(rounds, 2)), seconds=seconds, size=config.image_size,
                              n_expr=len(config.expressions))
        detector = bench_detector(report, workdir / "frames" / "frame_00000.png", repeats=1 if quick else 3)
        memory = bench_memory(report, workdir, path, count=long_frames, width=width, height=height,
                              batch=batch) if long_frames else None
        arch = bench_variants(report, config, workdir, rounds=rounds, seconds=seconds, batch=net["best_batch"],
                              ceiling=ceiling) if variants else []
    report.facts["load_after"] = load_average()
    results = {"net": net, "gflop": gflop, "macs": macs, "stage1_macs": stage1_macs, "ceiling": ceiling,
               "ceiling_name": ceiling_name, "share": share, "pipe": pipe, "memory": memory, "detector": detector,
               "profile": profile, "arch": arch, "config": config, "quick": quick}
    markdown = render_markdown(report, results)
    out_dir.mkdir(parents=True, exist_ok=True)
    bar_chart(out_dir / "benchmarks.png",
              [(r.name if len(r.name) < 60 else r.name[:57] + "...", r.rate) for r in report.rows
               if r.unit == "faces/s" and r.rate] + [(f"render pipeline ({width}x{height}, frames/s = faces/s)",
                                                     pipe["pipeline"])],
              f"RegGAN {config.image_size}px, faces per second on this machine (higher is better)", "/s")
    (out_dir / "BENCHMARKS.md").write_text(markdown)
    click.echo(markdown)
    click.echo(f"wrote {out_dir / 'BENCHMARKS.md'} and {out_dir / 'benchmarks.png'}", err=True)


def render_markdown(report: Report, r: dict) -> str:
    net, pipe, memory, config = r["net"], r["pipe"], r["memory"], r["config"]
    f = report.facts
    speedup = net["cpu_best"] / net["eager1"]
    pipe_ratio = pipe["pipeline"] / pipe["network"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `reggan-plugin bench` (benchmarks/bench.py); do not edit by hand.",
        "**Quick smoke run (tiny model, small frames): these numbers mean nothing.**" if r["quick"] else "",
        "",
        f"- Machine: {f['machine']}",
        f"- Versions: {f['versions']}",
        f"- Backend: {f.get('backend', '')}",
        f"- Run: {f['started']}, `{f['command']}`; load average (1/5/15 min) before {f['load_before']}, "
        f"after {f['load_after']}",
        f"- Model: RegGAN `{config}` with random weights (speed does not depend on the weights), exported with "
        f"`export_model`; {r['gflop']:.2f} GFLOP per face ("
        + ", ".join(f"{op} {2 * m / 1e9:.3f}" for op, m in sorted(r["macs"].items())) + " GFLOP).",
        "- Every number below comes from this one run. The machine is shared, so each case ran in interleaved "
        "rounds and its best round is kept: ratios compare cases measured minutes apart under the same conditions.",
        "",
        "## Acceptance",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| default backend >= 4x the authors-style eager loop, per face | {speedup:.1f}x "
        f"({net['cpu_best']:.1f} vs {net['eager1']:.1f} faces/s; per core, 1 thread each: {net['per_core']:.1f}x) | "
        f"{'yes' if speedup >= 4 else 'no'} |",
        f"| network >= 60% of the measured matmul ceiling | {r['share']:.0%} ({net['cpu_best'] * r['gflop']:.0f} of "
        f"{r['ceiling']:.0f} GFLOP/s) | {'yes' if r['share'] >= 0.6 else 'no'} |",
        f"| pipeline on {pipe['frame'][0]}x{pipe['frame'][1]} frames >= 80% of the network-alone face rate | "
        f"{pipe_ratio:.0%} ({pipe['pipeline']:.1f} frames/s vs {pipe['network']:.1f} faces/s) | "
        f"{'yes' if pipe_ratio >= 0.8 else 'no'} |",
        f"| (context) the same pipeline with the network ~ free (`--stage regression`) | "
        f"{pipe['io_bound']:.2f} frames/s: the full pipeline runs at {pipe['pipeline'] / pipe['io_bound']:.0%} of "
        "its own I/O-bound rate | |",
    ]
    if memory:
        flat = memory["growth_mib"] < max(50.0, 0.05 * memory["early_mib"])
        lines.append(
            f"| peak RSS over {memory['frames']} frames < 1.5 GB, not growing | peak {memory['peak_mib']:.0f} MiB; "
            f"RSS {memory['early_mib']:.0f} MiB at 10-20% of the frames, {memory['late_mib']:.0f} MiB in the last 10% | "
            f"{'yes' if memory['peak_mib'] < 1536 and flat else 'no'} |")
    lines += ["", "## Measurements", "", "![faces per second](benchmarks.png)", "",
              "| | case | rate | unit | ms per item | vs (a) | notes |", "|---|---|---|---|---|---|---|"]
    for row in report.rows:
        rate = f"{row.rate:.1f}" if row.rate else "n/a"
        per = f"{1e3 / row.rate:.1f}" if row.rate and row.unit != "GFLOP/s" else ""
        versus = f"{row.rate / net['eager1']:.1f}x" if row.rate and row.unit in ("faces/s", "frames/s") and row.section in "abcde" else ""
        lines.append(f"| {row.section} | {row.name} | {rate} | {row.unit} | {per} | {versus} | {row.note} |")
    stage1_gflop = 2 * sum(r["stage1_macs"].values()) / 1e9
    lines += ["", f"(d) The regression stage alone is {stage1_gflop * 1e3:.1f} MFLOP per face. The preview graph "
              "(stage 1 cut out of the model on first use, `reggan_plugin.preview_graph`) skips the refiner; "
              "fetching `stage1` from the full graph does not, because onnxruntime runs every node of the graph."]
    costs = pipe["costs"]
    what_if = {k: v for k, v in costs.items() if k.startswith("what-if")}
    costs = {k: v for k, v in costs.items() if k not in what_if}
    total = sum(costs.values())
    net_ms = costs.get("network (1 face)", 0.0)
    # (the table below)
    lines += ["", f"## Where a {pipe['frame'][0]}x{pipe['frame'][1]} frame's CPU time goes (one thread, one frame)", "",
              "| step | ms | share |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.1f} | {ms / total:.0%} |" for name, ms in costs.items()]
    lines += [f"| ({name}) | {ms:.1f} | |" for name, ms in what_if.items()]
    lines += ["", f"Everything but the network costs {total - net_ms:.0f} ms of CPU per frame against "
              f"{1e3 / pipe['network']:.0f} ms per face for the network (both cores). With the network and the codecs "
              f"sharing {os.cpu_count()} cores, the pipeline cannot beat about "
              f"{1e3 / (1e3 / pipe['network'] + (total - net_ms) / (os.cpu_count() or 1)):.1f} frames/s even with "
              "perfect overlap; see the notes below."]
    encode = costs.get("encode + write (imageio PNG)", 0.0)
    net_face_ms = 1e3 / pipe["network"]
    if memory:
        marks = memory_marks(report.memory)
        lines += ["", f"## Memory over {memory['frames']} frames", "",
                  "RSS of a fresh process rendering the sequence (`render_sequence` with --region, default options), "
                  "sampled after each frame:", "",
                  "| frames done | " + " | ".join(str(n) for n, _ in marks) + " |",
                  "|---|" + "---|" * len(marks),
                  "| RSS MiB | " + " | ".join(f"{v:.0f}" for _, v in marks) + " |", "",
                  f"Start (model loaded): {memory['start_mib']:.0f} MiB; peak (VmHWM): {memory['peak_mib']:.0f} MiB."]
    lines += ["", f"## onnxruntime profile at batch {net['best_batch']} (ms per face, by op type)", "",
              "| op | ms/face | nodes |", "|---|---|---|"]
    lines += [f"| {op} | {ms:.2f} | {n} |" for op, ms, n in r["profile"][:12]]
    lines += ["", "## Notes", ""]
    lines += [
        f"- **Pipeline vs network.** The target (>= 80% of the network-alone face rate) assumes the network dominates a "
        f"frame. Here it does not: encoding one {pipe['frame'][0]}x{pipe['frame'][1]} RGBA PNG costs {encode:.0f} ms of "
        f"one core and decoding it {costs.get('decode (read_image)', 0):.0f} ms, against {net_face_ms:.0f} ms per face "
        f"for the network on both cores. On {os.cpu_count()} cores no scheduling can hide that; the streaming pipeline "
        f"overlaps the work (readers, batched inference, writers in threads with bounded queues) and gets "
        f"{pipe['pipeline']:.2f} frames/s"
        + f" and {pipe['io_bound']:.2f} frames/s with the network nearly free (`--stage regression`), i.e. the "
        "network adds little on top of the codecs. When other jobs hold the cores, this process gets a share of the "
        "CPU whatever its thread count ('cores busy' in the table); then only CPU per frame counts, not overlap. "
        "imageio writes PNG with its own numpy 'Up' filter + ISA-L deflate "
        "level 1 encoder (`imageio.encode_png`; the what-if rows show Pillow writing the same pixels); further ways past "
        "the codec: EXR/TIFF outputs, more cores (reader/writer threads scale), or `--shard I/N` across machines.",
        f"- **Eager torch vs the cpu backend.** Eager torch (oneDNN convolutions) already runs at "
        f"{net['eager1'] * r['gflop'] / r['ceiling']:.0%} of the measured ceiling at one face per call, so no fp32 "
        f"runtime can be more than about {r['ceiling'] / (net['eager1'] * r['gflop']):.1f}x faster per face on this "
        f"machine; the cpu backend is {speedup:.1f}x ({net['per_core']:.1f}x per core, one thread each). Under "
        "contention torch's OpenMP threads degrade far more than onnxruntime's (no spinning), so this ratio swings "
        "with the machine's load; the per-core row is the stable comparison. Ways to more: fewer FLOPs per face "
        "(variants below; they help torch as much), int8 convolutions on VNNI (`benchmarks/int8_probe.py`; needs a "
        "quality check on the trained model), or a GPU backend.",
        f"- **Network vs the matmul ceiling.** {r['share']:.0%}: the convolutions (onnxruntime's NCHWc direct "
        "kernels) run as fast as its GEMM, so a share near or above 100% means the network is compute-bound at this "
        "machine's peak (the GEMM probe itself varies by size and load). The profile shows the small rest (layout "
        "reorders, InstanceNorm, the final 7x7 conv with only 6 output channels (warp, mask, residual), which fills 6 of 16 vector lanes). "
        "The variants table measures single changes the model's designers can make before training.",
        "- **Preview.** `--stage regression` runs stage 1 cut out of the model on first use and cached per user "
        "(`reggan_plugin.preview_graph`), so a model version ships one graph.",
        "- **Memory.** The streaming render holds about 2 x batch + 3 frames whatever the sequence length (a batch "
        "being read, a batch being inferred, a few being written) and converts only the faces' region to float (not "
        "the whole frame), so RSS is flat over the sequence.",
        "- **Shared machine.** Other engineers' jobs ran during this benchmark (load averages above); every case "
        "took its best interleaved round, so ratios are fair, absolute rates are lower than on an idle machine.",
    ]
    if r["arch"]:
        base = r["arch"][0][1]
        lines += ["", f"## Architecture variants (prototypes, random weights, batch {net['best_batch']}, onnxruntime CPU)", "",
                  "| variant | faces/s | vs default | GFLOP/face | share of ceiling |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {rate:.1f} | {rate / base:.2f}x | {g:.2f} | {s:.0%} |" for name, rate, g, s in r["arch"]]
    return "\n".join(lines) + "\n"


