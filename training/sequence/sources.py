"""Our event log and public logs as sequences: each item's first event in a session, and its deepening.

Each converter reduces raw events to a step table (STEP_COLUMNS) and hands it to `from_steps`, so every
source means the same thing by a step, a session and an action. File parsing reuses the importers' rules
(`siyu.data.importing`), so a row the importer rejects is rejected here too, with the same line and reason.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from siyu.data import schema
from siyu.data.identity import attach_user_ids, build_identity_map
from siyu.data.importing.converted import Converted
from siyu.data.importing.online_retail import RETAIL_COLUMNS, convert_online_retail
from siyu.data.importing.reading import read
from siyu.data.importing.report import ImportFormatError
from siyu.data.importing.taobao import _MAX_UNIX_SECONDS, TAOBAO_COLUMNS, TAOBAO_EVENT_TYPES, convert_taobao
from siyu.data.importing.validation import Rows
from siyu.data.store import read_table
from siyu.settings import Settings
from training.sequence.data import ACTIONS, SequenceData, SequenceDataError, epoch_seconds, from_steps

# Depth of each event type on the decision path (ACTIONS token); a coupon claim is as deep as a cart add.
# Refunds, searches and store visits say nothing about which item comes next, so they make no step.
EVENT_DEPTH: dict[str, int] = {
    "view": 1,
    "favourite": 2,
    "add_to_cart": 3,
    "coupon_claim": 3,
    "purchase": 4,
}
# Taobao sessions: a user's run of events with every gap under 30 minutes.
TAOBAO_SESSION_GAP_SECONDS = 30 * 60


def from_events(settings: Settings) -> SequenceData:
    """Steps from our own event log (generated or imported), users resolved to the unified user id."""
    try:
        events = read_table(settings.events_dir, schema.EVENT_SCHEMA)
        identity = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        raise SequenceDataError(f"cannot read the event log under {settings.data_dir}: {exc}") from exc
    if events.empty:
        raise SequenceDataError(
            f"no events under {settings.events_dir}: generate a world or import a log first (`siyu data ...`)"
        )
    return from_event_log(events, unified_users(events, identity), item_categories(settings), settings.events_dir)


def from_event_log(
    events: pd.DataFrame, users: np.ndarray, categories: pd.Series | None, where: object = "the event log"
) -> SequenceData:
    """Steps from event rows already read, `users` naming each row's person (see `unified_users`)."""
    keep = _is_step_event(events)
    if not keep.any():
        raise SequenceDataError(f"the events under {where} hold no item views, carts or purchases")
    data = from_steps(event_steps(events, users))
    return data if categories is None else data.with_categories(categories)


def item_categories(settings: Settings) -> pd.Series | None:
    """category_id by item_id from the items table, or None before any item table exists."""
    if not settings.items_path.exists():
        return None
    return read_table(settings.items_path, schema.ITEM_SCHEMA).set_index("item_id")["category_id"]


def step_events(events: pd.DataFrame) -> pd.DataFrame:
    """The event rows that can become steps: item views, favourites, cart adds, coupon claims, purchases."""
    return events[_is_step_event(events)]


def _is_step_event(events: pd.DataFrame) -> np.ndarray:
    return (events["event_type"].isin(list(EVENT_DEPTH)) & events["item_id"].notna()).to_numpy()


def event_steps(events: pd.DataFrame, users: np.ndarray | pd.Series) -> pd.DataFrame:
    """The step table of event rows (rows `step_events` would drop are dropped; none are copied when none drop).

    `users` names each row's sequence: the unified user id, or any other key (one per impression, say).
    """
    keep = _is_step_event(events)
    if not keep.all():
        events, users = events[keep], np.asarray(users)[keep]
    return path_steps(
        user=np.asarray(users),
        item=events["item_id"].to_numpy(),
        session=events["session_id"].to_numpy(),
        time=epoch_seconds(events["event_time"]),
        depth=events["event_type"].map(EVENT_DEPTH).to_numpy(dtype=np.int8),
        channel=events["channel"].to_numpy(),
    )


def own_events(settings: Settings) -> SequenceData:
    """`from_events` after resolving identities if no identity map exists yet, so a person is one sequence."""
    if not settings.identity_map_path.exists() and settings.identity_links_path.exists():
        build_identity_map(settings)
    return from_events(settings)


