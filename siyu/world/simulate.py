"""Day-by-day simulation of sessions walking the decision path, with stock that runs out.

Each day: active users start sessions (online in the mini-program or app, or in a store), each
with an intent stage; each session shows items drawn from the user's day-start state (drifting
interest, due consumables, complements of recent purchases: see `siyu.world.sequential`); each
impression has a *true* purchase probability from the world's utility model; purchases draw down
stock (none once it is zero) and update the state from the next day on; and the observable events
(view, favourite, add_to_cart, coupon_claim, purchase, refund, store_visit, search) are emitted
alongside the ground truth of every impression.
Vectorised per day so 10 M events take minutes, and memory is bounded by one day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from siyu.world.entities import (
    BASE_LOGIT,
    PRICE_WEIGHT,
    PROMO_BOOST,
    STORE_BOOST,
    TASTE_WEIGHT,
    Items,
    Users,
    WorldConfig,
    within_category_share,
)
from siyu.world.sequential import (
    COMPLEMENT_DRAWS,
    DUE_DRAWS,
    PURCHASE_STAGE,
    REPLENISH_SESSIONS,
    STAGE_LOGIT,
    STAGE_PROBS,
    STAGES,
    STORE_DRAW_SCALE,
    TASTE_DRAWS,
    ChoiceState,
    PurchaseMemory,
    drift_interest,
    initial_interest,
)

EXTRA_QUANTITY_MEAN = 0.25  # a buyer takes 1 + Poisson(0.25) units
REFUND_RATE = 0.03
SECONDS_PER_DAY = 86_400


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class DayOutput:
    events: pd.DataFrame
    impressions: pd.DataFrame
    stock_at_open: np.ndarray  # after the morning's deliveries
    received: np.ndarray  # units delivered this morning
    written_off: np.ndarray  # units expired (perishable) or sent to the outlet (seasonal) at close
    state: ChoiceState  # the day-start state the day's sessions were drawn from (the truth is computed from it)


def purchase_logit(
    appeal: np.ndarray,
    level_logit: np.ndarray,
    taste: np.ndarray,
    vec: np.ndarray,
    price_sensitivity: np.ndarray,
    price_vs_list: np.ndarray,
    on_promotion: np.ndarray,
    in_store: np.ndarray,
    stage: np.ndarray,
    boost: np.ndarray | float,
) -> np.ndarray:
    """The world's utility: each impression's true purchase logit from its terms (one row per impression;
    `taste` and `vec` are (n, taste_dim), `stage` indexes STAGES). Evaluation calls it too, to take terms apart."""
    return (
        BASE_LOGIT
        + appeal
        + level_logit
        + TASTE_WEIGHT * np.einsum("ij,ij->i", taste, vec)
        - price_sensitivity * PRICE_WEIGHT * np.log(price_vs_list)
        + PROMO_BOOST * on_promotion
        + STORE_BOOST * in_store
        + STAGE_LOGIT[stage]
        + boost
    )


def expected_sessions(cfg: WorldConfig, users: Users, day: int) -> np.ndarray:
    """Each user's Poisson rate of sessions on `day`: lifecycle stage x visit rhythm x weekend lift."""
    return session_rates(users.visit_rate, users.signup_day, users.dormant_day, users.churn_day, cfg.start, day)


def session_rates(
    visit_rate: np.ndarray,
    signup_day: np.ndarray,
    dormant_day: np.ndarray,
    churn_day: np.ndarray,
    start: date,
    day: int,
) -> np.ndarray:
    """`expected_sessions` from the user parameters the truth keeps (evaluation reads them back from there)."""
    factor = np.select(
        [day < signup_day, day < signup_day + 14, day < dormant_day, day < churn_day],
        [0.0, 1.5, 1.0, 0.12],
        default=0.0,
    )
    weekday = (start.weekday() + day) % 7
    return visit_rate * factor * (1.3 if weekday >= 5 else 1.0)


