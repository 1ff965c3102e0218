"""Email addresses: validation with email-validator, and the form used to compare.

A learner's email is stored as the source wrote it (trimmed), and compared
casefolded as a whole (ID-02): ``Dana.Okafor@Example.COM`` and
``dana.okafor@example.com`` are the same learner's address.

email-validator is the authority on what is valid. Checking a full address costs
tens of microseconds, mostly in the domain part, and a roster repeats a handful of
domains, so ``EmailCheck`` asks the library once per domain and then accepts, on its
own, only addresses whose local part is plain ASCII dot-atom text (a strict subset
of what the library accepts) within the length limits. Anything else goes to the
library in full.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from email_validator import EmailNotValidError, validate_email

from microcred_sync.errors import RecordRejected

#: RFC 5321 limits: the local part, and the whole address.
LOCAL_PART_MAX: Final = 64
ADDRESS_MAX: Final = 254

#: A conservative subset of RFC 5322 dot-atom text for the local part.
_PLAIN_LOCAL_PART: Final = re.compile(r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*")


def normalize_email(text: str) -> str:
    """The form of an address used to compare and to check uniqueness: one Unicode
    spelling (NFC), case folded, as a whole."""
    text = text.strip()
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text.casefold()


class EmailCheck:
    """Validates addresses, remembering which domains email-validator accepted.

    Not thread-safe; a mapper owns one. ``max_domains`` bounds the memory used.
    """

    def __init__(self, max_domains: int = 4096) -> None:
        self._plain_domains: dict[str, bool] = {}
        self._max_domains = max_domains

    def display_form(self, text: str) -> str:
        """Return the trimmed address if it is valid.

        Raises ``RecordRejected("invalid email")``; the reason never repeats the
        address.
        """
        address = text.strip()
        local, at, domain = address.rpartition("@")
        if (
            at
            and len(address) <= ADDRESS_MAX
            and len(local) <= LOCAL_PART_MAX
            and _PLAIN_LOCAL_PART.fullmatch(local) is not None
            and self._is_plain_domain(domain)
        ):
            return address
        return _validate_fully(address)

    def _is_plain_domain(self, domain: str) -> bool:
        """Whether the library accepts ``domain`` as an ASCII domain name."""
        known = self._plain_domains.get(domain)
        if known is None:
            known = _probe_domain(domain)
            if len(self._plain_domains) < self._max_domains:
                self._plain_domains[domain] = known
        return known


def _probe_domain(domain: str) -> bool:
    """Ask email-validator about the domain alone, with a minimal local part."""
    if not domain.isascii():
        return False
    try:
        checked = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    # An IDNA ("xn--") domain has another length once decoded; leave it to the
    # library's full check.
    return checked.ascii_domain == checked.domain


def _validate_fully(address: str) -> str:
    """Run email-validator on the whole address."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        raise RecordRejected("invalid email", field="email") from None
    return address
