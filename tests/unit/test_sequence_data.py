"""Sequences, splits and the converters that build them from our log, Taobao, UCI Online Retail and `user item` files.

The shared real samples are read-only: converter tests write small slices of them into tmp_path.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from siyu.data.schema import EVENT_SCHEMA, IDENTITY_MAP_SCHEMA
from siyu.data.store import to_table, write_table_atomic
from siyu.settings import Settings
from tests.conftest import SHARED_DATA, require_shared_data
from training.sequence.batches import TrainWindows
from training.sequence.data import (
    ACTIONS,
    GAP_TOKENS,
    SequenceData,
    SequenceDataError,
    from_steps,
    history_positions,
    leave_last_out,
    split_by_time,
)
from training.sequence.sources import (
    from_events,
    from_online_retail,
    from_taobao,
    read_user_item_file,
    sessions_by_gap,
)

TAOBAO = SHARED_DATA / "taobao" / "UserBehavior_head.csv"
RETAIL = SHARED_DATA / "online_retail" / "online-retail.csv.gz"
T0 = 1_700_000_000


def steps(rows: list[tuple]) -> pd.DataFrame:
    """(user, item, time, action, session) rows as a step table on one channel."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "time", "action", "session_id"])
    return frame.assign(channel="app")


# ---------------------------------------------------------------------------------------------- from_steps


def test_from_steps_orders_by_user_then_time_keeping_the_frame_order_of_ties() -> None:
    data = from_steps(
        steps(
            [
                ("u2", "b", T0 + 50, "view", "s2"),
                ("u1", "c", T0 + 10, "view", "s1"),
                ("u1", "a", T0, "view", "s1"),
                ("u1", "b", T0 + 10, "purchase", "s1"),  # same second as c, after it in the frame
            ]
        )
    )
    assert list(data.user_ids) == ["u1", "u2"]
    assert list(data.offsets) == [0, 3, 4]
    assert list(data.item_vocab[data.item - 1]) == ["a", "c", "b", "b"]
    assert list(data.action) == [1, 1, 4, 1]
    assert list(data.time) == [T0, T0 + 10, T0 + 10, T0 + 50]


def test_gap_tokens_bucket_the_time_since_the_users_previous_step() -> None:
    gaps = [0, 30, 100, 4_000, 2 * 86_400, 40 * 86_400]
    times = T0 + np.cumsum(gaps)
    data = from_steps(steps([("u", f"i{k}", int(t), "view", f"s{k}") for k, t in enumerate(times)]))
    # first step = 1; < 60 s = 2; 60..600 = 3; 3600..6h = 5; 1..3 days = 7; >= 30 days = 10
    assert list(data.gap) == [1, 2, 3, 5, 7, 10]
    assert data.gap.max() < GAP_TOKENS, "every gap token must index the model's gap embedding"


def test_intent_label_marks_steps_followed_by_a_purchase_in_the_same_session_only() -> None:
    data = from_steps(
        steps(
            [
                ("u1", "a", T0, "view", "s1"),
                ("u1", "b", T0 + 1, "add_to_cart", "s1"),
                ("u1", "c", T0 + 2, "purchase", "s1"),
                ("u1", "d", T0 + 3, "view", "s1"),
                ("u1", "e", T0 + 100, "view", "s2"),
                # Another user reusing the session id "s1" is a different session.
                ("u2", "a", T0, "view", "s1"),
                ("u2", "b", T0 + 1, "view", "s1"),
            ]
        )
    )
    assert list(data.purchase_follows) == [True, True, False, False, False, False, False]


def test_from_steps_accepts_timestamps_and_rejects_bad_tables() -> None:
    frame = steps([("u", "a", T0, "view", "s"), ("u", "b", T0 + 5, "view", "s")])
    stamped = frame.assign(time=pd.to_datetime(frame["time"], unit="s", utc=True))
    assert list(from_steps(stamped).time) == [T0, T0 + 5]
    with pytest.raises(SequenceDataError, match="column"):
        from_steps(frame.drop(columns="channel"))
    with pytest.raises(SequenceDataError, match="no interaction steps"):
        from_steps(frame.iloc[:0])
    with pytest.raises(SequenceDataError, match="unknown action"):
        from_steps(frame.assign(action="refund"))
    with pytest.raises(SequenceDataError, match="missing values"):
        from_steps(frame.assign(item_id=[None, "b"]))


