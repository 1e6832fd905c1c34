"""Users' interaction sequences as flat token arrays, and the splits every sequence model is judged on.

A *step* is a user's first event on an item in a session (a *touch*, with that event's action: view <
favourite < add to cart < purchase) or, when the item later went deeper in the session, the moment it
did (a *deepening*: the purchase after the view). Every step says only what was known at its time, so
the history before any step is exactly what the log held then, and no step echoes a purchase made after
a later step. Next-item targets are touches only: a genuinely new choice, never the echo of a deepening.
Steps are stored flat (CSR over users) with integer tokens, 0 being padding everywhere, so a million
steps cost a few MB and batching is slicing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

ACTIONS: tuple[str, ...] = ("view", "favourite", "add_to_cart", "purchase")  # token = index + 1, by depth
# Time since the user's previous step, in seconds: token 1 is a first step, 2.. the len(GAP_EDGES) + 1 buckets.
GAP_EDGES = np.array([60, 600, 3_600, 6 * 3_600, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400])
GAP_TOKENS = len(GAP_EDGES) + 3  # padding, first step, one per bucket (below the first edge .. above the last)
# A step this long after the user's previous one opens a new session (as does a user's first step). Sessions
# are read from gaps because every log format here has times, while only some name their sessions.
SESSION_GAP_SECONDS = 3_600
STEP_COLUMNS = ("user_id", "item_id", "time", "action", "channel", "session_id")


class SequenceDataError(ValueError):
    """Input that cannot become sequences (no steps, missing columns); the message names what is wrong."""


@dataclass
class SequenceData:
    """Every user's steps in time order: tokens per step, users as CSR offsets into the flat arrays."""

    user_ids: np.ndarray  # (users,) object
    item_vocab: np.ndarray  # (items,) object: item token k is item_vocab[k - 1]
    channel_vocab: tuple[str, ...]  # channel token k is channel_vocab[k - 1]
    offsets: np.ndarray  # (users + 1,) int64: user u's steps are [offsets[u], offsets[u + 1])
    item: np.ndarray  # (steps,) int32 in 1..items
    action: np.ndarray  # (steps,) int8 in 1..len(ACTIONS)
    channel: np.ndarray  # (steps,) int8 in 1..len(channel_vocab)
    gap: np.ndarray  # (steps,) int8 in 1..GAP_TOKENS - 1
    time: np.ndarray  # (steps,) int64 seconds since the epoch
    purchase_follows: np.ndarray  # (steps,) bool: a later step of the same session is a purchase (intent label)
    has_actions: bool = True  # False for logs that carry items only (the `user item` text format)
    touch: np.ndarray | None = None  # (steps,) bool: a first event on the item in its session; None = all are
    # (items + 1,) int32: item token k's category token (1..len(category_vocab)), 0 for padding and unknown;
    # None when the log names no categories (the `user item` format, UCI Online Retail).
    item_category: np.ndarray | None = None
    category_vocab: tuple[str, ...] = ()

    def with_categories(self, categories: pd.Series) -> SequenceData:
        """The same steps with each item's category from `categories` (item id -> category id; unknown ids: 0)."""
        named = pd.Series(self.item_vocab).map(categories)
        codes, vocab = pd.factorize(named.astype(object), sort=True)
        item_category = np.concatenate([[0], codes + 1]).astype(np.int32)  # factorize gives -1 for missing
        return replace(self, item_category=item_category, category_vocab=tuple(str(c) for c in vocab))

    @property
    def n_categories(self) -> int:
        return len(self.category_vocab)

    @property
    def is_touch(self) -> np.ndarray:
        """(steps,) bool: which steps may be next-item targets (touches, not deepenings)."""
        return np.ones(self.n_steps, dtype=bool) if self.touch is None else self.touch

    @property
    def n_users(self) -> int:
        return self.user_ids.size

    @property
    def n_items(self) -> int:
        return self.item_vocab.size

    @property
    def n_steps(self) -> int:
        return self.item.size

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def steps_of(self, user: int) -> slice:
        return slice(int(self.offsets[user]), int(self.offsets[user + 1]))

    def length_of(self, user: int) -> int:
        """One user's step count, without `lengths`' diff over every user's offsets."""
        return int(self.offsets[user + 1] - self.offsets[user])

    def one_user(self, user: int, last: int | None = None) -> SequenceData:
        """User `user`'s steps (only the newest `last`, if given) as a one-user SequenceData with the same
        vocabularies: what a per-request read needs, at a cost that does not grow with the whole log."""
        span = self.steps_of(user)
        start = span.start if last is None else max(span.start, span.stop - last)
        offsets = np.array([0, span.stop - start], dtype=np.int64)
        return self._select(slice(start, span.stop), offsets, self.user_ids[user : user + 1])

    def take_prefixes(self, keep: np.ndarray) -> SequenceData:
        """The same users with only their first `keep[u]` steps (how splits hide later steps from training)."""
        keep = np.minimum(np.asarray(keep, dtype=np.int64), self.lengths)
        mask = np.arange(self.n_steps) - np.repeat(self.offsets[:-1], self.lengths) < np.repeat(keep, self.lengths)
        return self._select(mask, np.concatenate([[0], np.cumsum(keep)]), self.user_ids)

    def in_vocab(
        self, item_vocab: np.ndarray, channel_vocab: tuple[str, ...], users: np.ndarray, cut: np.ndarray
    ) -> tuple[SequenceData, np.ndarray, np.ndarray | None]:
        """These steps re-tokenised into other vocabularies (a model's, an index's), the cuts adjusted for
        dropped unknown-item steps, and (when the item vocabularies differ) the other token of each of this
        data's item columns (0 = unknown)."""
        same_items = self.item_vocab is item_vocab or (
            self.item_vocab.size == item_vocab.size and bool((self.item_vocab == item_vocab).all())
        )
        same_channels = tuple(self.channel_vocab) == tuple(channel_vocab)
        if same_items and same_channels:
            return self, cut, None
        columns = np.zeros(self.n_items + 1, dtype=np.int64)
        columns[1:] = pd.Index(item_vocab).get_indexer(self.item_vocab) + 1  # -1 (unknown) becomes 0
        channel_map = np.zeros(len(self.channel_vocab) + 1, dtype=np.int8)
        channel_map[1:] = pd.Index(list(channel_vocab)).get_indexer(list(self.channel_vocab)) + 1
        item = columns[self.item]
        known = item > 0
        before = np.concatenate([[0], np.cumsum(known)])
        offsets = before[self.offsets]
        cut = before[self.offsets[users] + cut] - offsets[users]
        retokenised = SequenceData(
            user_ids=self.user_ids,
            item_vocab=item_vocab,
            channel_vocab=channel_vocab,
            offsets=offsets,
            item=item[known].astype(np.int32),
            action=self.action[known],
            channel=channel_map[self.channel[known]],
            gap=self.gap[known],
            time=self.time[known],
            purchase_follows=self.purchase_follows[known],
            has_actions=self.has_actions,
            touch=None if self.touch is None else self.touch[known],
        )
        return retokenised, cut, (None if same_items else columns)

    def _select(self, steps: slice | np.ndarray, offsets: np.ndarray, user_ids: np.ndarray) -> SequenceData:
        """Those steps of every step array, for users laid out by `offsets`, with the same vocabularies."""
        return SequenceData(
            user_ids=user_ids,
            item_vocab=self.item_vocab,
            channel_vocab=self.channel_vocab,
            offsets=offsets,
            item=self.item[steps],
            action=self.action[steps],
            channel=self.channel[steps],
            gap=self.gap[steps],
            time=self.time[steps],
            purchase_follows=self.purchase_follows[steps],
            has_actions=self.has_actions,
            touch=None if self.touch is None else self.touch[steps],
            item_category=self.item_category,
            category_vocab=self.category_vocab,
        )


