"""Timing and reporting shared by the benchmarks: interleaved best-of rounds, CPU and RSS, the machine, charts."""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np


@dataclass
class Row:
    section: str
    name: str
    rate: float | None  # faces (or frames) per second
    unit: str = "faces/s"
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # headline numbers and ratios
    memory: list[tuple[int, float]] = field(default_factory=list)  # (frames done, RSS MiB)

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        click.echo(f"  {row.section:2s} {row.name:52s} {_fmt(row.rate)} {row.unit}  {row.note}", err=True)
        return row


def _fmt(rate: float | None) -> str:
    return "   n/a" if rate is None else f"{rate:8.1f}"


# -- timing -----------------------------------------------------------------------------------------


def time_per_call(fn: Callable[..., object], seconds: float, min_calls: int = 2) -> float:
    """Mean seconds per call of `fn` over at least `seconds` (and `min_calls` calls), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= min_calls:
            return elapsed / calls


def interleaved_best(cases: Mapping[str, tuple[Callable[..., object], int]], rounds: int, seconds: float) -> dict[str, float]:
    """{name: best items/s}: every case runs once per round, rounds interleaved, best round kept."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, (fn, items) in cases.items():
            rate = items / time_per_call(fn, seconds)
            best[name] = max(best.get(name, 0.0), rate)
    return best



def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    times = os.times()
    return times.user + times.system



def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB (Linux /proc; elsewhere peak only, from getrusage)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)
        return peak, peak
    values = {line.split(":")[0]: float(line.split()[1]) / 1024 for line in status.splitlines()
              if line.startswith(("VmRSS", "VmHWM"))}
    return values["VmRSS"], values["VmHWM"]



def bar_chart(path: Path, bars: list[tuple[str, float]], title: str, unit: str) -> None:
    """A small horizontal bar chart as PNG, drawn with Pillow (no matplotlib in the runtime)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    label_w, bar_w, row_h, pad = 380, 420, 26, 12
    height = pad * 3 + 20 + row_h * len(bars)
    image = Image.new("RGB", (label_w + bar_w + 190, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, fill="black", font=font)
    values = sorted((v for _, v in bars), reverse=True)
    top = (values[0] if values else 1.0) or 1.0
    if len(values) > 1 and values[0] > 3 * values[1] > 0:  # one bar far off scale (the preview): clip it
        top = values[1] * 1.25
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
    for i, (label, value) in enumerate(bars):
        y = pad * 2 + 20 + i * row_h
        draw.text((pad, y + 6), label[:60], fill="black", font=font)
        length = int(bar_w * min(value, top) / top)
        draw.rectangle([label_w, y + 3, label_w + max(length, 1), y + row_h - 5], fill=palette[i % len(palette)])
        clipped = " (bar clipped)" if value > top else ""
        draw.text((label_w + length + 6, y + 6), f"{value:.1f} {unit}{clipped}", fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def machine_facts() -> dict[str, str]:
    import onnxruntime
    import PIL

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    versions = {"python": platform.python_version(), "numpy": np.__version__, "onnxruntime": onnxruntime.__version__,
                "pillow": PIL.__version__}
    for name in ("torch", "onnx"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = module.__version__
    memory = ""
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        memory = f", {kib / (1 << 20):.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    return {"machine": f"{cpu}, {os.cpu_count()} logical CPUs{memory}, {platform.system()} {platform.release()}",
            "versions": ", ".join(f"{k} {v}" for k, v in versions.items())}


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


