"""Peak resident memory of a stretch of work, measured while it runs.

`getrusage`'s ru_maxrss is the process's peak over its whole life, so a benchmark that ran other work
first reports that work's peak instead. Sampling RSS on a background thread during the stretch gives
its own peak, and the growth over what the process already held when it began.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psutil

SAMPLE_SECONDS = 0.05


@dataclass
class PeakRss:
    start_mb: float = 0.0
    peak_mb: float = 0.0

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@contextmanager
def peak_rss() -> Iterator[PeakRss]:
    """Yields a PeakRss filled in while the block runs (final once it exits)."""
    process = psutil.Process()
    measured = PeakRss(start_mb=process.memory_info().rss / 2**20)
    measured.peak_mb = measured.start_mb
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_SECONDS):
            measured.peak_mb = max(measured.peak_mb, process.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, name="peak-rss", daemon=True)
    sampler.start()
    try:
        yield measured
    finally:
        done.set()
        sampler.join()
        measured.peak_mb = max(measured.peak_mb, process.memory_info().rss / 2**20)
