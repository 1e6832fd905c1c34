"""Importers against the real Taobao and UCI Online Retail samples, and against files broken on purpose.

The shared real samples are read-only: tests read them directly or copy slices into tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from siyu.data.importers import (
    AlreadyImported,
    BadRow,
    ImportFormatError,
    ImportRejected,
    ImportReport,
    import_file,
)
from siyu.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, PRICE_SCHEMA
from siyu.data.store import read_table, to_table, write_table_atomic
from siyu.settings import Settings
from tests.conftest import SHARED_DATA, require_shared_data

TAOBAO = SHARED_DATA / "taobao" / "UserBehavior_head.csv"
RETAIL = SHARED_DATA / "online_retail" / "online-retail.csv.gz"


@pytest.fixture(autouse=True)
def _samples_present() -> None:
    require_shared_data()


# ----------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@lru_cache(maxsize=1)
def _retail_head() -> tuple[str, ...]:
    """The first 400 physical lines of the real UCI file (line 1 is the header)."""
    with gzip.open(RETAIL, "rt", encoding="utf-8", newline="") as stream:
        return tuple(next(stream).rstrip("\r\n") for _ in range(400))


@lru_cache(maxsize=1)
def _taobao_head() -> tuple[str, ...]:
    with TAOBAO.open(encoding="utf-8") as stream:
        return tuple(next(stream).rstrip("\n") for _ in range(400))


def retail_lines(count: int) -> list[str]:
    return list(_retail_head()[:count])


def taobao_lines(start: int, stop: int) -> list[str]:
    return list(_taobao_head()[start:stop])


def write_lines(path: Path, lines: list[str], trailing_newline: bool = True) -> Path:
    text = "\n".join(lines) + ("\n" if trailing_newline else "")
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def replace_field(line: str, index: int, value: str) -> str:
    """Set one comma-separated field (only for lines whose earlier fields contain no quoted commas)."""
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def snapshot(directory: Path) -> dict[str, str]:
    """Content hash of every file under `directory`: a failed import must leave this unchanged."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def events_of(settings: Settings) -> pd.DataFrame:
    return read_table(settings.events_dir, EVENT_SCHEMA)


def format_error(path: Path, fmt: str, settings: Settings) -> str:
    with pytest.raises(ImportFormatError) as caught:
        import_file(path, fmt, settings)  # type: ignore[arg-type]
    return str(caught.value)


def rejected(path: Path, fmt: str, settings: Settings) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        import_file(path, fmt, settings)  # type: ignore[arg-type]
    return caught.value


# ----------------------------------------------------------------------------------------------- taobao


def test_taobao_sample_imports_every_line(settings: Settings) -> None:
    raw = pd.read_csv(TAOBAO, header=None, names=["user", "item", "category", "behavior", "ts"], dtype=str)
    report = import_file(TAOBAO, "taobao", settings)

    assert report.bad_rows == []
    assert report.rows_read == report.events_written == len(raw) == 84_475
    events = events_of(settings)
    assert len(events) == len(raw)
    mapping = {"pv": "view", "cart": "add_to_cart", "fav": "favourite", "buy": "purchase"}
    assert events["event_type"].value_counts().to_dict() == raw["behavior"].map(mapping).value_counts().to_dict()
    assert set(events["user_key_type"]) == {"account_id"} and set(events["channel"]) == {"app"}
    assert events["session_id"].str.startswith("tb-").all()
    assert (events["event_time"] == pd.to_datetime(raw["ts"].astype(int), unit="s", utc=True)).all()

    items = read_table(settings.items_path, ITEM_SCHEMA)
    assert report.items_upserted == len(items) == raw["item"].nunique()
    assert items["category_id"].notna().all() and (items["category_id"] != "unknown").all()
    first = raw.iloc[0]
    assert items.set_index("item_id").loc[first["item"], "category_id"] == first["category"]
    assert not settings.prices_path.exists()


