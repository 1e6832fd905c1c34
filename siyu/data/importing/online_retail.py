"""Import format `online-retail`: UCI Online Retail invoice lines, with its rules for what is merchandise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from siyu.data.importing.converted import Converted, event_frame
from siyu.data.importing.validation import INT32_MAX, Rows, integer, number, text, timestamp

RETAIL_COLUMNS: tuple[str, ...] = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
# The file ships as "2010-12-01 08:26:00"; the original spreadsheet export reads "12/1/2010 8:26".
RETAIL_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")
# Codes that are fees, postage, discounts, manual corrections, samples, bank charges, charity, not products.
NON_MERCHANDISE_CODES = frozenset(
    {"POST", "D", "M", "C2", "DOT", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B"}
)


def convert_online_retail(frame: pd.DataFrame, rows: Rows) -> Converted:
    """One event per invoice line: purchases and cancellations ("C" invoices) of merchandise.

    Bad (a data error, rejects the file):
      * wrong field count / malformed CSV (reader); empty or 'nan' InvoiceNo / StockCode;
      * InvoiceDate not in a known format; Quantity not an integer; UnitPrice not a number;
      * CustomerID present but not an integer ("17850.0" is fine; 'nan' is an export artefact: blank means guest);
      * negative UnitPrice on merchandise (only bad-debt adjustments, code B, may be negative);
      * a "C" (cancellation) invoice with positive Quantity: the sign contradicts the invoice.
    Ignored (well formed, deliberately not customer merchandise events), checked in this order:
      * non_merchandise_code: POST, DOT, M, C2, D, S, B, ... and any purely alphabetic code of <= 2 letters;
        includes the three "A" invoices (bad-debt adjustments, code B, UnitPrice -11062.06);
      * zero_quantity;
      * stock_adjustment: negative Quantity on a non-"C" invoice (damaged / lost / found stock, always
        UnitPrice 0 and no customer in the real file);
      * warehouse_zero_price: positive Quantity at UnitPrice 0 with no CustomerID: bookkeeping lines
        ("check", "found", "adjustment", blank description), not sales. Zero-price lines *with* a customer
        are free items given to that customer and stay purchases.
    InvoiceDate carries no zone (it is UK local time); it is stored as UTC, as the events schema requires.
    """
    invoice = text(rows, frame["InvoiceNo"], "InvoiceNo")
    code = text(rows, frame["StockCode"], "StockCode")
    quantity = integer(rows, frame["Quantity"], "Quantity", -INT32_MAX, INT32_MAX)
    price = number(rows, frame["UnitPrice"], "UnitPrice")
    when = timestamp(rows, frame["InvoiceDate"], "InvoiceDate", RETAIL_DATE_FORMATS)
    customer = _customer_ids(rows, frame["CustomerID"])
    merchandise = ~_non_merchandise(code)
    cancel = invoice.str.upper().str.startswith("C")
    rows.reject(merchandise & (price < 0), "negative UnitPrice {value} on merchandise", frame["UnitPrice"])
    contradiction = cancel & (quantity > 0)
    rows.reject(contradiction, "cancellation invoice (C...) with positive Quantity {value}", frame["Quantity"])

    guest = customer.eq("")
    reasons = {
        "non_merchandise_code": ~merchandise,
        "zero_quantity": quantity.eq(0),
        "stock_adjustment": ~cancel & (quantity < 0),
        "warehouse_zero_price": (quantity > 0) & price.eq(0) & guest,
    }
    keep = pd.Series(rows.good, index=frame.index)
    ignored: dict[str, int] = {}
    for reason, mask in reasons.items():
        hit = keep & mask
        if hit.any():
            ignored[reason] = int(hit.sum())
        keep &= ~hit

    refund = cancel[keep]
    events = event_frame(
        event_time=when[keep],
        user_key=customer[keep].where(~guest[keep], invoice[keep]),
        user_key_type=np.where(guest[keep], "guest", "member_id"),
        item_id=code[keep],
        event_type=np.where(refund, "refund", "purchase"),
        channel="web",
        store_id=None,
        quantity=quantity[keep].abs(),
        unit_price=price[keep],
        session_id=invoice[keep],
    )
    description = frame["Description"][keep].str.strip().reset_index(drop=True)
    return Converted(events, items=_retail_items(events, description), prices=_retail_prices(events), ignored=ignored)


def _non_merchandise(code: pd.Series) -> pd.Series:
    upper = code.str.upper()
    return upper.isin(NON_MERCHANDISE_CODES) | upper.str.fullmatch(r"[A-Z]{1,2}")


def _customer_ids(rows: Rows, values: pd.Series) -> pd.Series:
    """'17850.0' -> '17850'; blank stays blank (a guest)."""
    values = values.str.strip()
    digits = values.str.replace(r"\.0*$", "", regex=True)
    valid = digits.str.fullmatch(r"\d+") | values.eq("")
    rows.reject(~valid, "CustomerID {value} is not an integer (leave it blank for guests)", values)
    return digits.where(valid, "")


def _paid(events: pd.DataFrame) -> pd.DataFrame:
    """Purchases at a real price: free items would drag the price book and list prices to zero."""
    return events[events["event_type"].eq("purchase") & events["unit_price"].gt(0)]


def _retail_items(events: pd.DataFrame, description: pd.Series) -> pd.DataFrame:
    """Title = most frequent description; list price = most frequent paid price (ties: the higher price)."""
    titled = pd.DataFrame({"item_id": events["item_id"], "title": description})
    titled = titled[titled["title"].ne("")]
    titles = _mode(titled, "item_id", "title")
    paid = _paid(events)[["item_id", "unit_price"]]
    prices = _mode(paid, "item_id", "unit_price").rename(columns={"unit_price": "list_price"})
    items = pd.DataFrame({"item_id": events["item_id"].drop_duplicates()})
    items = items.merge(titles, on="item_id", how="left").merge(prices, on="item_id", how="left")
    return items.assign(category_id="unknown", brand_id=None, cost=np.nan)


def _mode(frame: pd.DataFrame, key: str, value: str) -> pd.DataFrame:
    counts = frame.groupby([key, value], sort=False).size().rename("n").reset_index()
    counts = counts.sort_values(["n", value], ascending=False, kind="stable")
    return counts.drop_duplicates(key)[[key, value]]


def _retail_prices(events: pd.DataFrame) -> pd.DataFrame:
    """The day's price book entry = median paid price of that item that day."""
    paid = _paid(events)
    day = paid["event_time"].dt.date.rename("date")
    prices = paid.groupby([paid["item_id"], day])["unit_price"].median().rename("price").reset_index()
    return prices.assign(on_promotion=False)