def test_history_positions_gather_each_questions_prefix() -> None:
    data = from_steps(steps([("u1", f"i{k}", T0 + k, "view", "s") for k in range(4)] + [("u2", "x", T0, "view", "t")]))
    positions, indptr = history_positions(data, np.array([1, 0, 0]), np.array([1, 2, 0]))
    assert list(indptr) == [0, 1, 3, 3]
    assert list(positions) == [4, 0, 1]
    with pytest.raises(SequenceDataError, match="cut"):
        history_positions(data, np.array([1]), np.array([2]))


# -------------------------------------------------------------------------------------------------- splits


def _walks(lengths: dict[str, int], step_seconds: int = 3_600) -> pd.DataFrame:
    rows = [
        (user, f"i{(k * 7 + n) % 11}", T0 + k * step_seconds + n, "view", f"{user}-{k}")
        for n, (user, length) in enumerate(lengths.items())
        for k in range(length)
    ]
    return steps(rows)


def test_leave_last_out_holds_out_the_last_two_steps_of_users_with_three_or_more() -> None:
    data = from_steps(_walks({"a": 5, "b": 2, "c": 3}))
    split = leave_last_out(data)
    assert list(split.train.lengths) == [3, 2, 1]
    assert list(split.valid.users) == [0, 2] and list(split.valid.cut) == [3, 1]
    assert list(split.test.users) == [0, 2] and list(split.test.cut) == [4, 2]
    starts = data.offsets[split.test.users]
    assert list(split.test.target) == list(data.item[starts + split.test.cut])
    assert list(split.valid.target) == list(data.item[starts + split.valid.cut])
    # Training never holds a validation or test target's step.
    assert split.train.n_steps == data.n_steps - 4
    assert split.kind == "leave-last-out"


def _touch_and_deepen() -> SequenceData:
    frame = steps(
        [
            ("a", "v", T0 - 10, "view", "s1"),
            ("a", "x", T0, "view", "s1"),
            ("a", "y", T0 + 10, "view", "s1"),
            ("a", "x", T0 + 20, "purchase", "s1"),  # x deepens: history, never a target
            ("a", "z", T0 + 30, "view", "s1"),
            ("a", "w", T0 + 40, "view", "s1"),
            ("a", "w", T0 + 50, "add_to_cart", "s1"),  # the user's last step is a deepening
        ]
    ).assign(touch=[True, True, True, False, True, True, False])
    return from_steps(frame)


def test_targets_are_touches_and_histories_keep_the_deepenings_before_them() -> None:
    data = _touch_and_deepen()
    split = leave_last_out(data)
    assert list(split.test.cut) == [5] and data.item_vocab[split.test.target[0] - 1] == "w"
    assert list(split.valid.cut) == [4] and data.item_vocab[split.valid.target[0] - 1] == "z"
    # The test history holds x's purchase (it came before w); training stops before the validation target.
    assert list(split.train.item_vocab[split.train.item - 1]) == ["v", "x", "y", "x"]
    late = split_by_time(data, pd.Timestamp(T0 + 15, unit="s", tz="UTC"))
    assert list(late.test.cut) == [4]  # the first touch after the cutoff is z, not x's purchase


def test_one_user_is_that_users_newest_steps_alone() -> None:
    data = from_steps(_walks({"a": 5, "b": 4}))
    whole, newest = data.one_user(1), data.one_user(1, last=2)
    assert list(whole.user_ids) == ["b"] and list(whole.lengths) == [4]
    assert list(whole.item) == list(data.item[data.steps_of(1)])
    assert list(newest.item) == list(data.item[data.steps_of(1)][-2:]) and newest.item_vocab is data.item_vocab
    assert list(data.one_user(0, last=50).time) == list(data.time[data.steps_of(0)])


