"""A throwaway OpenLDAP directory with invented people, for the example job and tests.

    python examples/example_directory.py [--port 3890] [--people 2000]

builds a temporary slapd configuration (``cn=config`` loaded with ``slapadd -n 0``,
an MDB database, the syncprov overlay for ``contextCSN``), bulk-loads a generated
LDIF with ``slapadd -q``, runs ``slapd`` on 127.0.0.1 in the foreground until
Ctrl-C, then deletes everything. It needs Debian's ``slapd`` package. The tests and
``benchmarks/ldap_sync.py`` use ``Slapd`` and ``people_ldif`` from here too.

The directory: ``dc=example,dc=org``, people under ``ou=people`` (every 25th one
disabled: ``employeeType: disabled``), one of them in ``ou=Équipe Réseau`` with a
comma in its name, groups under ``ou=groups`` nested three deep (``all-staff`` >
``analytics`` > ``data-team``) and two groups in a cycle. ``cn=reader`` reads
without limits; ordinary people keep the server's default size limit (500).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
#: The password of the admin, the reader and every person: invented, test only.
PASSWORD = "example-directory-password"
#: A person whose DN has an escaped comma, parentheses and non-ASCII letters.
OKAFOR_DN = f"cn=Okafor\\, Dana (Lyon),ou=Équipe Réseau,{PEOPLE}"
DEPARTMENTS = ("Analytics", "Engineering", "Sales", "Finance")

_SLAPD = "/usr/sbin/slapd"
_SLAPADD = "/usr/sbin/slapadd"
_MODULES = "/usr/lib/ldap"
_SCHEMAS = "/etc/ldap/schema"


def person_dn(number: int) -> str:
    """The DN of invented person ``number``."""
    return f"uid=p{number:05d},{PEOPLE}"


def _line(name: str, value: str) -> str:
    """One LDIF line; values that are not plain ASCII are base64 (RFC 2849)."""
    if value.isascii() and not value.startswith((" ", ":", "<")):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def _entry(dn: str, *pairs: tuple[str, str]) -> str:
    return "\n".join([_line("dn", dn), *(_line(n, v) for n, v in pairs)]) + "\n\n"


def person_entry(number: int, dn: str | None = None, **extra: str) -> str:
    """The LDIF of invented person ``number``."""
    pairs = [
        ("objectClass", "inetOrgPerson"),
        ("uid", f"p{number:05d}"),
        ("cn", f"Given{number} Family{number}"),
        ("givenName", f"Given{number}"),
        ("sn", f"Family{number}"),
        ("mail", f"person{number}@example.org"),
        ("employeeNumber", f"E{number:05d}"),
        ("departmentNumber", DEPARTMENTS[number % len(DEPARTMENTS)]),
        ("employeeType", "disabled" if number % 25 == 0 else "active"),
        ("userPassword", PASSWORD),
    ]
    pairs += list(extra.items())
    return _entry(dn or person_dn(number), *pairs)


def _group(name: str, members: list[str]) -> str:
    pairs = [("objectClass", "groupOfNames"), ("cn", name)]
    return _entry(f"cn={name},{GROUPS}", *pairs, *(("member", m) for m in members))


def people_ldif(people: int) -> Iterator[str]:
    """The whole directory as LDIF, entry by entry (see the module docstring).

    ``data-team`` holds every 10th person and Okafor; ``analytics`` holds
    ``data-team`` and every 10th+1; ``all-staff`` holds ``analytics`` and
    ``loop-a``; ``loop-a`` and ``loop-b`` hold each other (a cycle) and one person
    each; ``Sales\\, EMEA`` (a comma in its name) holds every 10th+2.
    """
    yield _entry(
        SUFFIX,
        ("objectClass", "dcObject"),
        ("objectClass", "organization"),
        ("dc", "example"),
        ("o", "Example Directory"),
    )
    yield _entry(
        READER_DN,
        ("objectClass", "organizationalRole"),
        ("objectClass", "simpleSecurityObject"),
        ("cn", "reader"),
        ("userPassword", PASSWORD),
    )
    for unit in (PEOPLE, GROUPS, f"ou=Équipe Réseau,{PEOPLE}"):
        name = unit.split(",", 1)[0].removeprefix("ou=")
        yield _entry(unit, ("objectClass", "organizationalUnit"), ("ou", name))
    for number in range(1, people + 1):
        yield person_entry(number)
    yield person_entry(
        0,
        dn=OKAFOR_DN,
        cn="Okafor, Dana (Lyon)",
        departmentNumber="Analytics",
    ).replace("uid: p00000", "uid: dokafor")
    every = range(1, people + 1)
    yield _group(
        "data-team", [person_dn(n) for n in every if n % 10 == 0] + [OKAFOR_DN]
    )
    analytics = [person_dn(n) for n in every if n % 10 == 1]
    yield _group("analytics", [f"cn=data-team,{GROUPS}", *analytics])
    yield _group("loop-a", [f"cn=loop-b,{GROUPS}", person_dn(2)])
    yield _group("loop-b", [f"cn=loop-a,{GROUPS}", person_dn(3)])
    yield _group("all-staff", [f"cn=analytics,{GROUPS}", f"cn=loop-a,{GROUPS}"])
    sales = [person_dn(n) for n in every if n % 10 == 2] or [person_dn(2)]
    yield _group("Sales\\, EMEA", sales)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config_ldif(folder: Path, size_limit: str, tls: dict[str, Path] | None) -> str:
    """The ``cn=config`` tree: MDB database, syncprov, limits, optional TLS."""
    tls_lines = ""
    if tls is not None:
        tls_lines = (
            f"olcTLSCACertificateFile: {tls['ca']}\n"
            f"olcTLSCertificateFile: {tls['cert']}\n"
            f"olcTLSCertificateKeyFile: {tls['key']}\n"
        )
    schemas = "".join(
        f"include: file://{_SCHEMAS}/{name}.ldif\n\n"
        for name in ("core", "cosine", "inetorgperson")
    )
    return f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {folder}/slapd.pid
olcSizeLimit: {size_limit}
{tls_lines}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {_MODULES}
olcModuleLoad: back_mdb
olcModuleLoad: syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: {size_limit}

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {folder}/data
olcSuffix: {SUFFIX}
olcRootDN: {ADMIN_DN}
olcRootPW: {PASSWORD}
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcSizeLimit: {size_limit}
olcLimits: {{0}}dn.exact="{READER_DN}" size=unlimited time=unlimited
olcAccess: {{0}}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {{1}}to * by * read
olcDbIndex: objectClass eq
olcDbIndex: entryCSN,entryUUID eq

dn: olcOverlay={{0}}syncprov,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {{0}}syncprov
"""


