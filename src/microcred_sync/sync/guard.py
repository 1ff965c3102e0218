"""The guard: holds a run's deprovisioning back when the source read looks wrong.

A read that returned nothing, ended early, or would suspend more of the partner's
active learners than the partner's policy allows (counted over a rolling window, so
a drop spread over several runs is caught too) never suspends anyone. Creates and
updates still go ahead; the run ends ``held`` and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..partners import GuardPolicy
from .planner import PlanStats


class DeprovisionHistory(Protocol):
    def active_learners(self, partner: str) -> int: ...

    def applied_deprovisions(self, partner: str, since: datetime) -> int: ...


@dataclass(frozen=True)
class Verdict:
    """Whether to hold the run's deprovisioning, and why."""

    held: bool
    reason: str | None = None
    #: Only a limit can be overridden; an empty or truncated read never suspends.
    overridable: bool = False


def judge(
    stats: PlanStats,
    policy: GuardPolicy,
    partner: str,
    history: DeprovisionHistory,
    *,
    full_read: bool,
    now: datetime,
    active_before: int,
) -> Verdict:
    """The guard's verdict on one plan.

    ``active_before`` is the number of the partner's active learners before the run
    (the base of the share).
    """
    if not stats.read_complete:
        return Verdict(True, f"the read ended early: {stats.read_problem}")
    if full_read and stats.read == 0:
        return Verdict(True, "the source returned no records")
    planned = stats.counts.by_kind["suspend"]
    if planned == 0:
        return Verdict(False)
    since = now - timedelta(hours=policy.window_hours)
    recent = history.applied_deprovisions(partner, since)
    total = planned + recent
    base = max(active_before + recent, 1)
    if policy.max_suspend_count is not None and total > policy.max_suspend_count:
        limit = f"the limit of {policy.max_suspend_count}"
        return Verdict(
            True, _too_many(planned, recent, policy, limit), overridable=True
        )
    if total / base > policy.max_suspend_share:
        share = f"{policy.max_suspend_share:.0%} of {base} active learners"
        return Verdict(
            True, _too_many(planned, recent, policy, share), overridable=True
        )
    return Verdict(False)


def _too_many(planned: int, recent: int, policy: GuardPolicy, limit: str) -> str:
    window = f"{policy.window_hours} h"
    return (
        f"{planned} suspensions planned and {recent} applied in the last {window} "
        f"exceed {limit}; rerun with --allow-mass-deprovision if this is intended"
    )
