"""Awards as Open Badges 3.0 credentials, checked against 1EdTech's JSON schema, and
signed as VC-JWTs that verify with the public key."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from jwt.algorithms import OKPAlgorithm
from pydantic import SecretStr

from microcred_sync.statements import badges, vocabulary, xapi
from microcred_sync.statements.errors import SigningKeyError, StatementInputError

NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
ISSUED = datetime(2026, 3, 31, 16, 45, 12, 345678, tzinfo=UTC)

ISSUER = badges.IssuerProfile(
    id="https://credentials.example-platform.org/issuers/main",
    name="Example Platform Credentials",
    url="https://example-platform.org/",
)
ACHIEVEMENT = badges.Achievement(
    id="https://programs.example.org/data-analytics-foundations/achievement",
    name="Data Analytics Foundations",
    description="Foundations of data analysis for analysts.",
    criteria="Pass every course of the program with at least 70%.",
    achievement_type="MicroCredential",
)
AWARD = badges.BadgeAward(
    partner="example-corp",
    award_id="a-0001",
    learner_id="5b1f4f0e-0000-5000-8000-000000000001",
    achievement=ACHIEVEMENT,
    issued_at=ISSUED,
    recipient="email",
    email="Dana.Okafor@Example.com",
    number="E-01077",
)
Check = Callable[[Any], Any]


def test_credential_passes_the_ob_schema(valid_credential: Check) -> None:
    """An award becomes an OpenBadgeCredential that 1EdTech's schema accepts."""
    credential = badges.open_badge_credential(ISSUER, AWARD, now=NOW)
    valid_credential(credential)
    assert credential["@context"] == [
        "https://www.w3.org/ns/credentials/v2",
        "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
    ]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["issuer"] == {
        "id": ISSUER.id,
        "type": ["Profile"],
        "name": ISSUER.name,
        "url": ISSUER.url,
    }
    assert credential["validFrom"] == "2026-03-31T16:45:12Z"
    assert credential["credentialSubject"]["achievement"] == {
        "id": ACHIEVEMENT.id,
        "type": ["Achievement"],
        "name": ACHIEVEMENT.name,
        "description": ACHIEVEMENT.description,
        "criteria": {"narrative": ACHIEVEMENT.criteria},
        "achievementType": "MicroCredential",
    }


def test_account_recipient_passes_the_ob_schema(valid_credential: Check) -> None:
    """A recipient known by the partner's account number is valid too."""
    by_account = dataclasses.replace(AWARD, recipient="account", email=None)
    credential = valid_credential(badges.open_badge_credential(ISSUER, by_account))
    identity = credential["credentialSubject"]["identifier"][0]
    assert identity["identityType"] == "accountId"
    assert identity["identityHash"] == badges.identity_hash("E-01077", identity["salt"])


def test_credential_id_is_stable_uuid5() -> None:
    """The same award gives the same urn:uuid v5 credential, another award another."""
    first = badges.open_badge_credential(ISSUER, AWARD, now=NOW)
    again = badges.open_badge_credential(ISSUER, AWARD, now=NOW + timedelta(days=9))
    assert first == again
    assert first["id"].startswith("urn:uuid:")
    assert uuid.UUID(first["id"].removeprefix("urn:uuid:")).version == 5
    other = dataclasses.replace(AWARD, award_id="a-0002")
    assert badges.open_badge_credential(ISSUER, other, now=NOW)["id"] != first["id"]
    assert first["id"] == badges.credential_id("example-corp", "a-0001")


def test_identity_hash_matches_the_spec_example(ob_schema: dict[str, Any]) -> None:
    """IdentityHash as OB 3.0 defines it: the schema's own example (a@example.com
    salted with Kosher) is reproduced."""
    comment = ob_schema["$defs"]["IdentityObject"]["properties"]["identityHash"][
        "$comment"
    ]
    found = re.search(
        r"'(sha256\$[0-9a-f]{64})' represents the result of calculating a SHA-256 "
        r"hash on the string '([^']+)'.*?salted with '([^']+)'",
        comment,
    )
    assert found is not None, "the schema's IdentityHash example moved"
    expected, salted, salt = found.groups()
    identity = salted.removesuffix(salt)
    assert badges.identity_hash(identity, salt) == expected


def test_recipient_is_a_salted_hash_of_the_lowercased_email() -> None:
    """The email is never in the credential: only its salted SHA-256 hash."""
    credential = badges.open_badge_credential(ISSUER, AWARD, now=NOW)
    identity = credential["credentialSubject"]["identifier"][0]
    assert identity["type"] == "IdentityObject"
    assert identity["hashed"] is True
    assert identity["identityType"] == "emailAddress"
    assert identity["identityHash"] == badges.identity_hash(
        "dana.okafor@example.com", identity["salt"]
    )
    text = json.dumps(credential).lower()
    assert "okafor" not in text and "e-01077" not in text


def test_recipient_without_identifier_is_refused() -> None:
    """No email for an email recipient (or no number for an account): refused."""
    with pytest.raises(StatementInputError) as raised:
        badges.open_badge_credential(ISSUER, dataclasses.replace(AWARD, email=None))
    assert raised.value.field == "email"
    no_number = dataclasses.replace(AWARD, recipient="account", number="")
    with pytest.raises(StatementInputError) as raised:
        badges.open_badge_credential(ISSUER, no_number)
    assert raised.value.field == "number"