def test_taobao_sessions_split_after_30_minutes_of_inactivity(tmp_path: Path, settings: Settings) -> None:
    t0 = 1_511_544_070
    lines = [
        f"1,10,100,pv,{t0}",
        f"2,10,100,pv,{t0 + 5}",
        f"1,11,100,cart,{t0 + 1800}",  # exactly 30 min later: same session
        f"1,12,100,buy,{t0 + 1800 + 1801}",  # more than 30 min of inactivity: new session
    ]
    import_file(write_lines(tmp_path / "tb.csv", lines), "taobao", settings)

    sessions = events_of(settings).sort_values("event_time")["session_id"].tolist()
    assert sessions == [f"tb-1-{t0}", f"tb-2-{t0 + 5}", f"tb-1-{t0}", f"tb-1-{t0 + 3601}"]


def test_taobao_bad_rows_are_located(tmp_path: Path, settings: Settings) -> None:
    lines = taobao_lines(0, 10)
    lines[2] = ",2268318,2520377,pv,1511544070"  # line 3: empty user id
    lines[4] = "1,2268318,2520377,click,1511544070"  # line 5: unknown behaviour
    lines[6] = "1,abc,2520377,pv,1511544070"  # line 7: non-integer item id
    lines[8] = "1,2268318,2520377,pv,2017-11-25"  # line 9: timestamp is not unix seconds
    error = rejected(write_lines(tmp_path / "tb.csv", lines), "taobao", settings)

    reasons = {bad.line: bad.reason for bad in error.report.bad_rows}
    assert sorted(reasons) == [3, 5, 7, 9]
    assert reasons[3] == "user_id is empty"
    assert reasons[5].startswith("behavior_type 'click' is not one of pv, cart, fav, buy")
    assert reasons[7] == "item_id 'abc' is not an integer"
    assert reasons[9] == "timestamp '2017-11-25' is not a number"


# ----------------------------------------------------------------------------------------------- online retail