@dataclass
class EvalSet:
    """Next-item questions: for user `users[j]`, given their first `cut[j]` steps, which item comes next?"""

    users: np.ndarray  # (n,) int64 user index
    cut: np.ndarray  # (n,) int64 history length (the target is step number cut[j])
    target: np.ndarray  # (n,) int32 item token

    def __len__(self) -> int:
        return self.users.size


@dataclass
class Split:
    """Training prefixes plus validation and test questions over one `SequenceData`."""

    data: SequenceData  # all steps; histories for validation/test are prefixes of it
    train: SequenceData  # what a model may fit on
    valid: EvalSet
    test: EvalSet
    kind: str  # "leave-last-out" or "time"


def history_positions(data: SequenceData, users: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat step indices of each question's history, oldest first, and CSR row pointers into them.

    Question j's history is steps [offsets[users[j]], offsets[users[j]] + cut[j]): all the user did before the
    target. One gather serves every batch of questions, so scorers and the harness never loop over users.
    """
    users = np.asarray(users, dtype=np.int64)
    cut = np.asarray(cut, dtype=np.int64)
    if np.any(cut < 0) or np.any(cut > data.lengths[users]):
        raise SequenceDataError("a history cut is negative or longer than the user's sequence")
    indptr = np.concatenate([[0], np.cumsum(cut)])
    positions = np.repeat(data.offsets[users] - indptr[:-1], cut) + np.arange(indptr[-1])
    return positions, indptr


def _eval_set(data: SequenceData, users: np.ndarray, cut: np.ndarray) -> EvalSet:
    users, cut = users.astype(np.int64), cut.astype(np.int64)
    return EvalSet(users=users, cut=cut, target=data.item[data.offsets[users] + cut])


def leave_last_out(data: SequenceData, min_steps: int = 3) -> Split:
    """SASRec's protocol: each user's last touch is the test target, the touch before it validation, the rest training.

    Users with fewer than `min_steps` touches are training-only, as in the SASRec/BERT4Rec papers. A test
    history holds every step before its target, deepenings included; training stops before the validation target.
    """
    touches, last, second = last_touches(data)
    evaluated = np.flatnonzero(touches >= min_steps)
    if evaluated.size == 0:
        raise SequenceDataError(f"no user has {min_steps} or more steps, so nothing can be held out for evaluation")
    keep = data.lengths.copy()
    keep[evaluated] = second[evaluated]
    return Split(
        data=data,
        train=data.take_prefixes(keep),
        valid=_eval_set(data, evaluated, second[evaluated]),
        test=_eval_set(data, evaluated, last[evaluated]),
        kind="leave-last-out",
    )


def last_touches(data: SequenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: number of touches, and the positions (within the user) of the last and second-to-last (-1: none)."""
    owner = np.repeat(np.arange(data.n_users), data.lengths)
    flat = np.flatnonzero(data.is_touch)
    touches = np.bincount(owner[flat], minlength=data.n_users)
    ends = np.cumsum(touches)
    relative = flat - data.offsets[owner[flat]]
    last = np.where(touches >= 1, relative[np.maximum(ends - 1, 0)] if flat.size else -1, -1)
    second = np.where(touches >= 2, relative[np.maximum(ends - 2, 0)] if flat.size else -1, -1)
    return touches, last.astype(np.int64), second.astype(np.int64)


def split_by_time(data: SequenceData, cutoff: pd.Timestamp) -> Split:
    """Train on steps before `cutoff`; test on each returning user's first touch at or after it.

    The test history is every step before that touch (the user's live history at the time). Validation is
    leave-last-out inside the training window, so early stopping never sees the test period.
    """
    cut_s = int(pd.Timestamp(cutoff).timestamp())
    before = np.add.reduceat(np.append(data.time < cut_s, False), data.offsets[:-1])[: data.n_users]
    before = np.where(data.lengths > 0, before, 0)
    owner = np.repeat(np.arange(data.n_users), data.lengths)
    after = np.flatnonzero(data.is_touch & (data.time >= cut_s))
    first_after = np.full(data.n_users, -1, dtype=np.int64)
    users_after, first = np.unique(owner[after], return_index=True)
    first_after[users_after] = after[first] - data.offsets[users_after]
    returning = np.flatnonzero((before > 0) & (first_after >= 0))
    if returning.size == 0:
        raise SequenceDataError(f"no user has steps both before and after {cutoff}")
    inner = leave_last_out(data.take_prefixes(before), min_steps=3)
    return Split(
        data=data,
        train=inner.train,
        valid=inner.valid,
        test=_eval_set(data, returning, first_after[returning]),
        kind="time",
    )


def from_steps(frame: pd.DataFrame, has_actions: bool = True) -> SequenceData:
    """Tokenise a step table (STEP_COLUMNS; `action` one of ACTIONS) into sequences in time order.

    Ties in time keep the frame's order, so a converter decides the order of same-second steps. An optional
    bool `touch` column marks the steps that may be next-item targets (absent: every step may), and an
    optional `category_id` column names items' categories (the latest seen wins).
    """
    missing = [c for c in STEP_COLUMNS if c not in frame.columns]
    if missing:
        raise SequenceDataError(f"step table lacks column(s) {', '.join(missing)}")
    if frame.empty:
        raise SequenceDataError("no interaction steps: the input holds no user-item events")
    unknown = set(frame["action"].unique()) - set(ACTIONS)
    if unknown:
        raise SequenceDataError(f"unknown action(s) {sorted(unknown)}; expected one of {ACTIONS}")
    blank = [c for c in ("user_id", "item_id", "time") if frame[c].isna().any()]
    if blank:
        raise SequenceDataError(f"step table has missing values in {', '.join(blank)}")
    frame = frame.reset_index(drop=True)
    time = epoch_seconds(frame["time"])
    # Integer codes sort far faster than object ids; codes from a sorted factorize keep the users' id order.
    user_codes, user_ids = _sorted_codes(frame["user_id"])
    order = np.lexsort((np.arange(len(frame)), time, user_codes))
    frame, time, user_codes = frame.iloc[order], time[order], user_codes[order]
    item_codes, item_vocab = _sorted_codes(frame["item_id"])
    channel = frame["channel"]
    if channel.isna().any():
        channel = channel.astype(object).fillna("unknown")
    channel_codes, channel_vocab = _sorted_codes(channel)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(user_codes, minlength=user_ids.size))])
    first = np.zeros(len(frame), dtype=bool)
    first[offsets[:-1]] = True
    gap_seconds = np.diff(time, prepend=time[:1])
    gap = np.where(first, 1, gap_tokens(gap_seconds)).astype(np.int8)
    action = (pd.Categorical(frame["action"], categories=list(ACTIONS)).codes + 1).astype(np.int8)
    data = SequenceData(
        user_ids=np.asarray(user_ids, dtype=object),
        item_vocab=np.asarray(item_vocab, dtype=object),
        channel_vocab=tuple(str(c) for c in channel_vocab),
        offsets=offsets.astype(np.int64),
        item=(item_codes + 1).astype(np.int32),
        action=action,
        channel=(channel_codes + 1).astype(np.int8),
        gap=gap,
        time=time,
        purchase_follows=_purchase_follows(user_codes, frame["session_id"], action),
        has_actions=has_actions,
        touch=frame["touch"].to_numpy(dtype=bool) if "touch" in frame.columns else None,
    )
    if "category_id" in frame.columns and frame["category_id"].notna().any():
        named = frame[["item_id", "category_id"]].dropna().drop_duplicates("item_id", keep="last")
        data = data.with_categories(named.set_index("item_id")["category_id"])
    return data


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes, sorted distinct values); a categorical's codes are reused instead of hashing every value again."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()
        values = values.cat.reorder_categories(values.cat.categories.sort_values())
        return values.cat.codes.to_numpy(dtype=np.int64), values.cat.categories
    return pd.factorize(values, sort=True)


