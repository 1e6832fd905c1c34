"""Integer codes for a request's string keys (items, categories), looked up in a dict built once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def codes_of(keys: Sequence[str] | np.ndarray, code_of: Mapping[str, int]) -> np.ndarray:
    """Each key's code in `code_of`, -1 for a key it does not hold (which then matches no candidate).

    A dict lookup per key: for the few hundred keys of one request, cheaper than building a pandas Index.
    """
    return np.fromiter((code_of.get(key, -1) for key in keys), dtype=np.int64, count=len(keys))
