"""The two snapshots a forward-in-time test of a user-level prediction needs, `horizon` days apart.

A model fits on the earlier snapshot's profiles and what followed them, and is scored on the later
snapshot's, whose outcome window ends at `as_of`: nothing after `as_of` is read, and the test users'
outcomes are never seen in fitting. Churn and lifetime value are both judged this way.
"""

from __future__ import annotations

import pandas as pd

# LightGBM on user profiles (a few thousand to a few hundred thousand rows, a dozen columns): small trees,
# a fixed number of rounds, no early-stopping rows to spare. Churn and lifetime value add their objective.
PROFILE_MODEL_PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "verbosity": -1,
    "seed": 0,
}
PROFILE_MODEL_ROUNDS = 200


def forward_snapshots(
    events: pd.DataFrame, as_of: pd.Timestamp, horizon: int, what: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(earlier, later) = (as_of - 2 horizons, as_of - 1 horizon); ValueError naming `what` when the log
    does not reach back before `earlier`."""
    later = as_of - pd.Timedelta(days=horizon)
    earlier = later - pd.Timedelta(days=horizon)
    first = events["event_time"].min()
    if pd.isna(first) or earlier <= first:
        raise ValueError(
            f"{what} needs events from before {earlier.date()} (two {horizon}-day outcome windows before"
            f" {as_of.date()}); the log starts {'nowhere' if pd.isna(first) else first.date()}:"
            " use a later --as-of or a shorter --horizon"
        )
    return earlier, later