@dataclass
class Slapd:
    """A slapd of its own in ``folder``: configured, loaded, started, stopped.

    ``size_limit`` is the server's limit for ordinary binds (``cn=reader`` and the
    admin have none). With ``tls`` (CA, certificate and key files) it also
    answers StartTLS on ``port`` and ldaps on ``tls_port``.
    """

    folder: Path
    size_limit: str = "500"
    tls: dict[str, Path] | None = None
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    def load(self, entries: Iterator[str]) -> None:
        """Write the configuration and bulk-load ``entries`` (LDIF) with slapadd."""
        config, data = self.folder / "slapd.d", self.folder / "data"
        config.mkdir(parents=True)
        data.mkdir()
        (self.folder / "config.ldif").write_text(
            _config_ldif(self.folder, self.size_limit, self.tls), encoding="utf-8"
        )
        _run(
            [
                _SLAPADD,
                "-n",
                "0",
                "-F",
                str(config),
                "-l",
                str(self.folder / "config.ldif"),
            ]
        )
        ldif = self.folder / "data.ldif"
        with ldif.open("w", encoding="utf-8") as stream:
            stream.writelines(entries)
        # -q: quick (no checks); -w: write contextCSN, where delta reads start.
        _run([_SLAPADD, "-q", "-w", "-F", str(config), "-b", SUFFIX, "-l", str(ldif)])

    def start(self) -> None:
        """Run slapd as a child process; return once it accepts connections."""
        urls = self.url + "/"
        if self.tls is not None:
            urls += " " + self.ldaps_url + "/"
        with (self.folder / "slapd.log").open("wb") as log:
            self.process = subprocess.Popen(
                [_SLAPD, "-d", "0", "-h", urls, "-F", str(self.folder / "slapd.d")],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "slapd.log").read_text(errors="replace")
                raise RuntimeError(f"slapd exited: {log[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("slapd did not start within 20 s")

    def stop(self) -> None:
        """Stop slapd (SIGTERM, then SIGKILL) and wait for it."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def installed() -> bool:
    """Whether Debian's slapd and slapadd are here."""
    return os.access(_SLAPD, os.X_OK) and os.access(_SLAPADD, os.X_OK)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3890)
    parser.add_argument("--people", type=int, default=2000)
    arguments = parser.parse_args()
    if not installed():
        raise SystemExit("slapd is not installed (Debian: apt-get install slapd)")
    folder = Path(tempfile.mkdtemp(prefix="example-directory-"))
    slapd = Slapd(folder, port=arguments.port)
    try:
        slapd.load(people_ldif(arguments.people))
        slapd.start()
        print(f"example directory on {slapd.url}, {arguments.people} people")
        print(f"bind as {READER_DN} with the password {PASSWORD!r}; Ctrl-C stops it")
        assert slapd.process is not None
        slapd.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        slapd.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