def test_training_never_targets_a_deepening() -> None:
    data = _touch_and_deepen()
    batch = next(TrainWindows(data, max_len=10).batches(4, np.random.default_rng(0)))
    names = ["-" if t == 0 else data.item_vocab[t - 1] for t in batch.target[0].tolist()]
    assert names == ["x", "y", "-", "z", "w", "-"]  # inputs v x y x(bought) z w; w's cart add is not a target
    assert batch.intent[0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # x's purchase is still ahead of them


def test_earlier_windows_make_every_step_of_a_long_history_a_target_once() -> None:
    data = from_steps(_walks({"a": 25, "b": 4, "c": 1}))
    for per_user, targeted in ((1, 10 + 3), (2, 20 + 3), (9, 24 + 3), (None, 24 + 3)):
        windows = TrainWindows(data, max_len=10, per_user=per_user)
        targets = windows.index[:, 1:][windows.index[:, :-1] != windows.tokens.sentinel]  # steps after an input
        assert targets.size == len(set(targets.tolist())) == targeted  # no step is a target twice
        newest = {u: windows.index[np.flatnonzero(windows.users == u)[0], -1] for u in (0, 1)}
        assert newest == {0: data.offsets[1] - 1, 1: data.offsets[2] - 1}  # the newest window comes first
    assert data.offsets[0] not in targets and 2 not in windows.users  # a first step is no target; one-step users


def test_leave_last_out_with_too_short_histories_says_so() -> None:
    with pytest.raises(SequenceDataError, match="3 or more steps"):
        leave_last_out(from_steps(_walks({"a": 2, "b": 1})))


def test_split_by_time_never_trains_on_a_step_at_or_after_the_cutoff() -> None:
    data = from_steps(_walks({"a": 10, "b": 4, "c": 12, "d": 2}, step_seconds=86_400))
    cutoff = pd.Timestamp(T0 + 5 * 86_400 + 10, unit="s", tz="UTC")
    split = split_by_time(data, cutoff)
    cut_s = int(cutoff.timestamp())
    assert split.train.time.max() < cut_s
    # Test: the first step at or after the cutoff of each user who has steps on both sides.
    assert list(split.test.users) == [0, 2]
    test_time = data.time[data.offsets[split.test.users] + split.test.cut]
    before_time = data.time[data.offsets[split.test.users] + split.test.cut - 1]
    assert np.all(test_time >= cut_s) and np.all(before_time < cut_s)
    # Validation lives inside the training window, its targets not in `train`.
    valid_time = data.time[data.offsets[split.valid.users] + split.valid.cut]
    assert np.all(valid_time < cut_s)
    assert np.all(split.train.lengths[split.valid.users] == split.valid.cut)
    assert split.kind == "time"
    with pytest.raises(SequenceDataError, match="both before and after"):
        split_by_time(data, pd.Timestamp(T0 - 10, unit="s", tz="UTC"))


# --------------------------------------------------------------------------------------------- our events


def _write_events(settings: Settings, rows: list[tuple], identity: list[tuple] = ()) -> None:
    columns = ["event_time", "user_key", "user_key_type", "item_id", "event_type", "channel", "session_id"]
    events = pd.DataFrame(rows, columns=columns)
    events["event_time"] = pd.to_datetime(events["event_time"], unit="s", utc=True)
    events = events.assign(store_id=None, quantity=1, unit_price=9.9)
    write_table_atomic(to_table(events, EVENT_SCHEMA), settings.events_dir / "part-1.parquet")
    links = pd.DataFrame(list(identity), columns=["user_key_type", "user_key", "user_id"])
    write_table_atomic(to_table(links, IDENTITY_MAP_SCHEMA), settings.identity_map_path)


def test_from_events_steps_are_touches_and_deepenings_each_known_at_its_time(settings: Settings) -> None:
    _write_events(
        settings,
        [
            (T0, "m1", "member_id", "a", "view", "mini_program", "s1"),
            (T0 + 5, "m1", "member_id", None, "search", "mini_program", "s1"),
            (T0 + 10, "m1", "member_id", "a", "coupon_claim", "app", "s1"),
            (T0 + 20, "m1", "member_id", "b", "view", "app", "s1"),
            (T0 + 30, "m1", "member_id", "a", "purchase", "app", "s1"),
            (T0 + 40, "m1", "member_id", "b", "refund", "app", "s1"),
            (T0 + 50, "m1", "member_id", "c", "favourite", "app", "s1"),
            (T0 + 3_600, "o9", "openid", "b", "add_to_cart", "pos", "s2"),  # o9 is the same person as m1
            (T0 + 3_700, "o9", "openid", None, "store_visit", "pos", "s2"),
            (T0 + 100, "d7", "device_id", "a", "coupon_claim", "app", "s3"),  # unknown to the map: own user
        ],
        identity=[("member_id", "m1", "U1"), ("openid", "o9", "U1")],
    )
    data = from_events(settings)
    assert data.n_users == 2 and data.n_steps == 7
    person = list(data.user_ids).index("U1")
    mine = data.steps_of(person)
    # a is touched (viewed), then deepens twice: the coupon claim (as deep as a cart add) and, after b's view,
    # the purchase; each deepening is its own step at its own time, so no step tells of anything later.
    assert list(data.item_vocab[data.item[mine] - 1]) == ["a", "a", "b", "a", "c", "b"]
    assert [ACTIONS[a - 1] for a in data.action[mine]] == [
        "view",
        "add_to_cart",
        "view",
        "purchase",
        "favourite",
        "add_to_cart",
    ]
    assert list(data.time[mine]) == [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 50, T0 + 3_600]
    assert list(data.is_touch[mine]) == [True, False, True, False, True, True]
    # The intent label: a purchase comes later in the same session.
    assert list(data.purchase_follows[mine]) == [True, True, True, False, False, False]
    # A step's channel is its session's (the session's first event's).
    assert [data.channel_vocab[c - 1] for c in data.channel[mine]] == ["mini_program"] * 5 + ["pos"]
    other = data.steps_of(1 - person)
    assert [ACTIONS[a - 1] for a in data.action[other]] == ["add_to_cart"]


def test_from_events_on_an_empty_store_says_what_to_do(settings: Settings) -> None:
    with pytest.raises(SequenceDataError, match="generate a world or import"):
        from_events(settings)


# ------------------------------------------------------------------------------------------------- Taobao


def test_taobao_sessions_cut_at_thirty_idle_minutes_and_deepenings_are_steps(tmp_path: Path) -> None:
    lines = [
        f"7,100,1,pv,{T0}",
        f"7,100,1,cart,{T0 + 60}",
        f"7,101,1,pv,{T0 + 60 + 1_799}",  # 29:59 later: same session
        f"7,100,1,buy,{T0 + 60 + 1_799 + 1_800}",  # 30:00 later: a new session, so a new step
        f"8,101,1,fav,{T0 + 5}",
        f"8,101,1,pv,{T0 + 6}",
    ]
    path = tmp_path / "tb.csv"
    path.write_text("\n".join(lines) + "\n")
    data = from_taobao(path)
    assert list(data.user_ids) == [7, 8]
    assert list(data.item_vocab[data.item - 1]) == [100, 100, 101, 100, 101]
    assert [ACTIONS[a - 1] for a in data.action] == ["view", "add_to_cart", "view", "purchase", "favourite"]
    assert list(data.is_touch) == [True, False, True, True, True]  # user 8's later view is not deeper
    assert data.channel_vocab == ("app",)
    assert list(data.purchase_follows) == [False, False, False, False, False]
    assert list(sessions_by_gap(np.array([7, 7, 7]), np.array([0, 1_799, 3_599]), 1_800)) == [1, 1, 2]


def test_taobao_slice_of_the_real_sample_matches_a_pandas_count(tmp_path: Path) -> None:
    require_shared_data()
    path = tmp_path / "head.csv"
    path.write_bytes(b"".join(TAOBAO.open("rb").readlines()[:3_000]))
    raw = pd.read_csv(path, header=None, names=["user", "item", "cat", "behavior", "ts"])
    data = from_taobao(path)
    raw = raw.sort_values(["user", "ts"], kind="stable")
    new = raw["user"].ne(raw["user"].shift()) | raw["ts"].diff().ge(1_800)
    raw["session"] = new.cumsum()
    raw["depth"] = raw["behavior"].map({"pv": 1, "fav": 2, "cart": 3, "buy": 4})
    deepest_so_far = raw.groupby(["session", "item"])["depth"].cummax()
    before = deepest_so_far.groupby([raw["session"], raw["item"]]).shift(fill_value=0)
    assert data.is_touch.sum() == raw.drop_duplicates(["session", "item"]).shape[0]
    assert data.n_steps == (raw["depth"] > before).sum()
    assert data.n_users == raw["user"].nunique()
    # Each item's category as the log gives it (the latest row wins).
    latest = raw.sort_values("ts", kind="stable").drop_duplicates("item", keep="last").set_index("item")["cat"]
    named = np.array(data.category_vocab, dtype=object)[data.item_category[1:] - 1]
    assert (named == latest.reindex(data.item_vocab.astype(int)).astype(str).to_numpy()).all()
    assert np.all(np.diff(data.time)[np.diff(np.repeat(np.arange(data.n_users), data.lengths)) == 0] >= 0)


def test_taobao_bad_rows_and_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"1,2,3,pv,{T0}\n1,x2,3,pv,{T0}\n")
    with pytest.raises(SequenceDataError, match=r"bad\.csv:2: item_id 'x2' is not an integer"):
        from_taobao(bad)
    kind = tmp_path / "kind.csv"
    kind.write_text(f"1,2,3,pv,{T0}\n1,2,3,like,{T0}\n")
    with pytest.raises(SequenceDataError, match=r"kind\.csv:2:.*behavior_type"):
        from_taobao(kind)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SequenceDataError, match="empty"):
        from_taobao(empty)
    with pytest.raises(SequenceDataError, match="does not exist"):
        from_taobao(tmp_path / "missing.csv")
    header = tmp_path / "header.csv"
    header.write_text(f"user_id,item_id,category_id,behavior_type,timestamp\n1,2,3,buy,{T0}\n")
    assert from_taobao(header).n_steps == 1


