"""DNs compared as names (LD-04): escaped commas, parentheses, accents, spacing."""

from __future__ import annotations

import pytest

from microcred_sync.connectors.ldap.dn import canonical_dn, in_group, rdn_value

OKAFOR = "CN=Okafor\\, Dana (Lyon),OU=Équipe Réseau,DC=corp,DC=example,DC=com"


@pytest.mark.parametrize(
    "spelling",
    [
        OKAFOR,
        "cn=okafor\\2C dana (lyon),ou=équipe réseau,dc=corp,dc=example,dc=com",
        "CN=Okafor\\, Dana (Lyon), OU=E\u0301quipe Re\u0301seau, DC=corp,"
        "DC=example,DC=com",
        "cn=OKAFOR\\, DANA (LYON),ou=\\C3\\89quipe R\\C3\\A9seau,"
        "dc=corp,dc=example,dc=com",
    ],
)
def test_one_dn_in_many_spellings_is_one_name(spelling: str) -> None:
    """Case, hex escapes, NFD accents and spaces after commas do not matter."""
    assert canonical_dn(spelling) == canonical_dn(OKAFOR)


def test_a_different_dn_stays_different() -> None:
    """An OU named with a comma is not two OUs."""
    assert canonical_dn("CN=a,OU=x\\, y,DC=c") != canonical_dn("CN=a,OU=x,OU=y,DC=c")


def test_special_characters_survive_canonical_form() -> None:
    """A leading #, a + and a backslash are escaped again, never lost."""
    dn = canonical_dn("CN=\\#lead\\+plus\\\\back,OU=x")
    assert rdn_value(dn) == "#lead+plus\\back"


def test_in_group_by_dn_or_by_name() -> None:
    """A rule names a group by DN, in any spelling, or by its name."""
    groups = (canonical_dn("CN=Sales\\, EMEA,OU=Groups,DC=corp,DC=example,DC=com"),)
    assert in_group(groups, "cn=sales\\2c emea,ou=groups,dc=corp,dc=example,dc=com")
    assert in_group(groups, "Sales, EMEA")
    assert in_group(groups, "sales,  emea")
    assert not in_group(groups, "Sales")
    assert not in_group(groups, "CN=Sales,OU=Groups,DC=corp,DC=example,DC=com")


def test_not_a_dn_is_a_value_error() -> None:
    """Garbage is refused with ValueError, which callers turn into a clear error."""
    with pytest.raises(ValueError, match="not a distinguished name"):
        canonical_dn("no equals sign here, at all")


def test_plain_dns_read_by_the_grammar_match_the_parser() -> None:
    """The fast reading of plainly spelled DNs gives ldap3's parse, value for value:
    cases, inner and trailing spaces, punctuation that needs no escape."""
    import random

    from microcred_sync.connectors.ldap.dn import _PLAIN_DN, _parsed_canonical

    chance = random.Random(4514)
    kinds = ["cn", "CN", "ou", "OU", "dc", "uid", "employeeNumber", "x-Attr"]
    first = "abcXYZ019._@'()-"
    rest = first + "  "
    plain = 0
    for _ in range(3000):
        rdns = []
        for _ in range(chance.randint(1, 5)):
            value = chance.choice(first) + "".join(
                chance.choice(rest) for _ in range(chance.randint(0, 12))
            )
            rdns.append(f"{chance.choice(kinds)}={value}")
        dn = ",".join(rdns)
        plain += bool(_PLAIN_DN.fullmatch(dn))
        assert canonical_dn(dn) == _parsed_canonical(dn), dn
    assert plain == 3000


@pytest.mark.parametrize(
    "dn",
    [
        "cn=a\\,b,dc=x",
        "cn=a+uid=b,dc=x",
        "cn=a, dc=x",
        "CN=#41,dc=x",
        "2.5.4.3=a,dc=x",
        'cn="quoted",dc=x',
        "cn=Ünïcode,dc=x",
    ],
)
def test_dns_outside_the_plain_grammar_go_to_the_parser(dn: str) -> None:
    """Escapes, multi-valued RDNs, spaces after commas, hex values, OIDs, quotes
    and non-ASCII letters are not read by the plain grammar."""
    from microcred_sync.connectors.ldap.dn import _PLAIN_DN, _parsed_canonical

    assert not _PLAIN_DN.fullmatch(dn)
    try:
        expected = _parsed_canonical(dn)
    except ValueError:
        # ldap3 refuses it (it reads no hex form, OID or quotes): so does the source.
        with pytest.raises(ValueError, match="not a distinguished name"):
            canonical_dn(dn)
    else:
        assert canonical_dn(dn) == expected
