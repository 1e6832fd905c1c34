"""Peak RSS of a block is that block's own, not the process's lifetime peak."""

from __future__ import annotations

import time

import numpy as np

from siyu.memory import peak_rss


def test_peak_rss_sees_memory_held_only_inside_the_block() -> None:
    with peak_rss() as memory:
        block = np.ones(200 * 2**20 // 8)  # 200 MB, touched
        time.sleep(0.2)
        del block
    assert memory.growth_mb > 150 and memory.peak_mb >= memory.start_mb + memory.growth_mb - 1e-6
    with peak_rss() as quiet:
        time.sleep(0.1)
    assert quiet.growth_mb < 50  # the earlier block's peak does not leak into a later measurement
