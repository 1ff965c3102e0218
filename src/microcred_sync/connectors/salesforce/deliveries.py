"""What the results flow puts in the outbox of a salesforce sink: one write-back
per award, one per chosen result, and the learner's Contact as its whole state.

Every payload is exactly what will be written (``writeback.SalesforceWriter``
reads it): ``write: upsert`` names the object, its external id field and value,
and the fields; ``write: update`` names a record by its Id (the Contact) and the
fields. Fields come from the connector's specs: a field left out is left
unchanged, ``value: null`` clears it, ``value: ""`` writes empty text.

An award's or a result's id is derived from the sink and what it describes, so
enqueuing it twice stores it once and a resend upserts the same record. The
Contact's entry is derived from the sink and the learner: its payload is the
learner's state computed from all of the learner's awards (the latest one, the
credits of all), and the flow stores it with ``Outbox.replace``, so a newer state
takes the place of an older one whatever became of it, and an award delivered
late or twice never sets the Contact back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...changes import derived_id
from ...outbox.facts import award_facts as shared_award_facts
from ...outbox.facts import field_values
from ...outbox.store import NewDelivery
from ...partners import Program
from ...platform.sql import LearnerIdentityRow
from ...results.records import AwardRecord, ResultRecord
from ...statements.badges import credential_id as badge_credential_id
from ...statements.scorm import Outcome
from .config import ResultsWriteback, SalesforceConnector, WritebackConfig


def writeback_id(partner: str, sink: str, award_id: str) -> str:
    """The outbox id of an award's write-back to one sink."""
    return derived_id(f"writeback/{partner}/{sink}/{award_id}")


def result_writeback_id(partner: str, sink: str, result_id: str) -> str:
    """The outbox id of a result's write-back to one sink."""
    return derived_id(f"writeback/{partner}/{sink}/result/{result_id}")


def contact_writeback_id(partner: str, sink: str, learner_id: str) -> str:
    """The outbox id of a learner's Contact state at one sink (one per learner)."""
    return derived_id(f"writeback/{partner}/{sink}/contact/{learner_id}")


def is_state(payload: Mapping[str, Any]) -> bool:
    """Whether a write-back payload is a whole state that a newer one replaces."""
    return payload.get("write") == "update"


# -- facts ---------------------------------------------------------------------


def award_facts(
    award: AwardRecord, learner: LearnerIdentityRow, **names: str | None
) -> dict[str, Any]:
    """What a field spec's ``from`` may name, for one award (``AWARD_FACTS``):
    the facts every write-back has (``names``: its program title and credential
    id), and the Contact."""
    return {
        **shared_award_facts(award, learner, **names),
        # The roster's key is the Contact's Id: the learner's source key.
        "contact_id": learner.external_key,
    }


def result_facts(
    result: ResultRecord,
    learner: LearnerIdentityRow,
    outcome: Outcome,
    *,
    program_title: str | None = None,
) -> dict[str, Any]:
    """What a field spec's ``from`` may name, for one result (``RESULT_FACTS``);
    completion, success and score as the result says them in xAPI terms (SCORM
    data translated)."""
    score = outcome.score
    return {
        "result_id": result.id,
        "program": result.program,
        "program_title": program_title,
        "activity_iri": result.activity_iri,
        "recorded_at": result.recorded_at.isoformat(),
        "completion": outcome.completion,
        "success": outcome.success,
        "score_scaled": score.scaled if score else None,
        "score_raw": score.raw if score else None,
        "score_min": score.min if score else None,
        "score_max": score.max if score else None,
        "duration": outcome.duration,
        "learner_id": result.learner_id,
        "contact_id": learner.external_key,
        "email": learner.email,
    }


def contact_facts(
    partner: str,
    learner: LearnerIdentityRow,
    awards: Iterable[AwardRecord],
    programs: Mapping[str, Program],
) -> dict[str, Any] | None:
    """The learner's state (``CONTACT_FACTS``) from all of its awards: the facts
    of the latest one (issued last; the id breaks a tie), the credits of the
    programs of all of them, and how many. Only awards of ``programs`` count;
    None without one."""
    # An award of a program not offered is quarantined by the flow: not counted.
    unique = {award.id: award for award in awards if award.program in programs}
    if not unique:
        return None
    latest = max(unique.values(), key=lambda award: (award.issued_at, award.id))
    facts = award_facts(
        latest,
        learner,
        program_title=programs[latest.program].title,
        credential_id=badge_credential_id(partner, latest.id),
    )
    facts["credits_earned"] = float(
        sum(programs[award.program].credits or 0.0 for award in unique.values())
    )
    facts["awards_earned"] = len(unique)
    return facts


