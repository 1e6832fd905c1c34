"""Unified user id: merge member ids, phone hashes, openids and device ids into one `user_id`.

Identifiers are graph nodes; identity links and earlier merges are edges; each connected
component is one person. Components come from scipy's connected_components (union-find done
by a maintained library). The id of a person is a hash of the smallest identifier in the
component, so re-running on the same input gives the same ids (idempotent), and feeding new
links on top of the stored map only ever merges (incremental).
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from siyu.data import schema
from siyu.data.store import read_table, to_table, write_table_atomic
from siyu.settings import Settings


@dataclass
class IdentityReport:
    identifiers: int
    users: int
    merged_identifiers: int  # identifiers that share their user with at least one other

    def summary(self) -> str:
        return f"{self.identifiers:,} identifiers -> {self.users:,} users ({self.merged_identifiers:,} merged)"


def person_id(node: str) -> str:
    """The user id of the person whose smallest identifier is `node` (`type:key`); also of a lone new identifier."""
    return "U" + hashlib.sha1(node.encode()).hexdigest()[:14]


def resolve(links: pd.DataFrame, event_keys: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Map every identifier in links, events and the previous map to a user id."""
    a = links["key_type_a"] + ":" + links["key_a"]
    b = links["key_type_b"] + ":" + links["key_b"]
    keyed = event_keys["user_key_type"] + ":" + event_keys["user_key"]
    edges_a, edges_b = [a], [b]
    nodes = [a, b, keyed]
    if previous is not None and len(previous):
        prev_nodes = previous["user_key_type"] + ":" + previous["user_key"]
        anchor = prev_nodes.groupby(previous["user_id"].to_numpy()).transform("first")
        edges_a.append(prev_nodes)
        edges_b.append(anchor)
        nodes.append(prev_nodes)
    _, uniques = pd.factorize(pd.concat(nodes, ignore_index=True))
    if len(uniques) == 0:
        return schema.IDENTITY_MAP_SCHEMA.empty_table().to_pandas()
    index = pd.Series(np.arange(len(uniques)), index=uniques)
    src = index[pd.concat(edges_a, ignore_index=True)].to_numpy()
    dst = index[pd.concat(edges_b, ignore_index=True)].to_numpy()
    n = len(uniques)
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    names = pd.Series(uniques, dtype=object)
    smallest = names.groupby(component).transform("min")
    parts = names.str.split(":", n=1, expand=True)
    return pd.DataFrame(
        {"user_key_type": parts[0], "user_key": parts[1], "user_id": smallest.map(person_id)}
    ).sort_values(["user_key_type", "user_key"], ignore_index=True)


def build_identity_map(settings: Settings) -> IdentityReport:
    """Resolve links + event identifiers on top of the stored map and store the new map atomically."""
    links = read_table(settings.identity_links_path, schema.IDENTITY_LINK_SCHEMA)
    events = read_table(settings.events_dir, schema.EVENT_SCHEMA)
    keys = events[["user_key_type", "user_key"]].drop_duplicates()
    previous = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
    identity = resolve(links, keys, previous)
    write_table_atomic(to_table(identity, schema.IDENTITY_MAP_SCHEMA), settings.identity_map_path)
    sizes = identity.groupby("user_id")["user_key"].transform("size")
    return IdentityReport(len(identity), identity["user_id"].nunique(), int((sizes > 1).sum()))


def merge_links(settings: Settings, links: pd.DataFrame) -> pd.DataFrame:
    """Store new identity links (IDENTITY_LINK_SCHEMA) and merge them into the stored map; returns the new map.

    What an app learns at request time (a mini-program login binds an openid to a member id) joins the
    links table, and the map is resolved incrementally on top of the stored one (new edges only merge).
    Both files are rewritten atomically under an exclusive lock, so two server workers merging at once
    never lose each other's links.
    """
    with _exclusive(settings.identity_map_path):
        stored = read_table(settings.identity_links_path, schema.IDENTITY_LINK_SCHEMA)
        every = pd.concat([stored, links], ignore_index=True) if len(stored) else links
        write_table_atomic(to_table(every, schema.IDENTITY_LINK_SCHEMA), settings.identity_links_path)
        previous = read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA)
        no_events = pd.DataFrame({"user_key_type": pd.Series(dtype=str), "user_key": pd.Series(dtype=str)})
        identity = resolve(links, no_events, previous)
        write_table_atomic(to_table(identity, schema.IDENTITY_MAP_SCHEMA), settings.identity_map_path)
    return identity


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock beside `path`, held across processes for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def attach_user_ids(events: pd.DataFrame, identity: pd.DataFrame) -> pd.DataFrame:
    """Add `user_id` to events; identifiers the map has not seen yet are their own person."""
    joined = events.merge(identity, on=["user_key_type", "user_key"], how="left")
    missing = joined["user_id"].isna()
    if missing.any():
        nodes = joined.loc[missing, "user_key_type"] + ":" + joined.loc[missing, "user_key"]
        joined.loc[missing, "user_id"] = nodes.map(person_id)
    return joined


def pairwise_precision_recall(identity: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """Precision/recall over pairs of identifiers put in one person (the standard entity-resolution score)."""
    both = identity.merge(truth, on=["user_key_type", "user_key"], how="inner")

    def pairs(counts: pd.Series) -> int:
        return int((counts * (counts - 1) // 2).sum())

    predicted = pairs(both.groupby("user_id").size())
    actual = pairs(both.groupby("true_user_id").size())
    correct = pairs(both.groupby(["user_id", "true_user_id"]).size())
    precision = correct / predicted if predicted else 1.0
    recall = correct / actual if actual else 1.0
    return precision, recall
