"""A one-line progress bar on stderr (no dependency): redrawn in place on a terminal,
printed as an occasional plain line when stderr is a file or a pipe (CI logs stay readable)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_count(n: float, unit: str) -> str:
    if unit == "B":
        for suffix in ("B", "KB", "MB", "GB"):
            if abs(n) < 1000 or suffix == "GB":
                return f"{n:.0f}{suffix}" if suffix == "B" else f"{n:.1f}{suffix}"
            n /= 1000
    return f"{n:,.0f}"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "",
        enabled: bool = True,
        stream: TextIO | None = None,
        width: int = 24,
        plain_every_s: float = 15.0,
    ):
        self.total, self.desc, self.unit, self.width = total, desc, unit, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.live = enabled and self.stream.isatty()
        self.plain_every_s = plain_every_s
        self.n = 0
        self.start_n = None  # count at the first update (a resumed transfer starts part-way)
        self.postfix = ""
        self.t0 = time.monotonic()
        self.last_draw = 0.0
        self.last_plain = self.t0

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        if self.start_n is None:
            self.start_n = self.n
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.monotonic()
        if self.live and now - self.last_draw >= 0.1:
            self._draw(now, end="")
        elif self.enabled and not self.live and now - self.last_plain >= self.plain_every_s:
            self.last_plain = now
            self._draw(now, end="\n")

    def set_postfix(self, postfix: str) -> None:
        self.postfix = postfix
        if self.live:
            self._draw(time.monotonic(), end="")

    def line(self, now: float | None = None) -> str:
        now = now or time.monotonic()
        elapsed = now - self.t0
        done = self.n - (self.start_n or 0)
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [self.desc] if self.desc else []
        if self.total:
            frac = min(1.0, self.n / self.total)
            filled = int(frac * self.width)
            parts.append(f"{frac:4.0%} |{'█' * filled}{'·' * (self.width - filled)}|")
            parts.append(f"{format_count(self.n, self.unit)}/{format_count(self.total, self.unit)}")
            eta = (self.total - self.n) / rate if rate > 0 else 0
            parts.append(f"{format_duration(elapsed)}<{format_duration(eta)}")
        else:
            parts.append(f"{format_count(self.n, self.unit)} {format_duration(elapsed)}")
        if self.unit == "B" and rate:
            parts.append(f"{format_count(rate, 'B')}/s")
        if self.postfix:
            parts.append(self.postfix)
        return "  ".join(parts)

    def _draw(self, now: float, end: str) -> None:
        self.last_draw = now
        prefix = "\r\x1b[2K" if self.live else ""
        self.stream.write(prefix + self.line(now) + end)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:  # the final state, on its own line
            self._draw(time.monotonic(), end="\n")