def chosen(selection: ResultsWriteback, result: ResultRecord, outcome: Outcome) -> bool:
    """Whether the connector's ``results`` section takes this result."""
    if selection.programs and result.program not in selection.programs:
        return False
    if outcome.verb is None:
        return False
    if selection.only == "passed":
        return outcome.success is True
    if selection.only == "completed":
        return outcome.completion is True or outcome.success is True
    return True


# -- deliveries ----------------------------------------------------------------


def writeback_delivery(
    config: SalesforceConnector,
    sink: str,
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
    run_id: str | None = None,
) -> NewDelivery:
    """The outbox entry that upserts ``award``'s record at the sink ``sink``.

    Raises ValueError when the connector has no ``writeback`` section, or the award
    has no value for the external id.
    """
    writeback = config.writeback
    if writeback is None:
        raise ValueError(f"connector {sink!r} has no writeback section")
    facts = award_facts(
        award, learner, program_title=program_title, credential_id=credential_id
    )
    return _upsert_delivery(
        config,
        sink,
        writeback,
        facts,
        delivery_id=writeback_id(config.partner, sink, award.id),
        run_id=run_id,
    )


def result_writeback_delivery(
    config: SalesforceConnector,
    sink: str,
    result: ResultRecord,
    learner: LearnerIdentityRow,
    outcome: Outcome,
    *,
    program_title: str | None = None,
    run_id: str | None = None,
) -> NewDelivery | None:
    """The outbox entry that upserts ``result``'s record at ``sink``; None when
    the connector writes back no results, or not this one.

    Raises ValueError when the result has no value for the external id.
    """
    selection = config.writeback.results if config.writeback else None
    if selection is None or not chosen(selection, result, outcome):
        return None
    facts = result_facts(result, learner, outcome, program_title=program_title)
    return _upsert_delivery(
        config,
        sink,
        selection,
        facts,
        delivery_id=result_writeback_id(config.partner, sink, result.id),
        run_id=run_id,
    )


def _upsert_delivery(
    config: SalesforceConnector,
    sink: str,
    target: WritebackConfig | ResultsWriteback,
    facts: Mapping[str, Any],
    *,
    delivery_id: str,
    run_id: str | None,
) -> NewDelivery:
    """The outbox entry that upserts one award's or result's record of
    ``target.object``; ValueError when its facts have no external id."""
    described = target.described
    external = facts.get(target.external_id_from)
    if external is None or external == "":
        raise ValueError(f"the {described} has no {target.external_id_from}")
    payload = {
        "write": "upsert",
        f"{described}_id": facts[f"{described}_id"],
        "object": target.object,
        "external_id_field": target.external_id,
        "external_id": str(external),
        "fields": field_values(target.fields, facts),
    }
    return NewDelivery(
        id=delivery_id,
        partner=config.partner,
        sink=sink,
        payload=payload,
        kind="writeback",
        run_id=run_id,
    )


def contact_delivery(
    config: SalesforceConnector,
    sink: str,
    learner: LearnerIdentityRow,
    awards: Iterable[AwardRecord],
    programs: Mapping[str, Program],
    *,
    run_id: str | None = None,
) -> NewDelivery | None:
    """The learner's Contact state at ``sink``, from all of the learner's
    ``awards``; store it with ``Outbox.replace``. None when the connector sets no
    Contact fields, the learner has no Contact Id, or no award."""
    contact = config.writeback.contact if config.writeback else None
    if contact is None or not learner.external_key:
        return None
    facts = contact_facts(config.partner, learner, awards, programs)
    if facts is None:
        return None
    payload = {
        "write": "update",
        "learner_id": learner.id,
        "object": "Contact",
        "id": learner.external_key,
        "fields": field_values(contact.fields, facts),
    }
    return NewDelivery(
        id=contact_writeback_id(config.partner, sink, learner.id),
        partner=config.partner,
        sink=sink,
        payload=payload,
        kind="writeback",
        run_id=run_id,
    )