class Simulator:
    """Holds the state that carries across days: stock levels, every user's interest and purchase memory."""

    def __init__(
        self,
        cfg: WorldConfig,
        rng: np.random.Generator,
        users: Users,
        items: Items,
        price: np.ndarray,
        promo: np.ndarray,
        centroids: np.ndarray,
    ) -> None:
        self.cfg, self.rng, self.users, self.items = cfg, rng, users, items
        self.price, self.promo = price, promo
        self.centroids = centroids  # category centres in taste space: the interest -> category mix map
        self.start_ns = pd.Timestamp(cfg.start, tz="UTC").value
        items.target_stock[:] = self._target_stock()
        self.stock = items.target_stock.copy()
        self.perishable = items.kind == "perishable"
        self.seasonal = items.kind == "seasonal"
        self.interest = initial_interest(cfg, users.taste)  # as of the last simulated day
        self.memory = PurchaseMemory(items, cfg.users)
        self.next_day = 0
        self._state: ChoiceState | None = None

    def choice_state(self, day: int) -> ChoiceState:
        """The day-start state of `day`, which must be the next day to simulate (it depends on the days before)."""
        if day != self.next_day:
            raise ValueError(f"the simulator is at day {self.next_day}: simulate the days before {day} first")
        if self._state is None or self._state.day != day:
            interest = self.interest if day == 0 else drift_interest(self.cfg, self.users.taste, self.interest, day)
            self._state = self.memory.state(day, interest, self.centroids)
        return self._state

    def true_demand(self, day: int, multipliers: np.ndarray) -> np.ndarray:
        """(items, len(multipliers)) expected wanted units on `day` at multiplier x list price, from its start state."""
        from siyu.world.demand_truth import true_demand  # the truth module builds on this one

        return true_demand(self, [self.choice_state(day)], multipliers)[0]

    def _target_stock(self) -> np.ndarray:
        """Size each delivery to cover its cycle (replenishment, batch shelf life, season) more or less well."""
        users, items = self.users, self.items
        category_share = np.diff(users.category_cdf, prepend=0.0, axis=1).mean(axis=0)
        item_share = category_share[items.category] * within_category_share(items)
        impressions_per_day = users.visit_rate.sum() * 0.8 * (1 + STAGE_PROBS @ TASTE_DRAWS)
        p = sigmoid(BASE_LOGIT + items.appeal + items.level_logit + 0.4)
        daily = impressions_per_day * item_share * p
        cover = self.rng.uniform(0.5, 1.6, self.cfg.items)
        cycle = np.where(items.kind == "seasonal", items.sell_by_day + 1, items.replenish_every)
        return np.ceil(daily * cycle * cover).astype(np.int64) + 1

    def _deliver(self, day: int) -> np.ndarray:
        """Morning deliveries: regular items top up to target, fresh batches replace expired ones, seasonal never."""
        items = self.items
        if day == 0:
            return self.stock.copy()  # the opening stock counts as delivered on the first day
        due = day % items.replenish_every == 0
        top_up = np.where(due & ~self.perishable & ~self.seasonal, np.maximum(items.target_stock - self.stock, 0), 0)
        batch = np.where(due & self.perishable, items.target_stock, 0)
        received = (top_up + batch).astype(np.int64)
        self.stock = self.stock + received
        return received

    def _write_off(self, day: int) -> np.ndarray:
        """At close: a fresh batch's last day ends in the bin; a seasonal item's sell-by day ends at the outlet."""
        items = self.items
        expired = self.perishable & ((day + 1) % np.maximum(items.shelf_life, 1) == 0)
        expired |= self.seasonal & (day == items.sell_by_day)
        written_off = np.where(expired, self.stock, 0).astype(np.int64)
        self.stock = self.stock - written_off
        return written_off

    def run_day(self, day: int) -> DayOutput:
        state = self.choice_state(day)
        rng, users, items = self.rng, self.users, self.items
        received = self._deliver(day)
        stock_at_open = self.stock.copy()

        s_user, s_replenish = self._session_users(day, state)
        n_s = s_user.size
        s_store = rng.random(n_s) < users.p_store[s_user]
        s_app = ~s_store & (rng.random(n_s) < users.p_app[s_user])
        hour = np.where(s_store, rng.uniform(10, 21, n_s), np.clip(rng.normal(20, 3, n_s), 0, 23.9))
        s_start = day * SECONDS_PER_DAY + hour * 3600
        s_ids = np.array([f"S{day:04d}-{j:06d}" for j in range(n_s)], dtype=object)

        s_stage = np.where(s_replenish, PURCHASE_STAGE, self._stages(n_s))
        imp_s, imp_item = self._impressions(state, s_user, s_store, s_stage, s_replenish)
        keep = ~pd.DataFrame({"s": imp_s, "i": imp_item}).duplicated().to_numpy()
        imp_s, imp_item = imp_s[keep], imp_item[keep]
        n = imp_s.size
        u = s_user[imp_s]
        boost = state.boost_at(u, imp_item)

        price = self.price[imp_item, day]
        promo = self.promo[imp_item, day]
        logit = purchase_logit(
            items.appeal[imp_item],
            items.level_logit[imp_item],
            users.taste[u],
            items.vec[imp_item],
            users.beta[u],
            price / items.list_price[imp_item],
            promo,
            s_store[imp_s],
            s_stage[imp_s],
            boost,
        )
        p_true = sigmoid(logit)
        gap = rng.uniform(15, 120, n)
        offset = pd.Series(gap).groupby(imp_s).cumsum().to_numpy()
        t_view = s_start[imp_s] + offset

        wants = rng.random(n) < p_true
        want_qty = np.where(wants, 1 + rng.poisson(EXTRA_QUANTITY_MEAN, n), 0)
        in_stock, sold_qty = self._allocate_stock(imp_item, t_view, want_qty, stock_at_open)
        bought = sold_qty > 0
        np.subtract.at(self.stock, imp_item, sold_qty)
        self.memory.record(day, u[bought], imp_item[bought])
        self.interest, self.next_day = state.interest, day + 1

        impressions = pd.DataFrame(
            {
                "session_id": s_ids[imp_s],
                "user_id": users.ids[u],
                "item_id": items.ids[imp_item],
                "event_time": self._ts(t_view),
                "channel": self._channel_names(s_store, s_app)[imp_s],
                "price": price,
                "on_promotion": promo,
                "true_purchase_prob": p_true,
                "in_stock": in_stock,
                "purchased": bought,
                "quantity": sold_qty.astype(np.int32),
                "intent_stage": np.array(STAGES, dtype=object)[s_stage[imp_s]],
                "replenishment": s_replenish[imp_s],
            }
        )
        events = self._events(
            s_user, s_store, s_app, s_start, s_ids, imp_s, imp_item, t_view, p_true, bought, sold_qty, price
        )
        return DayOutput(events, impressions, stock_at_open, received, self._write_off(day), state)

    def _session_users(self, day: int, state: ChoiceState) -> tuple[np.ndarray, np.ndarray]:
        """The user of every session today, and whether it is a replenishment session (they follow the regular ones)."""
        rate = expected_sessions(self.cfg, self.users, day)
        regular = self.rng.poisson(rate)
        replenish = self.rng.poisson(rate * REPLENISH_SESSIONS * state.due_level)
        everyone = np.arange(self.cfg.users)
        s_user = np.concatenate([np.repeat(everyone, regular), np.repeat(everyone, replenish)])
        return s_user, np.arange(s_user.size) >= regular.sum()

    def _stages(self, n: int) -> np.ndarray:
        """Intent stages (indices into STAGES) of `n` regular sessions."""
        return np.minimum(np.searchsorted(np.cumsum(STAGE_PROBS), self.rng.random(n), side="right"), len(STAGES) - 1)

    def _impressions(
        self,
        state: ChoiceState,
        s_user: np.ndarray,
        s_store: np.ndarray,
        s_stage: np.ndarray,
        s_replenish: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every session's draws, in order: a first item from the session's category, then a Poisson stream.

        The stream mixes taste draws (the session's category, by popularity) with due and complement
        draws (the user's sparse rows) in proportion to their rates, so each draw after the first is iid
        from the mixture; a replenishment session has no taste draws, its first included. Repeats are
        dropped by the caller. Returns (session of each draw, item).
        """
        rng = self.rng
        scale = np.where(s_store, STORE_DRAW_SCALE, 1.0)
        taste_rate = np.where(s_replenish, 0.0, scale * TASTE_DRAWS[s_stage])
        due_rate = scale * DUE_DRAWS[s_stage] * state.row_totals(state.due_draw)[s_user]
        comp_rate = scale * COMPLEMENT_DRAWS[s_stage] * state.row_totals(state.complement_draw)[s_user]
        total = taste_rate + due_rate + comp_rate
        per = 1 + rng.poisson(total)
        imp_s = np.repeat(np.arange(s_user.size), per)
        pick = rng.random(imp_s.size) * total[imp_s]
        source = np.where(pick < taste_rate[imp_s], 0, np.where(pick < (taste_rate + due_rate)[imp_s], 1, 2))
        opening = np.cumsum(per) - per
        source[opening[~s_replenish]] = 0  # a regular session opens on its own category
        category = self._session_categories(state, s_user)
        item = np.empty(imp_s.size, dtype=np.int64)
        taste = source == 0
        item[taste] = self._item_in_category(category[imp_s[taste]])
        for code, weight in ((1, state.due_draw), (2, state.complement_draw)):
            rows = source == code
            item[rows] = self._sparse_draw(state, weight, s_user[imp_s[rows]])
        return imp_s, item

    def _session_categories(self, state: ChoiceState, s_user: np.ndarray) -> np.ndarray:
        """Each session's category, from the user's drifted interest that day."""
        cdf = np.cumsum(state.category_probs(s_user), axis=1)
        category = (self.rng.random(s_user.size)[:, None] > cdf).sum(axis=1)
        return np.minimum(category, cdf.shape[1] - 1)

    def _item_in_category(self, category: np.ndarray) -> np.ndarray:
        """An item of each given category by within-category popularity."""
        chosen = np.empty(category.size, dtype=np.int64)
        for k, (members, within) in enumerate(
            zip(self.items.members_of_category, self.items.within_category_cdf, strict=True)
        ):
            rows = np.flatnonzero(category == k)
            if rows.size:
                chosen[rows] = members[np.searchsorted(within, self.rng.random(rows.size))]
        return chosen

    def _sparse_draw(self, state: ChoiceState, weight: np.ndarray, user: np.ndarray) -> np.ndarray:
        """An item of each user's sparse row with probability proportional to `weight` (rows must have weight)."""
        cum = np.cumsum(weight)
        start, end = state.indptr[user], state.indptr[user + 1]
        base = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
        target = base + self.rng.random(user.size) * (cum[np.maximum(end - 1, 0)] - base)
        pos = np.clip(np.searchsorted(cum, target, side="right"), start, np.maximum(end - 1, start))
        return state.item[pos]

    @staticmethod
    def _allocate_stock(
        item: np.ndarray, when: np.ndarray, want_qty: np.ndarray, stock: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """First come, first served: sales before an impression use up the stock it could buy."""
        order = np.lexsort((when, item))
        wanted = want_qty[order]
        cum_incl = pd.Series(wanted).groupby(item[order]).cumsum().to_numpy()
        sold_before = np.minimum(cum_incl - wanted, stock[item[order]])
        remaining = stock[item[order]] - sold_before
        in_stock = np.empty(item.size, dtype=bool)
        sold = np.empty(item.size, dtype=np.int64)
        in_stock[order] = remaining > 0
        sold[order] = np.minimum(wanted, remaining)
        return in_stock, sold

    def _ts(self, seconds: np.ndarray) -> pd.DatetimeIndex:
        return pd.to_datetime(self.start_ns + (seconds * 1e6).astype(np.int64) * 1000, utc=True)

    @staticmethod
    def _channel_names(store: np.ndarray, app: np.ndarray) -> np.ndarray:
        return np.where(store, "pos", np.where(app, "app", "mini_program")).astype(object)

    def _user_keys(self, s_user: np.ndarray, s_store: np.ndarray, s_app: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What each channel knows the person as: openid, device id, or member id / phone at the till."""
        users = self.users
        use_phone = s_store & (users.phone_hash[s_user] != None) & (self.rng.random(s_user.size) < 0.4)  # noqa: E711
        key = np.where(
            s_store,
            np.where(use_phone, users.phone_hash[s_user], users.member_id[s_user]),
            np.where(s_app, users.device_id[s_user], users.openid[s_user]),
        )
        key_type = np.where(
            s_store, np.where(use_phone, "phone_hash", "member_id"), np.where(s_app, "device_id", "openid")
        )
        return key.astype(object), key_type.astype(object)

    def _events(
        self,
        s_user: np.ndarray,
        s_store: np.ndarray,
        s_app: np.ndarray,
        s_start: np.ndarray,
        s_ids: np.ndarray,
        imp_s: np.ndarray,
        imp_item: np.ndarray,
        t_view: np.ndarray,
        p_true: np.ndarray,
        bought: np.ndarray,
        sold_qty: np.ndarray,
        price: np.ndarray,
    ) -> pd.DataFrame:
        """The observable decision path: online impressions are seen as views, store ones only as sales."""
        rng, n = self.rng, imp_s.size
        online = ~s_store[imp_s]
        cart = bought | (online & (rng.random(n) < np.minimum(0.5, 1.5 * p_true)))
        fav = online & (rng.random(n) < 0.06 + 0.4 * p_true)
        coupon = online & ((bought & (rng.random(n) < 0.25)) | (~bought & cart & (rng.random(n) < 0.05)))
        refund = bought & (rng.random(n) < REFUND_RATE)
        ones = np.ones(n, dtype=np.int32)
        # (event type, which impressions, seconds after the view, quantity)
        steps = [
            ("view", online, 0.0, ones),
            ("favourite", fav, rng.uniform(5, 40, n), ones),
            ("add_to_cart", cart & online, rng.uniform(10, 60, n), np.maximum(sold_qty, 1)),
            ("coupon_claim", coupon, rng.uniform(61, 90, n), ones),
            ("purchase", bought, rng.uniform(91, 600, n), sold_qty),
            ("refund", refund, rng.uniform(1, 6, n) * SECONDS_PER_DAY, sold_qty),
        ]
        parts = [
            pd.DataFrame(
                {
                    "t": (t_view + offset)[mask] if np.ndim(offset) else t_view[mask],
                    "s": imp_s[mask],
                    "item": imp_item[mask],
                    "event_type": name,
                    "quantity": qty[mask],
                    "unit_price": price[mask],
                }
            )
            for name, mask, offset, qty in steps
        ]
        n_s = s_user.size
        search = ~s_store & (rng.random(n_s) < 0.3)
        for name, mask, offset in (("store_visit", s_store, 0.0), ("search", search, -5.0)):
            parts.append(
                pd.DataFrame(
                    {
                        "t": s_start[mask] + offset,
                        "s": np.flatnonzero(mask),
                        "item": -1,
                        "event_type": name,
                        "quantity": 0,
                        "unit_price": np.nan,
                    }
                )
            )
        ev = pd.concat(parts, ignore_index=True).sort_values("t", kind="stable")
        key, key_type = self._user_keys(s_user, s_store, s_app)
        s = ev["s"].to_numpy()
        item = ev["item"].to_numpy()
        store_ids = np.array([f"st{k:02d}" for k in range(self.cfg.stores)], dtype=object)
        return pd.DataFrame(
            {
                "event_time": self._ts(ev["t"].to_numpy()),
                "user_key": key[s],
                "user_key_type": key_type[s],
                "item_id": np.where(item >= 0, self.items.ids[np.maximum(item, 0)], None),
                "event_type": ev["event_type"].to_numpy(),
                "channel": self._channel_names(s_store, s_app)[s],
                "store_id": np.where(s_store[s], store_ids[self.users.home_store[s_user[s]]], None),
                "quantity": ev["quantity"].to_numpy(dtype=np.int32),
                "unit_price": ev["unit_price"].to_numpy(),
                "session_id": s_ids[s],
            }
        )
