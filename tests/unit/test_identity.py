"""Identity resolution: merges what links connect, nothing else; idempotent and incremental."""

from __future__ import annotations

import pandas as pd

from siyu.data.identity import attach_user_ids, pairwise_precision_recall, resolve


def _links(*pairs: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["key_type_a", "key_a", "key_type_b", "key_b"])


NO_KEYS = pd.DataFrame({"user_key_type": pd.Series(dtype=str), "user_key": pd.Series(dtype=str)})


def _person(identity: pd.DataFrame, key_type: str, key: str) -> str:
    return identity.set_index(["user_key_type", "user_key"]).loc[(key_type, key), "user_id"]


def test_links_chain_into_one_person_and_strangers_stay_apart() -> None:
    links = _links(
        ("openid", "o1", "member_id", "m1"),
        ("member_id", "m1", "phone_hash", "p1"),
        ("device_id", "d2", "phone_hash", "p2"),
    )
    events = pd.DataFrame({"user_key_type": ["openid", "openid"], "user_key": ["o1", "o3"]})
    identity = resolve(links, events)
    assert _person(identity, "openid", "o1") == _person(identity, "phone_hash", "p1")
    assert _person(identity, "device_id", "d2") == _person(identity, "phone_hash", "p2")
    assert _person(identity, "openid", "o1") != _person(identity, "device_id", "d2")
    assert _person(identity, "openid", "o3") not in {
        _person(identity, "openid", "o1"),
        _person(identity, "device_id", "d2"),
    }
    assert identity["user_id"].nunique() == 3


def test_same_key_in_two_types_is_two_identifiers() -> None:
    identity = resolve(
        _links(("openid", "x", "member_id", "m1")), pd.DataFrame({"user_key_type": ["device_id"], "user_key": ["x"]})
    )
    assert _person(identity, "openid", "x") != _person(identity, "device_id", "x")


def test_idempotent_and_incremental() -> None:
    first = resolve(_links(("openid", "o1", "member_id", "m1"), ("device_id", "d2", "phone_hash", "p2")), NO_KEYS)
    assert resolve(
        _links(("openid", "o1", "member_id", "m1"), ("device_id", "d2", "phone_hash", "p2")), NO_KEYS
    ).equals(first)
    # A later link (the member binds the phone at the till) merges two people; earlier merges are kept
    # even though the earlier links are not passed again.
    second = resolve(_links(("member_id", "m1", "phone_hash", "p2")), NO_KEYS, previous=first)
    assert second["user_id"].nunique() == 1
    assert len(second) == 4
    assert resolve(_links(), NO_KEYS, previous=second).equals(second)


def test_unseen_identifiers_become_their_own_person() -> None:
    identity = resolve(_links(("openid", "o1", "member_id", "m1")), NO_KEYS)
    events = pd.DataFrame({"user_key_type": ["member_id", "openid"], "user_key": ["m1", "new"]})
    joined = attach_user_ids(events, identity)
    assert joined["user_id"].notna().all()
    assert joined["user_id"].iloc[0] == _person(identity, "openid", "o1")
    assert joined["user_id"].iloc[1] != joined["user_id"].iloc[0]


def test_pairwise_scores_catch_wrong_merges_and_missed_ones() -> None:
    truth = pd.DataFrame(
        {"user_key_type": ["openid"] * 4, "user_key": list("abcd"), "true_user_id": ["A", "A", "B", "B"]}
    )
    perfect = truth.rename(columns={"true_user_id": "user_id"})
    assert pairwise_precision_recall(perfect, truth) == (1.0, 1.0)
    everyone = perfect.assign(user_id="X")
    assert pairwise_precision_recall(everyone, truth) == (2 / 6, 1.0)
    nobody = perfect.assign(user_id=list("wxyz"))
    assert pairwise_precision_recall(nobody, truth) == (1.0, 0.0)
