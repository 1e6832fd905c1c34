"""The tier playbook: what each value tier's users are shown, as defaults for the request's rules.

- core users get new arrivals first (early access): an exploration share of new items, a wider "new" window;
- potential users get need-triggered items: their decision path already leads the candidates, and
  nothing they bought this fortnight is repeated unless it is due;
- silent users get win-back picks: a share of promoted items (what is on offer), and nothing held back.

A rule the request sets itself always wins over its tier's default. The playbook is a setting
(`SIYU_TIER_RULES`, JSON: tier -> rule fields), so operations can change it without a release.
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from serving.recommend.rules import Rules

VALUE_TIERS = {2: "core", 1: "potential", 0: "silent"}  # tiers.history's value_tier_rank codes
DEFAULT_TIER_RULES: dict[str, dict[str, float]] = {
    "core": {"exploration_share": 0.2, "new_item_days": 30},
    "potential": {"exploration_share": 0.1, "exclude_bought_within_days": 14},
    "silent": {"promotion_share": 0.3, "exclude_bought_within_days": 0},
}


def tier_of(user: dict[str, float | None]) -> str | None:
    """The user's value tier from their online row (None: no tier yet, or an unknown code)."""
    rank = user.get("value_tier_rank")
    if rank is None or (isinstance(rank, float) and math.isnan(rank)):
        return None
    return VALUE_TIERS.get(round(rank))


def rules_for(tier: str | None, requested: Rules, playbook: dict[str, dict[str, float]]) -> Rules:
    """The request's rules over the tier's defaults: fields the request set are kept as given."""
    defaults = playbook.get(tier or "", {})
    given = requested.model_fields_set
    merged = {
        **{name: value for name, value in defaults.items() if name not in given},
        **requested.model_dump(include=given),
    }
    return Rules(**merged)


def checked_playbook(playbook: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The playbook, each tier's rules validated once at start-up (a typo fails the start, never a request)."""
    for tier, fields in playbook.items():
        if tier not in VALUE_TIERS.values():
            raise ValueError(f"tier playbook: unknown tier {tier!r} (expected {', '.join(VALUE_TIERS.values())})")
        try:
            Rules(**fields)
        except ValidationError as exc:
            raise ValueError(f"tier playbook: rules for {tier!r} are invalid: {exc}") from exc
    return playbook
