"""The guard's verdicts, one rule at a time."""

from __future__ import annotations

from datetime import UTC, datetime

from microcred_sync.partners import GuardPolicy
from microcred_sync.sync.guard import Baseline, Verdict, judge
from microcred_sync.sync.planner import PlanStats

NOW = datetime(2026, 12, 3, 2, 30, tzinfo=UTC)


class History:
    def __init__(self, recent: int = 0) -> None:
        self.recent = recent

    def applied_deprovisions(self, partner: str, since: datetime) -> int:
        return self.recent


def stats(read: int = 100, suspend: int = 0, complete: bool = True) -> PlanStats:
    result = PlanStats(read=read, read_complete=complete)
    result.counts.by_kind["suspend"] = suspend
    if not complete:
        result.read_problem = "roster.csv:88: unterminated quote"
    return result


def verdict(
    plan: PlanStats,
    policy: GuardPolicy,
    recent: int = 0,
    active: int = 100,
    enrollments: int = 200,
    full_read: bool = True,
) -> Verdict:
    return judge(
        plan,
        policy,
        "acme",
        History(recent),
        full_read=full_read,
        now=NOW,
        baseline=Baseline(active, enrollments),
    )


def test_within_the_share_goes_ahead() -> None:
    """10 of 100 active is not more than 10%: no hold."""
    assert not verdict(stats(suspend=10), GuardPolicy()).held


def test_above_the_share_is_held_and_overridable() -> None:
    """11 of 100 is held, and an operator may override it."""
    result = verdict(stats(suspend=11), GuardPolicy())
    assert result.held and result.overridable
    assert "11 suspensions planned" in (result.reason or "")


def test_count_limit_holds_even_below_the_share() -> None:
    """max_suspend_count 5 holds 6 suspensions of 1000 learners."""
    policy = GuardPolicy(max_suspend_share=0.5, max_suspend_count=5)
    result = verdict(stats(suspend=6), policy, active=1000)
    assert result.held and "the limit of 5" in (result.reason or "")


def test_recent_suspensions_count_toward_the_window() -> None:
    """6 now and 6 applied earlier today are 12%: held."""
    assert verdict(stats(suspend=6), GuardPolicy(), recent=6).held


def test_empty_or_truncated_read_is_held_and_not_overridable() -> None:
    """No records, or a read that ended early, is held whatever the counts."""
    empty = verdict(stats(read=0), GuardPolicy())
    truncated = verdict(stats(complete=False), GuardPolicy())
    assert empty.held and not empty.overridable
    assert truncated.held and "unterminated quote" in (truncated.reason or "")


def test_mass_withdrawal_is_held() -> None:
    """Withdrawing 21 of 200 active enrollments (a rule gone wrong) is held."""
    plan = stats()
    plan.counts.by_kind["withdraw"] = 21
    result = verdict(plan, GuardPolicy())
    assert result.held and result.overridable
    assert "21 withdrawals planned" in (result.reason or "")
    plan.counts.by_kind["withdraw"] = 20
    assert not verdict(plan, GuardPolicy()).held


def test_mostly_quarantined_read_is_held_for_good() -> None:
    """A read where most records were quarantined (a wrong column) is never applied."""
    plan = stats(read=100, suspend=1)
    plan.quarantined = 60
    result = verdict(plan, GuardPolicy())
    assert result.held and not result.overridable
    assert "60 of 100 records were quarantined" in (result.reason or "")


def test_a_delta_read_of_mostly_bad_records_is_not_held() -> None:
    """Two changed entries, both quarantined: they stay in quarantine, and the
    run is not held (a delta suspends nobody for being absent)."""
    plan = stats(read=2)
    plan.quarantined = 2
    assert not verdict(plan, GuardPolicy(), full_read=False).held


def test_unkeyed_records_hold_absence_suspensions() -> None:
    """A keyless row may be the person about to be suspended as absent: held."""
    plan = stats(suspend=1)
    plan.absent, plan.unkeyed = 1, 1
    result = verdict(plan, GuardPolicy())
    assert result.held and result.overridable
    assert "without a source key" in (result.reason or "")