def test_naive_or_future_issue_time_is_refused() -> None:
    """validFrom is never a guess: a naive or future issue time is refused."""
    naive = dataclasses.replace(AWARD, issued_at=datetime(2026, 3, 31))
    with pytest.raises(StatementInputError, match="UTC offset"):
        badges.open_badge_credential(ISSUER, naive, now=NOW)
    with pytest.raises(StatementInputError, match="future"):
        badges.open_badge_credential(ISSUER, AWARD, now=ISSUED - timedelta(seconds=1))


def _private_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _pem(key: Any, encryption: Any = None) -> str:
    return key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, encryption or NoEncryption()
    ).decode("ascii")


def _jwk(key: ed25519.Ed25519PrivateKey) -> str:
    return json.dumps(OKPAlgorithm.to_jwk(key, as_dict=True))


def _header(token: str) -> dict[str, Any]:
    encoded = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    )
    return decoded


@pytest.mark.parametrize("form", ["pem", "jwk"])
def test_signed_credential_round_trips(form: str, valid_credential: Check) -> None:
    """A credential signed with an Ed25519 key from PEM or JWK text verifies with
    the public key and gives back the same credential; claims match it."""
    private = _private_key()
    text = _pem(private) if form == "pem" else _jwk(private)
    key = badges.load_signing_key(SecretStr(text))
    credential = badges.open_badge_credential(ISSUER, AWARD, now=NOW)
    token = badges.sign_credential(credential, key)

    assert badges.verify_credential_jwt(token, private.public_key()) == credential
    claims = jwt.decode(token, private.public_key(), algorithms=["EdDSA"])
    assert claims["iss"] == ISSUER.id
    assert claims["jti"] == credential["id"]
    assert claims["sub"] == credential["credentialSubject"]["id"]
    assert claims["nbf"] == int(ISSUED.replace(microsecond=0).timestamp())
    valid_credential(claims)
    header = _header(token)
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
    assert set(header) == {"alg", "typ", "jwk"}
    assert "d" not in header["jwk"]


def test_signed_credential_with_kid_names_the_key() -> None:
    """With a key id configured the header names it and carries no key."""
    key = badges.load_signing_key(
        _pem(_private_key()), kid="https://credentials.example-platform.org/keys/1"
    )
    token = badges.sign_credential(badges.open_badge_credential(ISSUER, AWARD), key)
    assert _header(token) == {
        "alg": "EdDSA",
        "typ": "JWT",
        "kid": "https://credentials.example-platform.org/keys/1",
    }


def test_tampered_or_foreign_token_does_not_verify() -> None:
    """Another key, or a payload changed after signing, fails verification."""
    private = _private_key()
    token = badges.sign_credential(
        badges.open_badge_credential(ISSUER, AWARD),
        badges.load_signing_key(_pem(private)),
    )
    with pytest.raises(jwt.InvalidSignatureError):
        badges.verify_credential_jwt(token, _private_key().public_key())
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["name"] = "Something else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    with pytest.raises(jwt.InvalidSignatureError):
        badges.verify_credential_jwt(
            f"{header}.{forged.decode()}.{signature}", private.public_key()
        )


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not a key at all", "neither PEM nor JWK"),
        (_pem(ec.generate_private_key(ec.SECP256R1())), "not Ed25519"),
        (_pem(_private_key(), BestAvailableEncryption(b"pw")), "unencrypted PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "PEM"),
        ("{not json", "not valid JSON"),
        ('{"kty": "RSA", "n": "x", "e": "AQAB"}', "kty OKP"),
        (
            json.dumps(OKPAlgorithm.to_jwk(_private_key().public_key(), as_dict=True)),
            "public key",
        ),
        ('{"kty": "OKP", "crv": "Ed25519", "d": "AA", "x": "AA"}', "cannot be read"),
    ],
)
def test_unusable_keys_are_refused_without_showing_them(
    secret: str, message: str
) -> None:
    """A secret that is not an Ed25519 private key in PEM or JWK: a clear error
    that never repeats the secret's text."""
    with pytest.raises(SigningKeyError, match=message) as raised:
        badges.load_signing_key(SecretStr(secret))
    body = secret.strip().splitlines()
    assert all(line not in str(raised.value) for line in body if len(line) > 12)


def test_award_statement_carries_the_credential_id(valid_credential: Check) -> None:
    """The award's xAPI statement names the very credential that was issued."""
    credential = valid_credential(badges.open_badge_credential(ISSUER, AWARD, now=NOW))
    context = xapi.StatementContext(
        partner="example-corp", identity="mbox", platform="microcred-sync"
    )
    statement = xapi.award_statement(
        context,
        xapi.AwardFact(
            award_id=AWARD.award_id,
            learner=xapi.LearnerIdentity(AWARD.learner_id, email=AWARD.email),
            program=xapi.ActivityRef(
                "https://programs.example.org/data-analytics-foundations",
                ACHIEVEMENT.name,
            ),
            enrollment_id="0b9f6a52-3c1e-5d7a-9a43-1f2e3d4c5b6a",
            issued_at=ISSUED,
            achievement=xapi.ActivityRef(
                ACHIEVEMENT.id, ACHIEVEMENT.name, vocabulary.BADGE
            ),
            credential_id=credential["id"],
        ),
        now=NOW,
    )
    extensions = statement["result"]["extensions"]
    assert list(extensions.values()) == [{"@id": credential["id"]}]


@pytest.mark.parametrize("missing", ["issuer", "validFrom", "credentialSubject"])
def test_schema_check_refuses_an_incomplete_credential(
    valid_credential: Check, missing: str
) -> None:
    """The schema check is real: a credential missing a required part fails it."""
    credential = badges.open_badge_credential(ISSUER, AWARD, now=NOW)
    del credential[missing]
    with pytest.raises(pytest.fail.Exception, match=missing):
        valid_credential(credential)