def unified_users(events: pd.DataFrame, identity: pd.DataFrame) -> np.ndarray:
    """Each event's unified user id, resolved once per distinct identifier rather than once per event."""
    kind = pd.factorize(events["user_key_type"])[0].astype(np.int64)
    key = pd.factorize(events["user_key"])[0].astype(np.int64)
    _, firsts, codes = np.unique(key * (kind.max() + 1) + kind, return_index=True, return_inverse=True)
    distinct = events[["user_key_type", "user_key"]].iloc[firsts].reset_index(drop=True)
    return attach_user_ids(distinct, identity)["user_id"].to_numpy()[codes]


def from_taobao(path: Path | str) -> SequenceData:
    """Steps from the headerless Taobao UserBehavior csv (user, item, category, pv/cart/fav/buy, unix seconds).

    The common case is read by Arrow straight into integer columns (the full log has 100 M rows); a file
    that does not parse that way goes through the Taobao importer's validation, which names the bad line.
    """
    path = _existing(path)
    log = _taobao_fast(path)
    if log is None:
        log = _taobao_validated(path)
    user, item, category, depth, seconds = log
    session = sessions_by_gap(user, seconds, TAOBAO_SESSION_GAP_SECONDS)
    data = from_steps(path_steps(user, item, session, seconds, depth, channel="app"))
    return data.with_categories(_taobao_categories(item, category, seconds))


def from_online_retail(path: Path | str) -> SequenceData:
    """Purchase sequences by customer from UCI Online Retail: a session is an invoice, a step an invoice's item.

    Guests (no CustomerID), cancellations and non-merchandise lines are dropped by the importer's rules.
    """
    path = _existing(path)
    events = _validated(path, RETAIL_COLUMNS, has_header=True, convert=convert_online_retail).events
    bought = events[events["event_type"].eq("purchase") & events["user_key_type"].eq("member_id")]
    if bought.empty:
        raise SequenceDataError(f"{path.name} holds no purchases by identified customers (CustomerID)")
    return from_steps(
        path_steps(
            user=bought["user_key"].to_numpy(),
            item=bought["item_id"].to_numpy(),
            session=bought["session_id"].to_numpy(),
            time=epoch_seconds(bought["event_time"]),
            depth=np.full(len(bought), EVENT_DEPTH["purchase"], dtype=np.int8),
            channel="web",
        )
    )