# ---------------------------------------------------------------------------------------- UCI Online Retail

RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_online_retail_purchases_by_customer_one_step_per_invoice_item(tmp_path: Path) -> None:
    path = tmp_path / "retail.csv"
    path.write_text(
        RETAIL_HEADER
        + "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
        + "536365,71053,LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n"
        + "536365,85123A,HEART,2,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"  # same item again
        + "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,United Kingdom\n"  # guest
        + "C536379,71053,LANTERN,-1,2010-12-01 09:41:00,3.39,17850.0,United Kingdom\n"  # cancellation
        + "536380,POST,POSTAGE,1,2010-12-01 09:45:00,18.0,17850.0,United Kingdom\n"  # not merchandise
        + "536381,22633,HAND WARMER,1,2010-12-02 10:00:00,1.85,17850.0,United Kingdom\n"
        + "536382,71053,LANTERN,1,2010-12-02 11:00:00,3.39,12583.0,France\n"
    )
    data = from_online_retail(path)
    assert list(data.user_ids) == ["12583", "17850"]
    assert list(data.item_vocab[data.item - 1]) == ["71053", "85123A", "71053", "22633"]
    assert set(data.action) == {ACTIONS.index("purchase") + 1}
    assert data.channel_vocab == ("web",)


def test_online_retail_slice_of_the_real_file(tmp_path: Path) -> None:
    require_shared_data()
    with gzip.open(RETAIL, "rt", encoding="utf-8") as stream:
        head = [next(stream) for _ in range(3_001)]
    path = tmp_path / "head.csv"
    path.write_text("".join(head))
    data = from_online_retail(path)
    raw = pd.read_csv(path, dtype=str)
    kept = raw[raw["CustomerID"].notna() & ~raw["InvoiceNo"].str.startswith("C") & raw["StockCode"].ne("POST")]
    assert data.n_users == kept["CustomerID"].nunique()
    assert data.n_steps <= kept.drop_duplicates(["InvoiceNo", "StockCode"]).shape[0]
    assert data.n_steps > 0.95 * kept.drop_duplicates(["InvoiceNo", "StockCode"]).shape[0]