def gap_tokens(seconds: np.ndarray) -> np.ndarray:
    """Gap token (2..GAP_TOKENS - 1) of each time since a previous step, in seconds."""
    return 2 + np.searchsorted(GAP_EDGES, seconds, side="right")


SESSION_GAP_TOKEN = int(gap_tokens(np.array([SESSION_GAP_SECONDS]))[0])


def opens_session(gap: np.ndarray) -> np.ndarray:
    """(steps,) bool: the step with this gap token is its session's first (a first step, or one after an hour)."""
    return (gap == 1) | (gap >= SESSION_GAP_TOKEN)


def epoch_seconds(time: pd.Series) -> np.ndarray:
    """Step times as int64 seconds: converters may hand over epoch seconds or timestamps (zone-aware or not)."""
    if pd.api.types.is_datetime64_any_dtype(time):
        if time.isna().any():
            raise SequenceDataError("step table has missing times")
        epoch = pd.Timestamp(0, tz="UTC") if getattr(time.dtype, "tz", None) is not None else pd.Timestamp(0)
        return ((time - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    if not pd.api.types.is_integer_dtype(time):
        raise SequenceDataError(f"step times must be integer seconds or timestamps, not {time.dtype}")
    return time.to_numpy(dtype=np.int64)


def _purchase_follows(user: np.ndarray, session: pd.Series, action: np.ndarray) -> np.ndarray:
    """True where a later step of the same session (rows in time order) is a purchase: the intent label.

    Sessions are keyed by (user, session id): converters number sessions per user, so an id alone may repeat.
    """
    session_codes = _sorted_codes(session)[0].astype(np.int64)
    session_codes = pd.factorize(user.astype(np.int64) * (session_codes.max() + 1) + session_codes)[0]
    bought = (action == ACTIONS.index("purchase") + 1).astype(np.int8)
    # Rows of one session are in time order: purchases strictly later = the session's total minus those up to here.
    order = np.argsort(session_codes, kind="stable")
    codes, bought_sorted = session_codes[order], bought[order]
    counts = np.bincount(codes)
    totals = np.bincount(codes, weights=bought_sorted)
    up_to_here = np.cumsum(bought_sorted) - np.repeat(np.cumsum(totals) - totals, counts)
    ahead = np.empty(action.size, dtype=bool)
    ahead[order] = totals[codes] - up_to_here > 0
    return ahead
