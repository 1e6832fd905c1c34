"""Import format `taobao`: the headerless Taobao UserBehavior app log, with sessions cut at 30 idle minutes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siyu.data.importing.converted import Converted, event_frame
from siyu.data.importing.validation import Rows, choice, integer, text

TAOBAO_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
TAOBAO_EVENT_TYPES = {"pv": "view", "cart": "add_to_cart", "fav": "favourite", "buy": "purchase"}
SESSION_GAP_SECONDS = 30 * 60
# The log covers late 2017; anything outside 1970..2100 is a corrupt value, not a real event.
_MAX_UNIX_SECONDS = 4_102_444_800


def convert_taobao(frame: pd.DataFrame, rows: Rows) -> Converted:
    """App behaviour log keyed by account; sessions are cut at 30 minutes of inactivity."""
    user = text(rows, frame["user_id"], "user_id", digits=True)
    item = text(rows, frame["item_id"], "item_id", digits=True)
    category = text(rows, frame["category_id"], "category_id", digits=True)
    behavior = choice(rows, frame["behavior_type"], "behavior_type", TAOBAO_EVENT_TYPES)
    seconds = integer(rows, frame["timestamp"], "timestamp", 0, _MAX_UNIX_SECONDS)
    ok = rows.good
    user, seconds = user[ok], seconds[ok].astype(np.int64)
    events = event_frame(
        event_time=pd.to_datetime(seconds, unit="s", utc=True),
        user_key=user,
        user_key_type="account_id",
        item_id=item[ok],
        event_type=behavior[ok].map(TAOBAO_EVENT_TYPES),
        channel="app",
        store_id=None,
        quantity=1,
        unit_price=np.nan,
        session_id=_sessions(user, seconds),
    )
    items = _latest_category(item[ok], category[ok], seconds)
    return Converted(events, items=items)


def _sessions(user: pd.Series, seconds: pd.Series) -> pd.Series:
    """`tb-{user}-{session start second}`: stable across files, unlike a per-file counter."""
    codes, _ = pd.factorize(user)
    secs = seconds.to_numpy()
    order = np.lexsort((secs, codes))
    sorted_codes, sorted_secs = codes[order], secs[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (np.diff(sorted_secs) > SESSION_GAP_SECONDS)
    start_pos = np.maximum.accumulate(np.where(new, np.arange(len(order)), 0))
    start = np.empty_like(secs)
    start[order] = sorted_secs[start_pos]
    return "tb-" + user + "-" + pd.Series(start, index=user.index).astype(str)


def _latest_category(item: pd.Series, category: pd.Series, seconds: pd.Series) -> pd.DataFrame:
    """One row per item; should the log disagree, the category seen last wins."""
    frame = pd.DataFrame({"item_id": item, "category_id": category, "t": seconds}).sort_values("t", kind="stable")
    items = frame.drop_duplicates("item_id", keep="last")[["item_id", "category_id"]]
    return items.assign(brand_id=None, title=None, list_price=np.nan, cost=np.nan)
