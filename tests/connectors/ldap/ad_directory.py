"""A throwaway Samba Active Directory domain controller for the tests.

Provisioned into a temporary folder (``samba-tool domain provision``, no DNS,
RFC 2307 attributes), listening on the loopback interface only, running only its
LDAP service, with simple binds allowed over plain LDAP for the test
(``ldap server require strong auth = no``). Samba's LDAP ports are its own (389),
on 127.0.0.1 only. ``populate`` adds the people and groups the tests read.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REALM = "SAMDOM.EXAMPLE.COM"
DOMAIN_DN = "DC=samdom,DC=example,DC=com"
ADMIN_UPN = "Administrator@samdom.example.com"
#: Invented, test only; meets Samba's default password complexity.
ADMIN_PASSWORD = "Test-Only-Passw0rd!"
STAFF = f"OU=Staff,{DOMAIN_DN}"
GROUPS = f"OU=Groups,{DOMAIN_DN}"
TEAM = f"OU=Équipe Réseau,{STAFF}"
OKAFOR_DN = f"CN=Okafor\\, Dana (Lyon),{TEAM}"
USERS = 250
#: userAccountControl: NORMAL_ACCOUNT | PASSWD_NOTREQD (the account has no
#: password here: setting one needs LDAPS), then with ACCOUNTDISABLE, then with
#: DONT_EXPIRE_PASSWORD (LD-07).
UAC_ACTIVE, UAC_DISABLED, UAC_NO_EXPIRY = 544, 546, 66080
#: An accountExpires that has passed: 2020-01-01 as a Windows file time.
EXPIRED = str(int((datetime(2020, 1, 1, tzinfo=UTC).timestamp() + 11644473600) * 10**7))


def user_dn(number: int) -> str:
    return f"CN=User {number:03d},{STAFF}"


def user_uac(number: int) -> int:
    """Every 20th user is disabled; user 7 is disabled with DONT_EXPIRE_PASSWORD."""
    if number == 7:
        return UAC_NO_EXPIRY | 0x2
    if number == 9:
        return UAC_NO_EXPIRY
    return UAC_DISABLED if number % 20 == 0 else UAC_ACTIVE


def installed() -> bool:
    return shutil.which("samba-tool") is not None and os.access(
        "/usr/sbin/samba", os.X_OK
    )


@dataclass
class SambaDC:
    """A Samba AD DC in ``folder``."""

    folder: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = "ldap://127.0.0.1:389"

    @property
    def conf(self) -> Path:
        return self.folder / "dc" / "etc" / "smb.conf"

    def provision(self) -> None:
        target = self.folder / "dc"
        result = subprocess.run(
            [
                "samba-tool", "domain", "provision",
                f"--targetdir={target}", f"--realm={REALM}", "--domain=SAMDOM",
                "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
                f"--adminpass={ADMIN_PASSWORD}",
                "--option=interfaces=lo", "--option=bind interfaces only=yes",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"samba-tool provision failed: {result.stderr[-2000:]}")
        text = self.conf.read_text(encoding="utf-8")
        text = text.replace(
            "[global]\n", "[global]\n\tldap server require strong auth = no\n", 1
        )
        # Only the LDAP service is needed; logs stay in the folder.
        text = re.sub(r"\tserver services = .*\n", "\tserver services = ldap\n", text)
        text = re.sub(
            r"\tlog file = .*\n", f"\tlog file = {self.folder}/log.%m\n", text
        )
        self.conf.write_text(text, encoding="utf-8")

    def start(self) -> None:
        if _listening(389):
            raise RuntimeError("127.0.0.1:389 is taken; Samba needs that port")
        with (self.folder / "samba.log").open("wb") as log:
            self.process = subprocess.Popen(
                ["/usr/sbin/samba", "-i", "-M", "single", "-s", str(self.conf)],
                # -i stops the server at the end of its standard input: keep it open.
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "samba.log").read_text(errors="replace")
                raise RuntimeError(f"samba exited: {log[-2000:]}")
            if _listening(389) and self._binds():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("samba did not answer within 60 s")

    def _binds(self) -> bool:
        from ldap3.core.exceptions import LDAPException

        try:
            self.admin().unbind()
        except LDAPException:
            return False
        return True

    def admin(self) -> Any:
        """An ldap3 connection bound as the domain's Administrator."""
        from ldap3 import Connection, Server

        return Connection(
            Server(self.url, connect_timeout=5),
            ADMIN_UPN,
            ADMIN_PASSWORD,
            auto_bind=True,
            raise_exceptions=True,
        )

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
            if self.process.stdin is not None:
                self.process.stdin.close()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def populate(self) -> None:
        """250 users in OU=Staff (some disabled, one expired, Okafor with a comma
        in an OU with accents), a contact, and groups nested three deep."""
        connection = self.admin()
        try:
            for unit in (STAFF, GROUPS, TEAM):
                connection.add(unit, ["top", "organizationalUnit"])
            for number in range(1, USERS + 1):
                extra = {"accountExpires": EXPIRED} if number == 3 else {}
                add_user(connection, user_dn(number), number, **extra)
            add_user(connection, OKAFOR_DN, 0, sAMAccountName="dokafor")
            connection.add(
                f"CN=Ext Contact,{STAFF}",
                ["top", "person", "organizationalPerson", "contact"],
                {"sn": "Contact", "mail": "contact@example.net"},
            )
            team = [user_dn(n) for n in range(10, USERS + 1, 10)] + [OKAFOR_DN]
            add_group(connection, "Data Team", team)
            analytics = [user_dn(n) for n in range(1, USERS + 1, 10)]
            add_group(connection, "Analytics", [f"CN=Data Team,{GROUPS}", *analytics])
            add_group(connection, "All Staff", [f"CN=Analytics,{GROUPS}"])
            add_group(
                connection, "Big Group", [user_dn(n) for n in range(1, USERS + 1)]
            )
        finally:
            connection.unbind()


def add_user(connection: Any, dn: str, number: int, **extra: str) -> None:
    """One user; ``number`` picks its names and its userAccountControl."""
    attributes = {
        "sAMAccountName": f"u{number:03d}",
        "givenName": f"Given{number}",
        "sn": f"Family{number}",
        "displayName": f"Given{number} Family{number}",
        "mail": f"user{number}@samdom.example.com",
        "employeeID": f"E{number:05d}",
        "department": ["Analytics", "Engineering", "Sales", "Finance"][number % 4],
        "userAccountControl": str(user_uac(number)),
    }
    attributes.update(extra)
    connection.add(dn, ["top", "person", "organizationalPerson", "user"], attributes)


def add_group(connection: Any, name: str, members: list[str]) -> None:
    dn = f"CN={name},{GROUPS}"
    connection.add(dn, ["top", "group"], {"sAMAccountName": name.replace(" ", "")})
    from ldap3 import MODIFY_ADD

    connection.modify(dn, {"member": [(MODIFY_ADD, members)]})


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True
