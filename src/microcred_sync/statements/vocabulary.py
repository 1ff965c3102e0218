"""The IRIs statements use: ADL verbs and activity types, and award verbs in use.

ADL's verbs and activity types are those of the ADL vocabulary
(``http://adlnet.gov/expapi/...``), as ADL's SCORM-in-xAPI profile uses them. An award
verb is configurable because LRSs and reports in the field expect different ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Verb:
    """An xAPI verb: its IRI and its display name in English."""

    id: str
    display: str

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "display": {"en-US": self.display}}


_ADL: Final = "http://adlnet.gov/expapi/verbs/"

PASSED: Final = Verb(_ADL + "passed", "passed")
FAILED: Final = Verb(_ADL + "failed", "failed")
COMPLETED: Final = Verb(_ADL + "completed", "completed")
VOIDED: Final = Verb(_ADL + "voided", "voided")

#: "earned" from the Tin Can registry: the one Open edX and most LRS reports read.
EARNED: Final = Verb("http://id.tincanapi.com/verb/earned", "earned")
#: "earned" from the Open Badges xAPI vocabulary (1EdTech's draft, OB 2 era).
EARNED_OPEN_BADGES: Final = Verb(
    "http://specification.openbadges.org/xapi/verbs/earned.json", "earned"
)

_ACTIVITIES: Final = "http://adlnet.gov/expapi/activities/"

COURSE: Final = _ACTIVITIES + "course"
LESSON: Final = _ACTIVITIES + "lesson"
#: The activity type of a badge (Activity Streams), as the OB xAPI vocabulary uses it.
BADGE: Final = "http://activitystrea.ms/schema/1.0/badge"

#: The ``result.extensions`` key of the OB xAPI vocabulary for the credential
#: ("badge assertion"); its value is ``{"@id": <credential id>}``.
CREDENTIAL_EXTENSION: Final = (
    "http://specification.openbadges.org/xapi/extensions/badgeassertion.json"
)
