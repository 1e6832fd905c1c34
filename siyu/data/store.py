"""Atomic Parquet writes for the data directory.

A crash or a rejected import must never leave a half-written table behind, so every write
goes to a temporary file in the same directory and is renamed into place (atomic on POSIX).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Cast a frame to a contract schema; raises if a required column is missing or has the wrong type.

    Optional (nullable) columns may be absent and are written as nulls, so producers written
    before a column was added to the contract keep working.
    """
    missing = [f.name for f in schema if f.name not in frame.columns and not f.nullable]
    if missing:
        raise ValueError(f"missing columns {missing} (expected {schema.names})")
    absent = [f.name for f in schema if f.name not in frame.columns]
    if absent:
        frame = frame.assign(**dict.fromkeys(absent))
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so readers see either the old file or the complete new one, and so it is on
    disk when this returns: an /events batch is acknowledged (and its ids entered in the ledger) only after
    its part is, so a machine that loses power cannot lose acknowledged events (~2 ms of fsync per write here).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # the rename itself
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def table_parts(directory: Path) -> list[Path]:
    """The finished parts of a partitioned table, in name order (a write in progress is a dot-file)."""
    return sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))


def read_parts(files: list[Path], schema: pa.Schema) -> pd.DataFrame:
    """Exactly these parts of a partitioned table as one frame (empty, with the right columns, for none)."""
    if not files:
        return schema.empty_table().to_pandas()
    return pq.ParquetDataset(files, schema=schema).read().to_pandas()


def read_table(path: Path, schema: pa.Schema) -> pd.DataFrame:
    """Read a contract table, or an empty frame with the right columns when it does not exist yet."""
    if path.is_dir():
        return read_parts(table_parts(path), schema)
    if not path.exists():
        return schema.empty_table().to_pandas()
    return pq.read_table(path, schema=schema).to_pandas()


def new_part_path(directory: Path, prefix: str) -> Path:
    """A unique file name for one more part of a partitioned table (events arrive in batches)."""
    return directory / f"{prefix}-{uuid.uuid4().hex[:12]}.parquet"
