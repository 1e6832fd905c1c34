"""Who a request is about: any identifier a brand's apps hold (openid, device id, member id, phone hash),
resolved at request time to the unified user id the models and features are keyed by.

The directory is the stored identity map, held in memory and swapped on the refresh tick with the
paths built from the same map, so a mini-program openid and the same person's member id at the till
resolve to one user and get the same recommendations. An identifier the map has never seen is a
person of its own, with the id identity resolution would give it, as `attach_user_ids` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from siyu.data import schema
from siyu.data.identity import person_id
from siyu.data.store import read_table
from siyu.settings import Settings

EMPTY_IDENTITY = schema.IDENTITY_MAP_SCHEMA.empty_table().to_pandas()


@dataclass(frozen=True)
class ResolvedUser:
    user_id: str
    known: bool  # the identity map holds this identifier


class IdentityDirectory:
    """`type:key` -> unified user id, for every identifier in the stored identity map."""

    def __init__(self, identity: pd.DataFrame) -> None:
        nodes = identity["user_key_type"].astype(str) + ":" + identity["user_key"].astype(str)
        self._users = dict(zip(nodes, identity["user_id"].astype(str), strict=True))

    @classmethod
    def from_store(cls, settings: Settings) -> IdentityDirectory:
        return cls(read_table(settings.identity_map_path, schema.IDENTITY_MAP_SCHEMA))

    def __len__(self) -> int:
        return len(self._users)

    def resolve(self, key_type: str, key: str) -> ResolvedUser:
        node = schema.node_id(key_type, key)
        user_id = self._users.get(node)
        return ResolvedUser(user_id, True) if user_id is not None else ResolvedUser(person_id(node), False)
