"""The one shape every format converter returns, so the writer does not care which format it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from siyu.data.schema import EVENT_SCHEMA


@dataclass
class Converted:
    """Validated output of one format: events plus the items / prices it implies."""

    events: pd.DataFrame
    items: pd.DataFrame | None = None
    prices: pd.DataFrame | None = None
    ignored: dict[str, int] = field(default_factory=dict)


def event_frame(**columns: object) -> pd.DataFrame:
    """Events in EVENT_SCHEMA column order; scalars broadcast (None for null strings)."""
    frame = pd.DataFrame(columns)[EVENT_SCHEMA.names]
    frame["event_time"] = frame["event_time"].dt.floor("us")
    frame["quantity"] = frame["quantity"].astype(np.int64)
    frame["unit_price"] = frame["unit_price"].astype(np.float64)
    return frame.reset_index(drop=True)