@pytest.fixture(scope="module")
def retail_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportReport, Settings]:
    """The whole real file, once for the module (it takes a few seconds)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("retail") / "data")
    return import_file(RETAIL, "online-retail", settings), settings


def test_online_retail_full_file_imports_without_skip_bad(retail_import: tuple[ImportReport, Settings]) -> None:
    report, settings = retail_import
    events = events_of(settings)
    counts = events["event_type"].value_counts()

    assert report.bad_rows == []
    assert report.rows_read == 541_909
    assert counts["purchase"] + counts["refund"] + sum(report.ignored.values()) == report.rows_read
    assert report.events_written == len(events) == counts["purchase"] + counts["refund"]
    assert set(report.ignored) == {"non_merchandise_code", "stock_adjustment", "warehouse_zero_price"}
    assert report.seconds < 60


def test_online_retail_events_are_mapped(retail_import: tuple[ImportReport, Settings]) -> None:
    _, settings = retail_import
    events = events_of(settings)
    refunds = events[events["event_type"] == "refund"]
    guests = events[events["user_key_type"] == "guest"]
    members = events[events["user_key_type"] == "member_id"]

    assert len(refunds) > 0 and (refunds["quantity"] > 0).all()
    assert refunds["session_id"].str.startswith("C").all()
    assert len(guests) > 0 and (guests["user_key"] == guests["session_id"]).all()
    assert members["user_key"].str.fullmatch(r"\d+").all()
    assert "17850" in set(members["user_key"])
    assert set(events["channel"]) == {"web"} and events["store_id"].isna().all()
    assert not events["item_id"].str.upper().isin(["POST", "DOT", "M", "BANK CHARGES"]).any()
    assert events["event_time"].min() == pd.Timestamp("2010-12-01 08:26:00", tz="UTC")


def test_online_retail_items_and_prices(retail_import: tuple[ImportReport, Settings]) -> None:
    report, settings = retail_import
    items = read_table(settings.items_path, ITEM_SCHEMA).set_index("item_id")
    prices = read_table(settings.prices_path, PRICE_SCHEMA)

    assert report.items_upserted == len(items)
    assert items.loc["85123A", "title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert items.loc["85123A", "list_price"] == 2.95
    assert (items["category_id"] == "unknown").all()
    assert report.prices_upserted == len(prices) > 0
    assert (prices["price"] > 0).all() and not prices["on_promotion"].any()
    assert not prices.duplicated(["item_id", "date"]).any()


def test_online_retail_ignored_rows_are_counted_not_bad(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(12)
    lines[1] = replace_field(lines[1], 1, "post")  # postage, any case
    lines[2] = replace_field(lines[2], 1, "XY")  # short alphabetic code: a fee, not a product
    lines[3] = replace_field(lines[3], 3, "0")  # zero quantity
    lines[4] = replace_field(lines[4], 3, "-3")  # negative quantity on a sales invoice: stock adjustment
    lines[5] = replace_field(replace_field(lines[5], 5, "0"), 6, "")  # free, no customer: warehouse bookkeeping
    lines[6] = replace_field(lines[6], 5, "0")  # free item given to a customer: still a purchase
    lines[7] = replace_field(replace_field(lines[7], 0, "C536365"), 3, "-2")  # cancellation: refund of 2
    report = import_file(write_lines(tmp_path / "odd.csv", lines), "online-retail", settings)

    assert report.bad_rows == []
    assert report.ignored == {
        "non_merchandise_code": 2,
        "zero_quantity": 1,
        "stock_adjustment": 1,
        "warehouse_zero_price": 1,
    }
    events = events_of(settings)
    assert len(events) == report.events_written == 11 - 5
    refund = events[events["event_type"] == "refund"]
    assert refund[["user_key", "quantity", "session_id"]].values.tolist() == [["17850", 2, "C536365"]]
    assert events["unit_price"].eq(0).sum() == 1
    prices = read_table(settings.prices_path, PRICE_SCHEMA)
    assert (prices["price"] > 0).all()


def test_online_retail_accepts_the_original_us_date_format(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(3)
    lines[1:] = [replace_field(line, 4, "12/1/2010 8:26") for line in lines[1:]]
    import_file(write_lines(tmp_path / "us-dates.csv", lines), "online-retail", settings)

    assert set(events_of(settings)["event_time"]) == {pd.Timestamp("2010-12-01 08:26:00", tz="UTC")}


# ----------------------------------------------------------------------------------------------- broken files


@pytest.mark.parametrize("name", ["truncated.csv", "truncated.csv.gz"])
def test_truncated_last_line_is_a_bad_row(tmp_path: Path, settings: Settings, name: str) -> None:
    lines = [*retail_lines(51), "581587,22613,PACK OF 20 SPACE"]  # line 52 cut mid-description
    path = write_lines(tmp_path / name, lines, trailing_newline=False)
    error = rejected(path, "online-retail", settings)

    assert error.report.bad_rows == [BadRow(name, 52, "expected 8 fields, got 3 (truncated line or unquoted comma?)")]
    assert f"{name}:52: expected 8 fields, got 3" in str(error)
    assert "nothing was written; fix the rows or pass --skip-bad" in str(error)
    assert not settings.data_dir.exists()


def test_truncated_inside_a_quoted_field_is_a_bad_row(tmp_path: Path, settings: Settings) -> None:
    lines = [*retail_lines(20), '581587,22613,"PACK OF 20, SPACE']  # line 21: quote never closed
    error = rejected(write_lines(tmp_path / "open-quote.csv", lines, trailing_newline=False), "online-retail", settings)

    assert [(bad.line, bad.reason) for bad in error.report.bad_rows] == [
        (21, "malformed CSV record: unexpected end of data")
    ]
    assert error.report.rows_read == 20


def test_bad_timestamp_is_located(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(30)
    lines[16] = replace_field(lines[16], 4, "2010-13-01 08:26:00")  # physical line 17
    error = rejected(write_lines(tmp_path / "dates.csv", lines), "online-retail", settings)

    assert len(error.report.bad_rows) == 1
    expected = "dates.csv:17: InvoiceDate '2010-13-01 08:26:00' is not a date/time"
    assert str(error.report.bad_rows[0]).startswith(expected)
    assert "dates.csv:17: InvoiceDate" in str(error)


def test_nan_and_empty_ids_are_bad(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(30)
    lines[3] = replace_field(lines[3], 0, "nan")  # line 4: InvoiceNo 'nan'
    lines[5] = replace_field(lines[5], 1, "")  # line 6: StockCode empty
    lines[7] = replace_field(lines[7], 6, "NaN")  # line 8: CustomerID 'NaN' (a guest is a blank cell)
    lines[9] = replace_field(replace_field(lines[9], 0, "C536365"), 3, "6")  # line 10: cancellation, positive qty
    lines[11] = replace_field(lines[11], 3, "six")  # line 12: Quantity not a number
    error = rejected(write_lines(tmp_path / "ids.csv", lines), "online-retail", settings)

    assert [str(bad) for bad in error.report.bad_rows] == [
        "ids.csv:4: InvoiceNo is 'nan' (a missing-value placeholder, not an id)",
        "ids.csv:6: StockCode is empty",
        "ids.csv:8: CustomerID 'NaN' is not an integer (leave it blank for guests)",
        "ids.csv:10: cancellation invoice (C...) with positive Quantity '6'",
        "ids.csv:12: Quantity 'six' is not a number",
    ]


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        ("", "online-retail", "empty.csv is empty (expected a header row: InvoiceNo, StockCode"),
        ("\n\n", "events", "empty.csv is empty (expected a header row: event_time"),
        ("", "taobao", "empty.csv is empty"),
        (
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n",
            "online-retail",
            "empty.csv has no data rows (only a header)",
        ),
    ],
)
def test_empty_file_is_a_clear_error(tmp_path: Path, settings: Settings, content: str, fmt: str, message: str) -> None:
    path = tmp_path / "empty.csv"
    path.write_text(content)
    assert message in format_error(path, fmt, settings)


def test_wrong_columns_name_the_missing_one(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(5)
    lines[0] = lines[0].replace("InvoiceDate", "Date")
    message = format_error(write_lines(tmp_path / "online-retail.csv", lines), "online-retail", settings)

    assert message.startswith("column `InvoiceDate` missing in online-retail.csv (expected InvoiceNo, StockCode, ")


def test_events_without_quantity_column_is_refused(tmp_path: Path, settings: Settings) -> None:
    header = ",".join(name for name in EVENT_SCHEMA.names if name != "quantity")
    path = write_lines(tmp_path / "events.csv", [header])
    assert "column `quantity` missing in events.csv" in format_error(path, "events", settings)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_gzip_is_a_file_error(tmp_path: Path, settings: Settings, damage: str) -> None:
    path = tmp_path / "broken.csv.gz"
    data = RETAIL.read_bytes()[:200_000] if damage == "truncate" else b"this is not gzip at all\n" * 10
    path.write_bytes(data)

    assert "broken.csv.gz is a corrupt or truncated gzip file" in format_error(path, "online-retail", settings)
    assert not settings.data_dir.exists()


def test_corrupt_parquet_and_missing_file(tmp_path: Path, settings: Settings) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 definitely not parquet")

    assert "broken.parquet is not a readable Parquet file" in format_error(broken, "events", settings)
    assert "does not exist" in format_error(tmp_path / "nope.csv", "events", settings)


# ----------------------------------------------------------------------------------------------- all-or-nothing


def test_rejected_import_leaves_data_dir_byte_identical(tmp_path: Path, settings: Settings) -> None:
    first = import_file(write_lines(tmp_path / "good.csv", retail_lines(100)), "online-retail", settings)
    before = snapshot(settings.data_dir)
    lines = [retail_lines(1)[0], *retail_lines(400)[100:300]]
    lines[50] = replace_field(lines[50], 5, "abc")  # physical line 51
    second = write_lines(tmp_path / "second.csv", lines)

    error = rejected(second, "online-retail", settings)
    assert "second.csv: 1 bad row(s) out of 200; nothing was written; fix the rows or pass --skip-bad" in str(error)
    assert "second.csv:51: UnitPrice 'abc' is not a number" in str(error)
    assert snapshot(settings.data_dir) == before

    report = import_file(second, "online-retail", settings, skip_bad=True)
    assert report.bad_rows == [BadRow("second.csv", 51, "UnitPrice 'abc' is not a number")]
    assert report.events_written == 199 - sum(report.ignored.values())
    assert len(events_of(settings)) == first.events_written + report.events_written
    assert snapshot(settings.data_dir) != before


def test_rejection_message_lists_the_first_ten(tmp_path: Path, settings: Settings) -> None:
    lines = taobao_lines(0, 30)
    lines[:12] = [replace_field(line, 3, "bogus") for line in lines[:12]]
    error = rejected(write_lines(tmp_path / "tb.csv", lines), "taobao", settings)

    assert len(error.report.bad_rows) == 12
    assert "tb.csv:10: " in str(error) and "tb.csv:11: " not in str(error)
    assert "... and 2 more" in str(error)


def test_reimporting_the_same_content_is_refused(tmp_path: Path, settings: Settings) -> None:
    first = write_lines(tmp_path / "tb.csv", taobao_lines(0, 200))
    import_file(first, "taobao", settings)
    copy = shutil.copy(first, tmp_path / "renamed.csv")
    before = snapshot(settings.data_dir)

    with pytest.raises(AlreadyImported, match=r"already imported on .* from .*tb\.csv as taobao"):
        import_file(Path(copy), "taobao", settings)
    assert len(events_of(settings)) == 200
    assert snapshot(settings.data_dir) == before


def test_upserts_keep_known_fields_and_replace_prices_by_day(tmp_path: Path, settings: Settings) -> None:
    known = pd.DataFrame(
        {"item_id": ["85123A"], "category_id": ["decor"], "brand_id": ["b1"], "title": ["old"], "list_price": [1.0]}
    ).assign(cost=0.5)
    write_table_atomic(to_table(known, ITEM_SCHEMA), settings.items_path)
    import_file(write_lines(tmp_path / "a.csv", retail_lines(120)), "online-retail", settings)
    overlapping = write_lines(tmp_path / "b.csv", [retail_lines(1)[0], *retail_lines(300)[60:300]])
    import_file(overlapping, "online-retail", settings)

    item = read_table(settings.items_path, ITEM_SCHEMA).set_index("item_id").loc["85123A"]
    assert (item["category_id"], item["brand_id"], item["cost"]) == ("decor", "b1", 0.5)
    assert item["title"] == "WHITE HANGING HEART T-LIGHT HOLDER" and item["list_price"] == 2.55
    prices = read_table(settings.prices_path, PRICE_SCHEMA)
    assert len(prices) > 0 and not prices.duplicated(["item_id", "date"]).any()


# ----------------------------------------------------------------------------------------------- events format


# What _our_events' times mean: +08:00 converted, the naive one taken as UTC, Z kept.
EXPECTED_TIMES = [pd.Timestamp(f"2024-03-01 02:{minute}:00", tz="UTC") for minute in ("00", "05", "10")]


def _our_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_time": ["2024-03-01T10:00:00+08:00", "2024-03-01 02:05:00", "2024-03-01T02:10:00Z"],
            "user_key": ["m1", "o1", "m1"],
            "user_key_type": ["member_id", "openid", "member_id"],
            "item_id": ["sku-1", "", "sku-2"],
            "event_type": ["purchase", "search", "view"],
            "channel": ["pos", "mini_program", "app"],
            "store_id": ["s1", "", ""],
            "quantity": [2, 1, 1],
            "unit_price": ["19.9", "", "5"],
            "session_id": ["x1", "x2", "x3"],
        }
    )


def _assert_round_trip(settings: Settings) -> None:
    back = events_of(settings)
    assert back["event_time"].tolist() == EXPECTED_TIMES
    assert back["item_id"].tolist() == ["sku-1", None, "sku-2"]
    assert back["store_id"].tolist() == ["s1", None, None]
    assert back["quantity"].tolist() == [2, 1, 1]
    assert back["unit_price"].tolist()[0] == 19.9 and pd.isna(back["unit_price"].iloc[1])
    assert back["user_key_type"].tolist() == ["member_id", "openid", "member_id"]
    assert not settings.items_path.exists() and not settings.prices_path.exists()


def test_events_csv_round_trip(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "ours.csv"
    _our_events().to_csv(path, index=False)
    report = import_file(path, "events", settings)

    assert report.events_written == 3 and report.items_upserted == 0
    _assert_round_trip(settings)


def test_events_parquet_round_trip(tmp_path: Path, settings: Settings) -> None:
    frame = _our_events()
    frame["event_time"] = EXPECTED_TIMES
    frame[["item_id", "store_id"]] = frame[["item_id", "store_id"]].replace("", None)
    frame["unit_price"] = pd.to_numeric(frame["unit_price"])
    path = tmp_path / "ours.parquet"
    pq.write_table(to_table(frame, EVENT_SCHEMA), path)

    assert import_file(path, "events", settings).events_written == 3
    _assert_round_trip(settings)


def test_events_bad_values_are_located(tmp_path: Path, settings: Settings) -> None:
    frame = pd.concat([_our_events()] * 3, ignore_index=True)
    frame.loc[1, "event_type"] = "click"  # line 3
    frame.loc[3, "quantity"] = -1  # line 5
    frame.loc[4, "event_time"] = "yesterday"  # line 6
    frame.loc[6, "item_id"] = ""  # line 8: a purchase needs an item
    frame.loc[7, "channel"] = "tv"  # line 9
    frame.loc[8, "session_id"] = "nan"  # line 10
    path = tmp_path / "ours.csv"
    frame.to_csv(path, index=False)
    error = rejected(path, "events", settings)

    reasons = {bad.line: bad.reason for bad in error.report.bad_rows}
    assert sorted(reasons) == [3, 5, 6, 8, 9, 10]
    assert reasons[3].startswith("event_type 'click' is not one of view, search")
    assert reasons[5] == "quantity '-1' is out of range [0, 2147483647]"
    assert reasons[6].startswith("event_time 'yesterday' is not a date/time")
    assert reasons[8] == "item_id is empty (required unless event_type is search/store_visit)"
    assert reasons[9].startswith("channel 'tv' is not one of")
    assert reasons[10] == "session_id is 'nan' (a missing-value placeholder, not an id)"
    assert not settings.data_dir.exists()


@pytest.mark.parametrize(
    ("fields", "missing"), [(4, "column `timestamp`"), (3, "columns `behavior_type`, `timestamp`")]
)
def test_headerless_file_with_too_few_fields_names_the_missing_columns(
    tmp_path: Path, settings: Settings, fields: int, missing: str
) -> None:
    lines = [",".join(line.split(",")[:fields]) for line in taobao_lines(0, 5)]
    message = format_error(write_lines(tmp_path / "short.csv", lines), "taobao", settings)

    assert message.startswith(f"{missing} missing in short.csv")
    assert f"first row has {fields} fields" in message
    assert not settings.events_dir.exists() or not any(settings.events_dir.iterdir())


def test_a_file_whose_every_record_is_malformed_is_rejected_row_by_row(tmp_path: Path, settings: Settings) -> None:
    lines = retail_lines(4)
    lines[1:] = [",".join(line.split(",")[:3]) for line in lines[1:]]
    error = rejected(write_lines(tmp_path / "cut.csv", lines), "online-retail", settings)

    assert [bad.line for bad in error.report.bad_rows] == [2, 3, 4]
    assert "expected 8 fields, got 3" in str(error)