def read_user_item_file(path: Path | str) -> SequenceData:
    """The `user item` text format of published sequential-recommendation datasets: one pair per line, in time order.

    Users and items are integers; blank lines are skipped. The line number stands in for time, so each
    user's order is kept; every step is its own session and a view (the format carries no actions).
    """
    path = _existing(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SequenceDataError(f"{path.name} is not UTF-8 text, so it is not a `user item` file") from exc
    lines = pd.Series(text.split("\n"), dtype=object).str.strip()
    lines.index = np.arange(1, len(lines) + 1)  # 1-based line numbers
    lines = lines[lines.ne("")]
    if lines.empty:
        raise SequenceDataError(f"{path.name} is empty: expected one `user item` pair of integers per line")
    fields = lines.str.split()
    wrong_width = fields.str.len().ne(2)
    if wrong_width.any():
        line = int(lines.index[np.argmax(wrong_width.to_numpy())])
        raise SequenceDataError(f"{path.name} line {line}: expected `user item`, got {lines[line]!r}")
    user, item = fields.str[0], fields.str[1]
    bad = ~(user.str.fullmatch(r"[+-]?\d+") & item.str.fullmatch(r"[+-]?\d+")).to_numpy()
    if bad.any():
        line = int(lines.index[np.argmax(bad)])
        raise SequenceDataError(f"{path.name} line {line}: user and item must be integers, got {lines[line]!r}")
    line_numbers = lines.index.to_numpy(dtype=np.int64)
    steps = pd.DataFrame(
        {
            "user_id": pd.to_numeric(user).to_numpy(dtype=np.int64),
            "item_id": pd.to_numeric(item).to_numpy(dtype=np.int64),
            "time": line_numbers,
            "action": ACTIONS[0],
            "channel": "unknown",
            "session_id": line_numbers,
        }
    )
    return from_steps(steps, has_actions=False)


def sessions_by_gap(user: np.ndarray, seconds: np.ndarray, gap: int) -> np.ndarray:
    """Session number per event (input order): a new session starts at a user's first event or after `gap` idle s."""
    codes = pd.factorize(user)[0]
    order = np.lexsort((np.arange(codes.size), seconds, codes))
    sorted_codes, sorted_seconds = codes[order], seconds[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (np.diff(sorted_seconds) >= gap)
    session = np.empty(order.size, dtype=np.int64)
    session[order] = np.cumsum(new)
    return session


def path_steps(
    user: np.ndarray,
    item: np.ndarray,
    session: np.ndarray,
    time: np.ndarray,
    depth: np.ndarray,
    channel: np.ndarray | str,
) -> pd.DataFrame:
    """A step table (STEP_COLUMNS + `touch`): each item's first event in a session, and each deepening.

    Per (session, user, item): a *touch* step at its first event with that event's action, then a *deepening*
    step at each later event that takes the item deeper than before (view, then cart, then purchase; 1..4 =
    ACTIONS). Every step says only what was known at its time, so a prefix of the log at any moment is a
    prefix of the steps: no step tells of a purchase made after a later step (nor, by its absence, that a
    cart add never became one), and what serving reads from a live log is what training read. Next-item
    targets are touch steps (an item the user turns to next); deepenings are history and intent labels.
    A step's channel is its session's (the session's first event's), so a session that crosses channels is
    still one context. Rows come out in time order.
    """
    order = np.argsort(time, kind="stable")
    factorized = [pd.factorize(values, sort=True) for values in (session, user, item)]
    codes = [values_codes.astype(np.int64)[order] for values_codes, _ in factorized]
    session_user = pd.factorize(codes[0] * (codes[1].max() + 1) + codes[1])[0].astype(np.int64)
    group = pd.factorize(session_user * (codes[2].max() + 1) + codes[2])[0]  # numbered by first event
    first = _first_occurrences(group)
    sorted_depth = depth[order]
    # Every event that takes its item deeper than before in the session is a step: view, then cart, then buy.
    deepest_so_far = pd.Series(sorted_depth).groupby(group).cummax()
    before = deepest_so_far.groupby(group).shift(fill_value=0).to_numpy()
    rows = np.flatnonzero(sorted_depth > before)  # positions in time order; each group's first event included
    row_group = group[rows]
    if isinstance(channel, str):
        step_channel: pd.Categorical | str = channel
    else:
        channel_codes, channel_names = pd.factorize(channel, sort=True)
        session_channel = channel_codes[order][_first_occurrences(session_user)]
        step_channel = pd.Categorical.from_codes(session_channel[session_user[rows]], categories=channel_names)
    # Categoricals carry the factorised ids along, so `from_steps` does not hash millions of strings again.
    session_ids, user_ids, item_ids = (
        pd.Categorical.from_codes(code[rows], categories=names)
        for code, (_, names) in zip(codes, factorized, strict=True)
    )
    return pd.DataFrame(
        {
            "user_id": user_ids,
            "item_id": item_ids,
            "time": time[order][rows],
            "action": pd.Categorical.from_codes(sorted_depth[rows] - 1, categories=list(ACTIONS)),
            "channel": step_channel,
            "session_id": session_ids,
            "touch": first[row_group] == rows,
        }
    )


def _first_occurrences(codes: np.ndarray) -> np.ndarray:
    """Positions where each code first appears, for codes numbered in order of first appearance (factorize)."""
    is_first = np.ones(codes.size, dtype=bool)
    is_first[1:] = codes[1:] > np.maximum.accumulate(codes)[:-1]
    return np.flatnonzero(is_first)


def _existing(path: Path | str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise SequenceDataError(f"{path} does not exist or is not a file")
    return path


def _validated(
    path: Path,
    columns: tuple[str, ...],
    has_header: bool,
    convert: Callable[[pd.DataFrame, Rows], Converted],
) -> Converted:
    """A file through an importer's reader and converter; the first bad row (file:line: reason) is the error."""
    try:
        raw = read(path, columns, has_header)
    except ImportFormatError as exc:
        raise SequenceDataError(str(exc)) from exc
    rows = Rows(path.name, raw.lines)
    converted = convert(raw.frame, rows)
    bad = rows.bad_rows(raw.structural)
    if bad:
        more = f" ({len(bad)} bad rows in all)" if len(bad) > 1 else ""
        raise SequenceDataError(f"{bad[0]}{more}")
    return converted


def _taobao_categories(item: np.ndarray, category: np.ndarray, seconds: np.ndarray) -> pd.Series:
    """Item id (as the steps name it) -> category id as text; the latest row wins, as the importer decides."""
    order = np.argsort(seconds, kind="stable")
    return pd.Series(category[order].astype(str), index=item[order]).groupby(level=0).last()


_TAOBAO_DEPTH = {code: EVENT_DEPTH[event] for code, event in TAOBAO_EVENT_TYPES.items()}
_TAOBAO_TYPES = {
    "user_id": pa.int64(),
    "item_id": pa.int64(),
    "category_id": pa.int64(),
    "behavior_type": pa.string(),
    "timestamp": pa.int64(),
}


def _taobao_fast(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(user, item, category, depth, unix seconds) read by Arrow as typed columns; None if anything looks off."""
    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=list(TAOBAO_COLUMNS)),
            convert_options=pcsv.ConvertOptions(column_types=_TAOBAO_TYPES, include_columns=list(TAOBAO_COLUMNS)),
        )
    except (pa.ArrowInvalid, OSError):
        return None
    if table.num_rows == 0 or any(table.column(c).null_count for c in TAOBAO_COLUMNS):
        return None
    behavior = table.column("behavior_type")
    seconds = table.column("timestamp")
    known = pc.all(pc.is_in(behavior, value_set=pa.array(list(TAOBAO_EVENT_TYPES)))).as_py()
    in_range = pc.min(seconds).as_py() >= 0 and pc.max(seconds).as_py() <= _MAX_UNIX_SECONDS
    ids_ok = all(pc.min(table.column(c)).as_py() >= 0 for c in ("user_id", "item_id", "category_id"))
    if not (known and in_range and ids_ok):
        return None
    codes = pc.dictionary_encode(behavior).combine_chunks()
    depth_of_code = np.array([_TAOBAO_DEPTH[name] for name in codes.dictionary.to_pylist()], dtype=np.int8)
    return (
        table.column("user_id").to_numpy(),
        table.column("item_id").to_numpy(),
        table.column("category_id").to_numpy(),
        depth_of_code[codes.indices.to_numpy()],
        seconds.to_numpy(),
    )


def _taobao_validated(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The importer's row-by-row checks: they name the first bad line, or accept what Arrow would not (a header)."""
    converted = _validated(path, TAOBAO_COLUMNS, has_header=False, convert=convert_taobao)
    events, items = converted.events, converted.items
    if events.empty or items is None:
        raise SequenceDataError(f"{path.name} holds no Taobao behaviour rows")
    category = events["item_id"].map(items.set_index("item_id")["category_id"])
    return (
        pd.to_numeric(events["user_key"]).to_numpy(dtype=np.int64),
        pd.to_numeric(events["item_id"]).to_numpy(dtype=np.int64),
        pd.to_numeric(category).to_numpy(dtype=np.int64),
        events["event_type"].map(EVENT_DEPTH).to_numpy(dtype=np.int8),
        epoch_seconds(events["event_time"]),
    )


DATASET_FORMATS: dict[str, Callable[[Path | str], SequenceData]] = {
    "user-item": read_user_item_file,
    "taobao": from_taobao,
    "online-retail": from_online_retail,
}


def read_dataset(path: Path | str, fmt: str = "auto") -> SequenceData:
    """Sequences from a log file in one of DATASET_FORMATS; `auto` tells them apart by the first line."""
    if fmt != "auto" and fmt not in DATASET_FORMATS:
        raise SequenceDataError(f"unknown dataset format {fmt!r}; expected auto or one of {', '.join(DATASET_FORMATS)}")
    path = _existing(path)
    return DATASET_FORMATS[_sniff(path) if fmt == "auto" else fmt](path)


def _sniff(path: Path) -> str:
    """The format of a log from its first non-blank line: a retail header, a Taobao row, or `user item` pairs."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            first = next((line.strip() for line in handle if line.strip()), "")
    except OSError as exc:
        raise SequenceDataError(f"cannot read {path.name}: {exc}") from exc
    if "InvoiceNo" in first:
        return "online-retail"
    fields = first.split(",")
    if len(fields) == len(TAOBAO_COLUMNS) and fields[3] in TAOBAO_EVENT_TYPES:
        return "taobao"
    return "user-item"
