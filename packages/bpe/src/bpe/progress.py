"""A minimal progress bar on stderr, shown only on a terminal (or when asked for)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`Progress(total, label)`, then `.update(n)` and `.close()`.

    enabled=None shows the bar only when stderr is a terminal, so logs and pipes stay clean.
    Redraws at most ten times a second, so updating it in a hot loop costs almost nothing.
    """

    def __init__(self, total: int, label: str, unit: str = "", enabled: bool | None = None):
        self.total = max(1, int(total))
        self.label = label
        self.unit = unit
        self.done = 0
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = -1  # the `done` value last drawn

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(1.0, self.done / self.total)
        width = 30
        filled = int(width * fraction)
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.unit == "B":
            amount = f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s"
        else:
            amount = f"{self.done}/{self.total}{self.unit}, {rate:.0f}/s"
        bar = "#" * filled + "." * (width - filled)
        self._drawn = self.done
        sys.stderr.write(f"\r{self.label:>14} [{bar}] {fraction:6.1%} {amount} {elapsed:.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            if self._drawn != self.done:
                self._draw(time.perf_counter())
            sys.stderr.write("\n")
            sys.stderr.flush()