def test_online_retail_problems_are_named(tmp_path: Path) -> None:
    path = tmp_path / "retail.csv"
    path.write_text(RETAIL_HEADER + "536365,85123A,HEART,six,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n")
    with pytest.raises(SequenceDataError, match=r"retail\.csv:2: Quantity"):
        from_online_retail(path)
    path.write_text("InvoiceNo,StockCode\n1,2\n")
    with pytest.raises(SequenceDataError, match="missing"):
        from_online_retail(path)
    path.write_text(RETAIL_HEADER + "536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,United Kingdom\n")
    with pytest.raises(SequenceDataError, match="no purchases by identified customers"):
        from_online_retail(path)


# ------------------------------------------------------------------------------------------- user item files


def test_user_item_file_keeps_line_order_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10\n1 11\n\n2 10\n  \n1 12\n2\t13\r\n1 10\n")
    data = read_user_item_file(path)
    assert list(data.user_ids) == [1, 2]
    assert list(data.item_vocab[data.item - 1]) == [10, 11, 12, 10, 10, 13]
    assert list(data.lengths) == [4, 2]
    assert not data.has_actions
    assert set(data.action) == {1}
    split = leave_last_out(data)
    assert list(split.test.users) == [0]


def test_user_item_file_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10\n\n1 abc\n")
    with pytest.raises(SequenceDataError, match=r"line 3: user and item must be integers, got '1 abc'"):
        read_user_item_file(path)
    path.write_text("1 10\n1 10 5\n")
    with pytest.raises(SequenceDataError, match="line 2: expected `user item`"):
        read_user_item_file(path)
    path.write_text("\n \n")
    with pytest.raises(SequenceDataError, match="empty"):
        read_user_item_file(path)


def test_user_item_file_with_one_user(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("5 1\n5 2\n")
    data = read_user_item_file(path)
    assert data.n_users == 1 and data.n_steps == 2
    with pytest.raises(SequenceDataError, match="no user has 3 or more steps"):
        leave_last_out(data)
