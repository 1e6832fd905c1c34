"""The champion gate: a challenger replaces the champion only when it wins on the same held-out rows.

Each model's registered metrics were measured on whatever data existed when it was trained, so they do
not compare. The gate re-scores both versions now, on one held-out set built from today's data, and
promotes when the challenger beats the champion by the configured margin on the deciding metric and is
no worse on the guard metric (conversion: AUC decides, log loss guards; decision path: validation
NDCG@10 decides, HR@10 guards). Refusals print the comparison and leave the aliases untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from siyu.settings import Settings
from siyu.tracking import CHALLENGER, CHAMPION, alias_version, client


class PromotionError(RuntimeError):
    """The gate cannot judge (nothing to compare, incompatible models): one sentence naming the problem."""


@dataclass(frozen=True)
class Rule:
    """How a contest is decided: `decide` must improve by `margin`; `guard` must not get worse by more than
    `tolerance`. `higher_is_better` says which way each metric points."""

    decide: str
    guard: str
    margin: float
    tolerance: float
    higher_is_better: dict[str, bool]

    def gain(self, metric: str, challenger: float, champion: float) -> float:
        """How much better the challenger is on `metric` (negative: worse)."""
        return challenger - champion if self.higher_is_better[metric] else champion - challenger


@dataclass
class Verdict:
    model_name: str
    challenger: str
    champion: str | None
    metrics: dict[str, tuple[float, float | None]] = field(default_factory=dict)  # metric -> (challenger, champion)
    promoted: bool = False
    reason: str = ""


# A contest scores one registered version on the held-out rows it built once: metric name -> value.
Scorer = Callable[[str], dict[str, float]]


def judge(name: str, challenger: str, champion: str | None, score: Scorer, rule: Rule) -> Verdict:
    """Score both versions with `score` and apply `rule`; a missing champion means the challenger wins."""
    mine = score(challenger)
    theirs = score(champion) if champion is not None else {}
    verdict = Verdict(name, challenger, champion, {k: (mine[k], theirs.get(k)) for k in mine})
    if champion is None:
        verdict.promoted, verdict.reason = True, "no champion yet"
        return verdict
    if champion == challenger:
        verdict.reason = f"version {challenger} is already the champion"
        return verdict
    gain = rule.gain(rule.decide, mine[rule.decide], theirs[rule.decide])
    guard = rule.gain(rule.guard, mine[rule.guard], theirs[rule.guard])
    if gain < rule.margin:
        verdict.reason = f"{rule.decide} gain {gain:+.4f} is below the margin {rule.margin:g}"
    elif guard < -rule.tolerance:
        verdict.reason = f"{rule.guard} is worse by {-guard:.4f} (tolerance {rule.tolerance:g})"
    else:
        verdict.promoted = True
        verdict.reason = f"{rule.decide} gain {gain:+.4f} clears the margin {rule.margin:g}"
    return verdict


def contenders(settings: Settings, name: str, version: str | None) -> tuple[str, str | None]:
    """(challenger, champion) versions: `version` or the @challenger alias, against the @champion alias."""
    challenger = version or alias_version(settings, name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"no @{CHALLENGER} version of {name!r} is registered: train one first")
    try:
        client(settings).get_model_version(name, challenger)
    except Exception as exc:  # MlflowException for an unknown version; anything else: the registry is unreachable
        raise PromotionError(f"version {challenger} of {name!r} cannot be read from the registry: {exc}") from exc
    return challenger, alias_version(settings, name, CHAMPION)


def crown(settings: Settings, verdict: Verdict) -> None:
    """Move @champion to the challenger (only for a promoting verdict)."""
    if verdict.promoted:
        client(settings).set_registered_model_alias(verdict.model_name, CHAMPION, verdict.challenger)
