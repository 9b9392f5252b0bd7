"""What the person (or the Job log) sees: a progress bar on a terminal, a plain line every few seconds
otherwise, and a summary at the end. The only module of the bulk package that writes to the terminal."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from gateway import contract


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


@dataclass
class Summary:
    total: int
    from_ledger: int
    classified: int
    failed: int
    seconds: float
    requests: int
    labels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    outputs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        rate = self.classified / self.seconds if self.seconds > 0 else 0.0
        lines = [
            f"done: {self.total} images ({self.from_ledger} already in the ledger,"
            f" {self.classified} classified now, {self.failed} failed now) in {duration(self.seconds)},"
            f" {rate:.1f} images/s,"
            f" {self.requests} requests",
        ]
        if self.labels:
            counts = ", ".join(
                f"{label} {self.labels[label]}" for label in contract.LABELS if self.labels[label]
            )
            lines.append(f"labels: {counts}")
        if self.errors:
            lines.append("failures: " + ", ".join(f"{code} {n}" for code, n in sorted(self.errors.items())))
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        lines.extend(f"wrote {path}" for path in self.outputs)
        return lines


class Reporter:
    """Progress for `total` images of which `done` were finished before this run started."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interactive: bool,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interactive = interactive
        self.interval_s = interval_s
        self.clock = clock
        self.total = 0
        self.done = 0
        self.failed = 0
        self.started = clock()
        self._initial = 0
        self._last_line = self.started
        self._bar: object | None = None

    def start(self, total: int, done: int) -> None:
        self.total, self.done, self._initial = total, done, done
        self.started = self._last_line = self.clock()
        if self.interactive:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=done, unit="img", file=self.stream, dynamic_ncols=True, smoothing=0.1
            )
        else:
            self.line(f"{total} images, {done} already done, {total - done} to classify")

    def advance(self, images: int, failed: int) -> None:
        self.done += images
        self.failed += failed
        if self._bar is not None:
            self._bar.update(images)  # type: ignore[attr-defined]
            if failed:
                self._bar.set_postfix(failed=self.failed)  # type: ignore[attr-defined]
            return
        now = self.clock()
        if now - self._last_line >= self.interval_s or self.done == self.total:
            self._last_line = now
            self.line(self.status(now))

    def status(self, now: float) -> str:
        elapsed = now - self.started
        fresh = self.done - self._initial
        rate = fresh / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = duration(left / rate) if rate > 0 else "?"
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.done}/{self.total} images ({percent:.0f}%), {rate:.1f} images/s, ETA {eta},"
            f" {self.failed} failed"
        )

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.write(message, file=self.stream)  # type: ignore[attr-defined]
        else:
            self.line(message)

    def line(self, message: str) -> None:
        self.stream.write(f"bulk: {message}\n")
        self.stream.flush()

    def finish(self, summary: Summary) -> None:
        if self._bar is not None:
            self._bar.close()  # type: ignore[attr-defined]
            self._bar = None
        for text in summary.lines():
            self.line(text)
