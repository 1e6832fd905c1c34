"""Rows of our feature views read straight from the online store, for the request path and the push path.

Feast's `get_online_features` is the general path: it resolves feature references, builds a response
proto with every value and converts each back to Python. For a user with ~70 category rows that was
~900 value conversions and half the online store's share of a /recommend at 1,000 candidates. Serving
always asks the same views for all their features, so this calls the online store's `online_read`
(the interface every Feast online store implements, and what `get_online_features` calls underneath)
with the entity keys, and takes each value from its proto as it is. On SQLite it reads the store's
table itself (`features/sqlite_rows.py`), which is faster again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from feast import FeatureStore
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value

from features.sqlite_rows import read_sqlite


@dataclass(frozen=True)
class OnlineRow:
    as_of: datetime | None  # the row's event timestamp
    values: dict[str, float | None]  # feature -> value (None: not stored)


class OnlineRows:
    """Reads whole rows of the named views (with the store's configuration: serving's is fail-fast)."""

    def __init__(self, store: FeatureStore, views: Sequence[str]) -> None:
        self._config = store.config
        self._online = get_online_store_from_config(store.config.online_store)
        self._views = {name: store.get_feature_view(name) for name in views}

    def read(self, view: str, keys: Sequence[Mapping[str, str]], features: Sequence[str]) -> list[OnlineRow | None]:
        """One row per key (join key -> value), None where the store holds no row for it."""
        if not keys:
            return []
        if isinstance(self._online, SqliteOnlineStore):
            found = read_sqlite(self._online, self._config, self._views[view], keys, features)
        else:
            found = self._online.online_read(self._config, self._views[view], entity_keys(keys), list(features))
        return [None if values is None else OnlineRow(as_of, _floats(values, features)) for as_of, values in found]


def entity_keys(keys: Sequence[Mapping[str, str]]) -> list[EntityKey]:
    """Feast's entity-key protos for keys of string values (join key -> value)."""
    return [EntityKey(join_keys=list(key), entity_values=[Value(string_val=v) for v in key.values()]) for key in keys]


def _floats(values: Mapping[str, Value], features: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in features:
        proto = values.get(name)
        kind = proto.WhichOneof("val") if proto is not None else None
        out[name] = None if kind is None or kind == "null_val" else float(getattr(proto, kind))
    return out
