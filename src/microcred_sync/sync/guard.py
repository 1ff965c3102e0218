"""The guard: holds a run's deprovisioning back when the source read looks wrong.

A run's suspensions and withdrawals wait for the guard's verdict on the whole read.
They are held when:

- the read returned nothing, ended early, or most of its records were quarantined
  (a wrong column, a broken export): never overridable;
- more of the partner's active learners would be suspended than its policy allows,
  counted over a rolling window so that a drop spread over several runs is caught
  too, or more of its active enrollments would be withdrawn than allowed;
- records without a key were quarantined while someone is to be suspended (the
  suspended may be those very people).

The last two can be overridden once with ``--allow-mass-deprovision``. Creates and
updates go ahead either way; the run ends ``held`` and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..partners import GuardPolicy
from .planner import PlanStats

_OVERRIDE = "rerun with --allow-mass-deprovision if this is intended"


class DeprovisionHistory(Protocol):
    """Where the guard reads the suspensions already applied (the state store)."""

    def applied_deprovisions(self, partner: str, since: datetime) -> int: ...


@dataclass(frozen=True)
class Verdict:
    """Whether to hold the run's deprovisioning, and why."""

    held: bool
    reason: str | None = None
    #: Only a limit can be overridden; a read that looks broken never suspends.
    overridable: bool = False


@dataclass(frozen=True)
class Baseline:
    """The partner before the run: the bases of the guard's shares."""

    active_learners: int
    active_enrollments: int
    #: The job's learners a full read would deprovision if they were absent:
    #: the active ones, and, under the withdraw policy, the suspended ones with
    #: enrollments left. None when not counted.
    deprovisionable: int | None = None


@dataclass(frozen=True)
class _Case:
    """What every rule of the guard looks at."""

    stats: PlanStats
    policy: GuardPolicy
    partner: str
    history: DeprovisionHistory
    now: datetime
    baseline: Baseline


def judge(
    stats: PlanStats,
    policy: GuardPolicy,
    partner: str,
    history: DeprovisionHistory,
    *,
    full_read: bool,
    now: datetime,
    baseline: Baseline,
) -> Verdict:
    """The guard's verdict on one plan; the first rule that holds gives the reason."""
    broken = _broken_read(stats, policy, full_read)
    if broken is not None:
        return Verdict(True, broken)
    case = _Case(stats, policy, partner, history, now, baseline)
    for limit in (_suspension_limit, _withdrawal_limit, _unkeyed_records):
        reason = limit(case)
        if reason is not None:
            return Verdict(True, f"{reason}; {_OVERRIDE}", overridable=True)
    return Verdict(False)


def _broken_read(stats: PlanStats, policy: GuardPolicy, full_read: bool) -> str | None:
    if not stats.read_complete:
        return f"the read ended early: {stats.read_problem}"
    if full_read and stats.read == 0:
        return "the source returned no records"
    # A delta read is a handful of records, and suspends nobody for being absent:
    # its quarantined records are only quarantined.
    if (
        full_read
        and stats.read
        and stats.quarantined / stats.read > policy.max_quarantine_share
    ):
        return (
            f"{stats.quarantined} of {stats.read} records were quarantined, more than "
            f"{policy.max_quarantine_share:.0%}: the source or the mapping looks wrong"
        )
    return None


def _suspension_limit(case: _Case) -> str | None:
    planned, policy = case.stats.counts.by_kind["suspend"], case.policy
    if planned == 0:
        return None
    since = case.now - timedelta(hours=policy.window_hours)
    recent = case.history.applied_deprovisions(case.partner, since)
    total = planned + recent
    base = max(case.baseline.active_learners + recent, 1)
    if policy.max_suspend_count is not None and total > policy.max_suspend_count:
        limit = f"the limit of {policy.max_suspend_count}"
    elif total / base > policy.max_suspend_share:
        limit = f"{policy.max_suspend_share:.0%} of {base} active learners"
    else:
        return None
    return (
        f"{planned} suspensions planned and {recent} applied in the last "
        f"{policy.window_hours} h exceed {limit}"
    )


def _withdrawal_limit(case: _Case) -> str | None:
    planned, share = (
        case.stats.counts.by_kind["withdraw"],
        case.policy.max_withdraw_share,
    )
    base = max(case.baseline.active_enrollments, 1)
    if planned == 0 or planned / base <= share:
        return None
    return (
        f"{planned} withdrawals planned exceed {share:.0%} of {base} active enrollments"
    )


def _unkeyed_records(case: _Case) -> str | None:
    stats = case.stats
    if stats.absent == 0 or stats.unkeyed == 0:
        return None
    return (
        f"{stats.unkeyed} records without a source key were quarantined and "
        f"{stats.absent} learners would be suspended as absent: they may be the same"
        " people"
    )
