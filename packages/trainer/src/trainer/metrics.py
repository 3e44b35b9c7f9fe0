"""What a run reports: a JSONL metrics file, a console line, a progress bar, a loss-curve PNG.

Only rank 0 reports; other ranks get a logger with `enabled=False` that does nothing.

Each line of metrics.jsonl is one JSON object. Training records carry
    step, tokens, lr, train_loss, grad_norm, tokens_per_s, mfu, wall_s  (+ skipped if skipped)
and validation records carry
    step, tokens, val_loss, wall_s.
`step` counts optimizer steps completed; `wall_s` is wall-clock seconds since the run first
started (it continues across resumes).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records of a metrics file (a torn last line from a crash is ignored)."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


class ProgressBar:
    """A one-line bar with ETA, redrawn in place on a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self._t0: float | None = None
        self._s0 = 0

    def update(self, step: int, suffix: str = "") -> None:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._s0 = now, step
        done = step / self.total
        filled = int(self.width * done)
        rate = (step - self._s0) / max(now - self._t0, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        bar = "█" * filled + "·" * (self.width - filled)
        self.stream.write(
            f"\r[{bar}] {100 * done:5.1f}% {step}/{self.total} ETA {_clock(eta)} {suffix}\033[K"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return (
        f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
        if hours
        else f"{rest // 60:02d}:{rest % 60:02d}"
    )


class MetricsLogger:
    """Appends records to `<out_dir>/metrics.jsonl`, prints console lines, draws the bar."""

    def __init__(
        self,
        out_dir: str | os.PathLike | None,
        *,
        total_steps: int,
        enabled: bool = True,
        console: TextIO | None = sys.stdout,
        progress_bar: bool | None = None,
    ) -> None:
        self.enabled = enabled
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.path = self.out_dir / "metrics.jsonl" if self.out_dir is not None else None
        self.console = console if enabled else None
        if progress_bar is None:
            progress_bar = sys.stderr.isatty()
        self.bar = ProgressBar(total_steps) if (enabled and progress_bar) else None
        self._file: TextIO | None = None

    def start(self, resumed_step: int) -> None:
        """Open the metrics file; on resume drop records past the checkpoint (they will repeat)."""
        if not self.enabled or self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resumed_step > 0 and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resumed_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
            os.replace(tmp, self.path)
        elif resumed_step == 0 and self.path.exists():
            self.path.unlink()  # a fresh run starts a fresh file
        self._file = open(self.path, "a")  # noqa: SIM115 (kept open for the run)

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        if self.console is not None:
            self._clear_bar()
            self.console.write(_console_line(record) + "\n")
            self.console.flush()

    def progress(self, step: int, loss: float | None = None) -> None:
        if self.bar is not None:
            self.bar.update(step, f"loss {loss:.4f}" if loss is not None else "")

    def note(self, message: str) -> None:
        if self.console is not None:
            self._clear_bar()
            self.console.write(message + "\n")
            self.console.flush()

    def _clear_bar(self) -> None:
        if self.bar is not None:
            self.bar.stream.write("\r\033[K")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _console_line(r: dict[str, Any]) -> str:
    if "val_loss" in r:
        return f"step {r['step']:>6} | val loss {r['val_loss']:.4f} | {r['wall_s']:.1f}s"
    parts = [
        f"step {r['step']:>6}",
        f"loss {r['train_loss']:.4f}",
        f"lr {r['lr']:.2e}",
        f"gnorm {r['grad_norm']:.3f}",
        f"{r['tokens_per_s'] / 1e3:,.1f}k tok/s",
    ]
    if r.get("mfu") is not None:
        parts.append(f"mfu {100 * r['mfu']:.1f}%")
    parts.append(f"{r['wall_s']:.1f}s")
    if r.get("skipped"):
        parts.append("SKIPPED (non-finite)")
    return " | ".join(parts)


def plot_losses(metrics_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Train and validation loss vs. steps and vs. wall-clock seconds, side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend
    from matplotlib.figure import Figure

    records = read_metrics(metrics_path)
    train = [r for r in records if "train_loss" in r and not r.get("skipped")]
    val = [r for r in records if "val_loss" in r]
    figure = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(figure)
    for axis, x_key, x_label in zip(
        figure.subplots(1, 2), ("step", "wall_s"), ("optimizer step", "wall-clock seconds")
    ):
        axis.plot([r[x_key] for r in train], [r["train_loss"] for r in train], label="train")
        if val:
            axis.plot([r[x_key] for r in val], [r["val_loss"] for r in val], "o-", label="val")
        axis.set_xlabel(x_label)
        axis.set_ylabel("loss (nats/token)")
        axis.grid(alpha=0.3)
        axis.legend()
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp")
    figure.savefig(tmp, format="png", dpi=110)
    os.replace(tmp, png_path)
