import numpy as np
import pandas as pd

from serving.recommend.index_lookup import position


def test_position_agrees_with_get_indexer_for_present_absent_and_odd_keys() -> None:
    index = pd.Index(["u1", "u2", "u3"])
    for key in ["u1", "u3", "nobody", "", None, 3, np.nan]:
        assert position(index, key) == index.get_indexer([key])[0], key
    assert position(index, ["u1"]) == -1  # unhashable: in no index


def test_position_in_an_index_with_repeats_is_absent_rather_than_a_guess() -> None:
    assert position(pd.Index(["a", "a", "b"]), "a") == -1
    assert position(pd.Index(["a", "a", "b"]), "b") == 2
