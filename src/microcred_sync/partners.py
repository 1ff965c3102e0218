"""Partners and programs: who a job works for, and what learners can be enrolled in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuardPolicy(_Model):
    """How many suspensions a full read may cause before the run is held.

    Counted over a rolling window, so a drop spread over several runs is caught too.
    """

    max_suspend_share: float = Field(default=0.10, ge=0.0, le=1.0)
    max_suspend_count: int | None = Field(default=None, ge=0)
    window_hours: int = Field(default=24, ge=1)
    #: Withdrawals in one run, as a share of the partner's active enrollments.
    max_withdraw_share: float = Field(default=0.10, ge=0.0, le=1.0)
    #: A full read with more quarantined records than this looks broken.
    max_quarantine_share: float = Field(default=0.5, ge=0.0, le=1.0)


class DeprovisionPolicy(_Model):
    """What happens to a learner who left: suspension, then optionally withdrawal."""

    mode: Literal["suspend", "withdraw"] = "suspend"
    withdraw_after_days: int = Field(default=30, ge=0)


class Program(_Model):
    """A micro-credential offered on the platform."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    activity_iri: str = Field(pattern=r"^[a-z][a-z0-9+.-]*://\S+$")
    prerequisites: tuple[str, ...] = ()
    #: What an award of the program counts towards a learner's credits earned
    #: (CE credits, ECTS...); None when the program carries none.
    credits: float | None = Field(default=None, ge=0)


class Partner(_Model):
    """A tenant: an employer or association, with its policies."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    home_page: str | None = Field(default=None, pattern=r"^https?://\S+$")
    guard: GuardPolicy = GuardPolicy()
    deprovision: DeprovisionPolicy = DeprovisionPolicy()
    programs: tuple[Program, ...] = ()


class PartnersFile(_Model):
    """`config/partners.yaml`."""

    partners: tuple[Partner, ...]

    @model_validator(mode="after")
    def _unique(self) -> PartnersFile:
        _reject_duplicates("partners", [partner.id for partner in self.partners])
        return self


class ProgramsFile(_Model):
    """`config/programs.yaml`: the catalogue shared by every partner."""

    programs: tuple[Program, ...]

    @model_validator(mode="after")
    def _unique(self) -> ProgramsFile:
        _reject_duplicates("programs", [program.id for program in self.programs])
        return self


def _reject_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"{what}: id {ident!r} is declared twice")
        seen.add(ident)
