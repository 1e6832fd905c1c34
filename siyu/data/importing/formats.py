"""The registry of import formats: each format's columns, whether it has a header, and its converter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from siyu.data.importing.converted import Converted
from siyu.data.importing.events import EVENT_COLUMNS, convert_events
from siyu.data.importing.online_retail import RETAIL_COLUMNS, convert_online_retail
from siyu.data.importing.taobao import TAOBAO_COLUMNS, convert_taobao
from siyu.data.importing.validation import Rows

Format = Literal["events", "taobao", "online-retail"]


@dataclass(frozen=True)
class _Spec:
    columns: tuple[str, ...]
    has_header: bool
    convert: Callable[[pd.DataFrame, Rows], Converted]


FORMATS: dict[str, _Spec] = {
    "events": _Spec(EVENT_COLUMNS, True, convert_events),
    "taobao": _Spec(TAOBAO_COLUMNS, False, convert_taobao),
    "online-retail": _Spec(RETAIL_COLUMNS, True, convert_online_retail),
}
