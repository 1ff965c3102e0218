"""Email validation, the display form kept, and the form used to compare (ID-02)."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from microcred_sync.errors import RecordRejected
from microcred_sync.mappings.emails import EmailCheck, normalize_email

#: Addresses the fast path and email-validator must agree on.
ADDRESSES = [
    "dana.okafor@example.com",
    "Dana.Okafor@Example.COM",
    "o'brien+hr@corp.example.co.uk",
    "dana..okafor@example.com",
    ".dana@example.com",
    "dana.@example.com",
    "dana@example",
    "dana@localhost",
    "dana@example.local",
    "dana@-example.com",
    "dana@exa_mple.com",
    "dana@ab--cd.com",
    "dana@xn--bcher-kva.com",
    "dana@bücher.com",
    "jürgen.strauss@example.com",
    '"dana okafor"@example.com',
    "Dana Okafor <dana@example.com>",
    "dana@@example.com",
    "dana@example..com",
    "dana@[192.0.2.1]",
    "a" * 64 + "@example.com",
    "a" * 65 + "@example.com",
    "dana@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",
    "dana@" + "a" * 64 + ".com",
    "",
    "@example.com",
    "dana",
]


def _library_accepts(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


@pytest.mark.parametrize("address", ADDRESSES)
def test_check_agrees_with_email_validator(address: str) -> None:
    """EmailCheck accepts exactly what email-validator accepts, twice in a row."""
    check = EmailCheck()
    for _ in range(2):
        try:
            check.display_form(address)
            accepted = True
        except RecordRejected:
            accepted = False
        assert accepted == _library_accepts(address)


def test_valid_email_keeps_its_display_form() -> None:
    """A valid address is stored as written, only trimmed."""
    assert EmailCheck().display_form(" Dana.Okafor@Example.COM ") == (
        "Dana.Okafor@Example.COM"
    )


def test_invalid_email_is_rejected_without_the_address() -> None:
    """An invalid address is rejected as 'invalid email' on the email field."""
    with pytest.raises(RecordRejected) as caught:
        EmailCheck().display_form("dana.okafor@example")
    assert caught.value.reason == "invalid email"
    assert caught.value.field == "email"
    assert "okafor" not in str(caught.value)


def test_normalized_emails_compare_case_insensitively() -> None:
    """ID-02: Dana.Okafor@Example.COM and dana.okafor@example.com are one address."""
    assert normalize_email("Dana.Okafor@Example.COM") == normalize_email(
        "dana.okafor@example.com"
    )
    assert normalize_email("DANA.OKAFOR@example.com ") == "dana.okafor@example.com"


def test_domain_memory_is_bounded() -> None:
    """Beyond max_domains, domains are checked each time and still answered right."""
    check = EmailCheck(max_domains=1)
    assert check.display_form("a@one.example.com") == "a@one.example.com"
    assert check.display_form("b@two.example.com") == "b@two.example.com"
    with pytest.raises(RecordRejected):
        check.display_form("c@two..example.com")
