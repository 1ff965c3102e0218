"""An award as an Open Badges 3.0 ``OpenBadgeCredential``, optionally a VC-JWT.

The credential (OB 3.0, on the W3C Verifiable Credentials Data Model 2.0):

- ``@context``: VC 2.0 and OB 3.0 (context 3.0.3); ``type``: VerifiableCredential
  and OpenBadgeCredential; ``id``: ``urn:uuid:`` + UUID v5 over partner and award,
  so the same award always gives the same credential.
- ``issuer``: the issuer ``Profile`` from configuration.
- ``validFrom``: when the award was issued, in UTC, to the second (the JWT's ``nbf``
  must equal it, and ``nbf`` counts whole seconds).
- ``credentialSubject``: an ``AchievementSubject`` whose ``id`` is a pseudonymous
  ``urn:uuid:`` of the learner (never an email), identified to the partner by an
  ``IdentityObject``: the SHA-256 hash of the lower-cased email, or of the partner's
  account number, salted (``sha256$<hex>``, ``hashed: true``, ``salt``), as OB 3.0
  defines IdentityHash. The salt is derived from the award, so the document is the
  same every time it is built; it is published in the credential, as salts are.
- the ``Achievement`` from the program: id, type, name, description, criteria.

Signing (OB 3.0 section 8.2, JSON Web Token Proof Format): a compact JWS whose
payload is the credential plus ``iss`` (issuer id), ``jti`` (credential id), ``nbf``
(validFrom) and ``sub`` (subject id); header ``alg`` EdDSA (Ed25519), ``typ`` JWT and
either ``kid`` (an IRI that dereferences to the public JWK) or the public ``jwk``.
The key comes from a secret holding an Ed25519 private key as PEM (PKCS#8) or JWK.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import OKPAlgorithm
from pydantic import SecretStr

from ..changes import derived_id
from .errors import SigningKeyError, StatementInputError

Credential = dict[str, Any]

VC_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT: Final = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
ALGORITHM: Final = "EdDSA"

RecipientMode = Literal["email", "account"]


@dataclass(frozen=True, slots=True)
class IssuerProfile:
    """The issuer as configured: an IRI id and a name, optionally url and email."""

    id: str
    name: str
    url: str | None = None
    email: str | None = None

    def to_json(self) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "id": self.id,
            "type": ["Profile"],
            "name": self.name,
        }
        if self.url:
            profile["url"] = self.url
        if self.email:
            profile["email"] = self.email
        return profile


@dataclass(frozen=True, slots=True)
class Achievement:
    """The achievement a program stands for: what OB 3.0's ``Achievement`` needs."""

    id: str
    name: str
    description: str
    criteria: str
    #: OB 3.0 AchievementType (``Certificate``, ``Badge``, ``MicroCredential``...).
    achievement_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        achievement: dict[str, Any] = {
            "id": self.id,
            "type": ["Achievement"],
            "name": self.name,
            "description": self.description,
            "criteria": {"narrative": self.criteria},
        }
        if self.achievement_type:
            achievement["achievementType"] = self.achievement_type
        return achievement


@dataclass(frozen=True, slots=True)
class BadgeAward:
    """An award to issue: whose, for which achievement, when, and how the partner
    recognises the recipient (``recipient``: by email or by account number)."""

    partner: str
    award_id: str
    learner_id: str
    achievement: Achievement
    issued_at: datetime
    recipient: RecipientMode
    email: str | None = None
    number: str | None = None


def credential_id(partner: str, award_id: str) -> str:
    """The credential's id: ``urn:uuid:`` + UUID v5 over partner and award."""
    return "urn:uuid:" + derived_id(f"credential/{partner}/{award_id}")


def identity_hash(identity: str, salt: str) -> str:
    """OB 3.0 IdentityHash: ``sha256$`` + hex SHA-256 of identity then salt, UTF-8."""
    digest = hashlib.sha256((identity + salt).encode("utf-8")).hexdigest()
    return f"sha256${digest}"


def open_badge_credential(
    issuer: IssuerProfile, award: BadgeAward, now: datetime | None = None
) -> Credential:
    """The award as an unsigned ``OpenBadgeCredential``.

    Raises StatementInputError when the issue time is naive or in the future, or
    the recipient's email or number (per ``award.recipient``) is missing.
    """
    subject: dict[str, Any] = {
        "id": "urn:uuid:" + derived_id(f"recipient/{award.partner}/{award.learner_id}"),
        "type": ["AchievementSubject"],
        "identifier": [_identity_object(award)],
        "achievement": award.achievement.to_json(),
    }
    return {
        "@context": [VC_CONTEXT, OB_CONTEXT],
        "id": credential_id(award.partner, award.award_id),
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": award.achievement.name,
        "issuer": issuer.to_json(),
        "validFrom": _valid_from(award.issued_at, now),
        "credentialSubject": subject,
    }


def _identity_object(award: BadgeAward) -> dict[str, Any]:
    # The partner recognises the recipient by the email (lower-cased, as mbox) or
    # by its own account number; either is published only as a salted hash.
    if award.recipient == "email":
        field, kind, identity = "email", "emailAddress", (award.email or "").lower()
    else:
        field, kind, identity = "number", "accountId", award.number or ""
    identity = identity.strip()
    if not identity:
        raise StatementInputError(
            f"the learner has no {field} to identify the recipient by",
            field=field,
            partner=award.partner,
            learner=award.learner_id,
        )
    salt = derived_id(f"salt/{award.partner}/{award.award_id}").replace("-", "")
    return {
        "type": "IdentityObject",
        "identityHash": identity_hash(identity, salt),
        "identityType": kind,
        "hashed": True,
        "salt": salt,
    }


def _valid_from(moment: datetime, now: datetime | None) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StatementInputError("the issue time has no UTC offset", field="issued_at")
    if moment > (now or datetime.now(UTC)):
        raise StatementInputError("the issue time is in the future", field="issued_at")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key and how verifiers find its public half."""

    private: Ed25519PrivateKey
    #: An IRI that dereferences to the public JWK; the JWK is embedded when None.
    kid: str | None = None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (never with ``d``)."""
        return dict(OKPAlgorithm.to_jwk(self.public, as_dict=True))


def load_signing_key(secret: SecretStr | str, kid: str | None = None) -> SigningKey:
    """The Ed25519 key in a secret's text: PEM (PKCS#8) or a JWK with ``d``.

    Raises SigningKeyError, which never shows the text, for anything else.
    """
    text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return SigningKey(_from_pem(text), kid)
    if text.startswith("{"):
        return SigningKey(_from_jwk(text), kid)
    raise SigningKeyError(
        "the signing key secret is neither PEM nor JWK text",
        hint="an Ed25519 private key: PEM (PKCS#8) or a JWK with kty OKP, crv Ed25519",
    )


def _from_pem(text: str) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(text.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SigningKeyError(
            "the signing key secret is not a readable, unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"the signing key is a {type(key).__name__.lstrip('_')}, not Ed25519"
        )
    return key


def _from_jwk(text: str) -> Ed25519PrivateKey:
    try:
        document = json.loads(text)
    except ValueError:
        raise SigningKeyError("the signing key secret is not valid JSON") from None
    if not isinstance(document, dict):
        raise SigningKeyError("the signing key secret is not a JWK object")
    if document.get("kty") != "OKP" or document.get("crv") != "Ed25519":
        raise SigningKeyError("the signing key JWK is not kty OKP with crv Ed25519")
    if "d" not in document:
        raise SigningKeyError("the signing key JWK is a public key (it has no d)")
    try:
        key = OKPAlgorithm.from_jwk(document)
    except (jwt.InvalidKeyError, ValueError):
        raise SigningKeyError("the signing key JWK cannot be read") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("the signing key JWK is not an Ed25519 private key")
    return key


def sign_credential(credential: Credential, key: SigningKey) -> str:
    """The credential as a VC-JWT (compact JWS), per OB 3.0 section 8.2."""
    valid_from = datetime.strptime(credential["validFrom"], "%Y-%m-%dT%H:%M:%SZ")
    claims = dict(credential)
    claims["iss"] = credential["issuer"]["id"]
    claims["jti"] = credential["id"]
    claims["sub"] = credential["credentialSubject"]["id"]
    claims["nbf"] = int(valid_from.replace(tzinfo=UTC).timestamp())
    # Only the JOSE headers section 8.2.3 allows: alg, typ and kid or jwk.
    headers: dict[str, Any] = {"typ": "JWT"}
    if key.kid:
        headers["kid"] = key.kid
    else:
        headers["jwk"] = key.public_jwk()
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers=headers)


def verify_credential_jwt(token: str, public_key: Ed25519PublicKey) -> Credential:
    """The credential in a VC-JWT, after checking its signature and the claims that
    must match it (section 8.2.6); raises ``jwt.InvalidTokenError`` otherwise."""
    claims: dict[str, Any] = jwt.decode(
        token,
        public_key,
        algorithms=[ALGORITHM],
        options={"require": ["iss", "jti", "nbf", "sub"]},
    )
    expected = {
        "iss": claims["issuer"]["id"],
        "jti": claims["id"],
        "sub": claims["credentialSubject"]["id"],
        "nbf": int(
            datetime.strptime(claims["validFrom"], "%Y-%m-%dT%H:%M:%SZ")
            .replace(tzinfo=UTC)
            .timestamp()
        ),
    }
    for name, value in expected.items():
        if claims[name] != value:
            raise jwt.InvalidTokenError(f"claim {name} does not match the credential")
    return {name: value for name, value in claims.items() if name not in expected}
