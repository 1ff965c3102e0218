"""SFTP pickup of CSV drops: the ``sftp`` section of a ``csv`` connector.

An HRIS drops its nightly export on an SFTP server; the csv source picks it up
here and parses it as it parses a local file (``csv.py``), streaming it over the
connection. What this module adds:

- the server is trusted only if its host key is one the connector file lists
  (paramiko's ``RejectPolicy``: an unknown or changed key fails the read, naming
  the host and both fingerprints);
- the newest file matching the pattern is read once it is complete: its size and
  modification time stable over ``ready.stable_seconds``, or its marker file
  there (``ready.marker``);
- a file whose content was processed before (state store, ``processed_files``)
  is skipped, whatever its name or time now, and the read fails saying so;
- after the run: an applied read moves the file to the archive folder (older
  matches with it, as superseded), a read that failed on the file itself moves
  it to the rejected folder; a read that failed for any other reason (the
  connection, the platform, the guard) leaves it where it is for the next run.

Errors, all from ``microcred_sync.errors``, never with a secret in them:

- ``SourceUnavailable``: the server cannot be reached or refuses us (host key,
  login), a folder is missing, no file matches, the newest one is still being
  written or was processed before.
- ``ReadIncomplete``: the connection dropped, or the file changed, after records
  were yielded.
- ``ConfigError``: a named secret is not set, or the key in it cannot be read.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import hashlib
import io
import logging
import posixpath
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import BinaryIO, NoReturn

import paramiko
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import ConfigError, ReadError, ReadIncomplete, SourceUnavailable
from ..secrets import read_secret
from ..state.processed import FileIdentity, ProcessedFiles
from .base import Record, SourceContext

__all__ = ["ReadyCheck", "RemoteFile", "SftpDrop", "SftpLocation"]

logger = logging.getLogger(__name__)

#: Bytes asked of the server per read, and kept in the reader's buffer.
_READ_BYTES = 1 << 18

#: Bytes prefetched ahead of the reader at most: read requests for the next
#: window go out once the reader reaches the end of the last one. This bounds
#: memory, also when a reader stops early (closing a file waits for the answers
#: to every request sent for it).
_PREFETCH_WINDOW = 2 << 20

#: Errors of the connection itself, as paramiko and the socket raise them.
_TRANSPORT_ERRORS = (paramiko.SSHException, EOFError, OSError)

#: Seconds between two looks for a marker file while waiting for it.
_MARKER_POLL_SECONDS = 1.0


class ReadyCheck(BaseModel):
    """How the source knows a dropped file has been written in full."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stable_seconds: float = Field(
        default=30,
        gt=0,
        description="the file is complete once its size and modification time"
        " stay the same over this many seconds",
    )
    marker: str | None = Field(
        default=None,
        description="instead: the file is complete once this file is there beside"
        " it; `{name}` is the file's name, `{stem}` the name without its extension"
        " (`{name}.done`, `{stem}.ok`)",
    )
    wait_seconds: float = Field(
        default=0,
        ge=0,
        description="how long to wait for a file still being written before the"
        " read fails (it is tried again on the next run)",
    )

    @field_validator("marker")
    @classmethod
    def _marker_names_the_file(cls, marker: str | None) -> str | None:
        if marker is not None and "{name}" not in marker and "{stem}" not in marker:
            raise ValueError("the marker must contain {name} or {stem}")
        if marker is not None and "/" in marker:
            raise ValueError("the marker is a name in the same folder, without /")
        return marker

    def marker_of(self, name: str) -> str | None:
        """The marker's name for the file ``name``, if markers are used."""
        if self.marker is None:
            return None
        stem = posixpath.splitext(name)[0]
        return self.marker.replace("{name}", name).replace("{stem}", stem)


class SftpLocation(BaseModel):
    """The ``sftp`` section of a csv connector: server, login, folders, pattern."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    key_secret: str | None = Field(
        default=None, description="secret holding the private key (OpenSSH or PEM)"
    )
    key_passphrase_secret: str | None = Field(
        default=None, description="secret holding the private key's passphrase"
    )
    password_secret: str | None = Field(
        default=None, description="secret holding the password"
    )
    host_keys: list[str] = Field(
        min_length=1,
        description="the server's host keys as known_hosts lines (`host ssh-ed25519"
        " AAAA...`) or `keytype base64`; no other key is trusted",
    )
    directory: str = Field(description="the folder the exports are dropped in")
    pattern: str = Field(
        default="*.csv",
        description="file names to read (fnmatch); of several the newest is read",
    )
    archive_directory: str = Field(description="where applied files are moved")
    rejected_directory: str = Field(description="where unreadable files are moved")
    ready: ReadyCheck = Field(default_factory=ReadyCheck)
    timeout_seconds: float = Field(
        default=30, gt=0, description="connect, login and per-request timeout"
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_is_a_name(cls, pattern: str) -> str:
        if "/" in pattern:
            raise ValueError("the pattern matches names in `directory`, without /")
        return pattern

    @model_validator(mode="after")
    def _checks(self) -> SftpLocation:
        if self.key_secret is None and self.password_secret is None:
            raise ValueError("set key_secret or password_secret (or both)")
        if self.key_passphrase_secret is not None and self.key_secret is None:
            raise ValueError("key_passphrase_secret needs key_secret")
        for line in self.host_keys:
            parse_host_key(line, self.host, self.port)
        return self

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    def trusted_keys(self) -> list[paramiko.PKey]:
        """The host keys the connector file lists, parsed."""
        return [parse_host_key(line, self.host, self.port) for line in self.host_keys]


def parse_host_key(line: str, host: str, port: int) -> paramiko.PKey:
    """One ``host_keys`` entry as a key; raises ValueError saying what is wrong.

    A known_hosts line must name ``host`` (or ``[host]:port``); hashed names are
    not accepted, since they cannot be checked against the configured host.
    """
    fields = line.split()
    if len(fields) >= 3 and not _is_key_type(fields[0]):
        names, fields = fields[0].split(","), fields[1:]
        if any(name.startswith("|") for name in names):
            raise ValueError("hashed known_hosts names are not accepted; give the key")
        wanted = {host, f"[{host}]:{port}"} if port != 22 else {host, f"[{host}]:22"}
        if not wanted & set(names):
            raise ValueError(f"the host key entry is for {fields[0]}, not {host}")
    if len(fields) < 2 or not _is_key_type(fields[0]):
        raise ValueError("a host key is `keytype base64`, e.g. `ssh-ed25519 AAAA...`")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        return paramiko.PKey.from_type_string(fields[0], blob)
    except (binascii.Error, paramiko.SSHException, ValueError) as error:
        raise ValueError(f"the {fields[0]} host key cannot be read ({error})") from None


def _is_key_type(text: str) -> bool:
    return text.startswith(("ssh-", "ecdsa-", "sk-", "rsa-"))


def fingerprint(key: paramiko.PKey) -> str:
    """The key as ``ssh-keygen -l`` shows it: ``ssh-ed25519 SHA256:...``."""
    return f"{key.get_name()} {key.fingerprint}"


@dataclass(frozen=True, slots=True)
class _Listed:
    """A regular file in the drop folder, as the server lists it."""

    name: str
    size: int
    mtime: int

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime, UTC)


class _ConnectionLost(Exception):
    """The SSH connection failed under a read; turned into a ReadError above."""

    def __init__(self, path: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.path, self.cause = path, cause


class _RemoteStream(io.RawIOBase):
    """A remote file as a raw binary stream, prefetched, for ``io.BufferedReader``.

    Errors of the connection come out as ``_ConnectionLost``, which the csv parser
    does not take for a problem of the file.
    """

    def __init__(self, remote: paramiko.SFTPFile, path: str, size: int) -> None:
        super().__init__()
        self._remote, self._path, self._size = remote, path, size
        self._position = self._prefetched_to = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = len(buffer)
        try:
            if self._prefetched_to <= self._position < self._size:
                # A window's requests go out at once (a few bytes each), so
                # paramiko's prefetch thread is done before a connection could
                # drop under it.
                self._prefetched_to = min(self._size, self._position + _PREFETCH_WINDOW)
                self._remote.prefetch(self._prefetched_to)
            if self._position < self._prefetched_to:
                wanted = min(wanted, self._prefetched_to - self._position)
            chunk = self._remote.read(wanted)
        except _TRANSPORT_ERRORS as error:
            raise _ConnectionLost(self._path, error) from error
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset == self._position:
            return offset
        try:
            self._remote.seek(offset, whence)
            self._position = self._prefetched_to = self._remote.tell()
        except _TRANSPORT_ERRORS as error:
            raise _ConnectionLost(self._path, error) from error
        return self._position

    def close(self) -> None:
        if not self.closed:
            # A connection that is gone has taken the handle with it.
            with contextlib.suppress(*_TRANSPORT_ERRORS):
                self._remote.close()
        super().close()


@dataclass(frozen=True)
class RemoteFile:
    """A file in the drop folder as the csv parser reads it (``name``, bytes)."""

    sftp: paramiko.SFTPClient
    path: str
    size: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def open_bytes(self) -> BinaryIO:
        """Open the file for reading from its start, prefetching as it goes.

        Raises OSError when the server refuses to open it, ``_ConnectionLost`` when
        the connection fails.
        """
        try:
            remote = self.sftp.open(self.path, "rb")
        except (paramiko.SSHException, EOFError, TimeoutError, ConnectionError) as lost:
            raise _ConnectionLost(self.path, lost) from lost
        return io.BufferedReader(
            _RemoteStream(remote, self.path, self.size), _READ_BYTES
        )


@dataclass
class _Pickup:
    """What the last read picked up, for the run's outcome to act on."""

    listed: _Listed
    identity: FileIdentity
    #: ``read`` (complete), ``bad`` (failed on the file), ``duplicate``.
    state: str
    superseded: list[str] = field(default_factory=list)


class _Connection:
    """One SSH connection and its SFTP session, closed on leaving the block."""

    def __init__(self, client: paramiko.SSHClient, sftp: paramiko.SFTPClient) -> None:
        self.client, self.sftp = client, sftp

    def __enter__(self) -> _Connection:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.sftp.close()
        self.client.close()


class _UnknownHostKey(paramiko.SSHException):
    """The server offered a key of a type none of the configured keys has."""

    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("host key not configured")
        self.key = key


class _RefuseUnknownKey(paramiko.RejectPolicy):
    """Paramiko's RejectPolicy, keeping the key the server offered for the error."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise _UnknownHostKey(key)


class SftpDrop:
    """The drop folder of one csv connector on an SFTP server.

    ``read`` picks the file up and has it parsed; ``archive`` and ``reject`` act
    on it once the run's outcome is known (see the module docstring).
    """

    def __init__(self, connector_id: str, partner: str, location: SftpLocation):
        self.connector_id = connector_id
        self.partner = partner
        self.location = location
        self.context = SourceContext()
        self._pickup: _Pickup | None = None
        self.sleep: Callable[[float], None] = time.sleep

    def describe(self) -> str:
        """``sftp://host:port/folder/pattern``, without the user."""
        where = posixpath.join(self.location.directory, self.location.pattern)
        return f"sftp://{self.location.address}/{where.lstrip('/')}"

    # -- the read ----------------------------------------------------------------

    def read(
        self, context: SourceContext, parse: Callable[[RemoteFile], Iterator[Record]]
    ) -> Iterator[Record]:
        """Pick the newest complete file up and yield what ``parse`` reads from it.

        Raises the errors of the module docstring; ``parse``'s own ReadErrors mark
        the file for the rejected folder.
        """
        self.context, self._pickup = context, None
        yielded = 0
        with self._connect() as connection:
            try:
                listed, older = self._newest(connection.sftp)
                listed = self._wait_until_complete(connection.sftp, listed)
                identity = self._identify(connection.sftp, listed)
                self._skip_if_processed(listed, identity)
                path = self._path(listed.name)
                pickup = _Pickup(listed, identity, "bad", superseded=older)
                try:
                    for record in parse(RemoteFile(connection.sftp, path, listed.size)):
                        yielded += 1
                        yield record
                except SourceUnavailable:
                    raise  # the file could not be opened: not the file's fault
                except ReadError:
                    self._pickup = pickup  # the file itself is bad: set it aside
                    raise
                self._check_unchanged(connection.sftp, listed)
                pickup.state = "read"
                self._pickup = pickup
            except _ConnectionLost as lost:
                raise self._lost(lost.path, lost.cause, yielded) from lost
            except (paramiko.SSHException, EOFError) as error:
                raise self._lost(self.location.directory, error, yielded) from error
        logger.info("%s: read %s (%d records)", self.connector_id, listed.name, yielded)

    def _connect(self) -> _Connection:
        """Log in, trusting only the configured host keys."""
        location = self.location
        client = paramiko.SSHClient()
        # Paramiko looks a server up as known_hosts names it: host, or [host]:port.
        name = location.host
        if location.port != 22:
            name = f"[{location.host}]:{location.port}"
        for key in location.trusted_keys():
            client.get_host_keys().add(name, key.get_name(), key)
        client.set_missing_host_key_policy(_RefuseUnknownKey())
        try:
            client.connect(
                location.host,
                location.port,
                username=location.username,
                pkey=self._private_key(),
                password=self._password(),
                look_for_keys=False,
                allow_agent=False,
                timeout=location.timeout_seconds,
                banner_timeout=location.timeout_seconds,
                auth_timeout=location.timeout_seconds,
                channel_timeout=location.timeout_seconds,
            )
            sftp = client.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(location.timeout_seconds)
        except (paramiko.BadHostKeyException, _UnknownHostKey) as error:
            client.close()
            raise self._host_key_refused(error.key) from None
        except paramiko.AuthenticationException:
            client.close()
            raise SourceUnavailable(
                f"{location.address} refused the login of {location.username!r};"
                " check the user, its key or password, and the secret's value",
                **self._where(),
            ) from None
        except _TRANSPORT_ERRORS as error:
            client.close()
            raise SourceUnavailable(
                f"cannot connect to {location.address}: {_reason(error)};"
                " check the host, the port and the network",
                **self._where(),
            ) from None
        return _Connection(client, sftp)

    def _private_key(self) -> paramiko.PKey | None:
        """The private key from its secret; ConfigError (no key text) if unreadable."""
        location = self.location
        if location.key_secret is None:
            return None
        text = read_secret(location.key_secret, self.context.secrets_dir)
        passphrase = None
        if location.key_passphrase_secret is not None:
            passphrase = read_secret(
                location.key_passphrase_secret, self.context.secrets_dir
            ).get_secret_value()
        for key_class in paramiko.key_classes:
            try:
                return key_class.from_private_key(
                    io.StringIO(text.get_secret_value()), password=passphrase
                )
            except (paramiko.SSHException, ValueError):
                continue
        raise ConfigError(
            f"the secret {location.key_secret} holds no private key paramiko can read"
            " (OpenSSH or PEM, RSA, ECDSA or Ed25519), or its passphrase is wrong",
            connector=self.connector_id,
            secret_name=location.key_secret,
        )

    def _password(self) -> str | None:
        secret = self.location.password_secret
        if secret is None:
            return None
        return read_secret(secret, self.context.secrets_dir).get_secret_value()

    def _host_key_refused(self, offered: paramiko.PKey) -> SourceUnavailable:
        """The error for a server whose key is not one of the configured ones."""
        expected = ", ".join(fingerprint(key) for key in self.location.trusted_keys())
        return SourceUnavailable(
            f"the host key of {self.location.address} is not the configured one:"
            f" the server offered {fingerprint(offered)}, the connector trusts"
            f" {expected}; nothing was read. If the server's key was changed on"
            " purpose, check the new fingerprint with its owner and update"
            " `host_keys`",
            **self._where(),
        )

    # -- choosing the file -------------------------------------------------------

    def _newest(self, sftp: paramiko.SFTPClient) -> tuple[_Listed, list[str]]:
        """The newest matching file (by time, then name) and the older matches."""
        self._check_folders(sftp)
        directory = self.location.directory
        try:
            entries = sftp.listdir_attr(directory)
        except OSError as error:
            raise self._unavailable(f"cannot list {directory}", error) from None
        files = [
            _Listed(entry.filename, entry.st_size or 0, entry.st_mtime or 0)
            for entry in entries
            if entry.st_mode is not None and stat.S_ISREG(entry.st_mode)
        ]
        names = {listed.name for listed in files}
        markers = {self.location.ready.marker_of(name) for name in names}
        matches = sorted(
            (
                listed
                for listed in files
                if fnmatch.fnmatchcase(listed.name, self.location.pattern)
                and listed.name not in markers
            ),
            key=lambda listed: (listed.mtime, listed.name),
        )
        if not matches:
            raise SourceUnavailable(
                f"no file in {directory} on {self.location.address} matches"
                f" {self.location.pattern!r}; check that the export has been"
                " delivered",
                **self._where(),
            )
        return matches[-1], [listed.name for listed in matches[:-1]]

    def _check_folders(self, sftp: paramiko.SFTPClient) -> None:
        """The drop, archive and rejected folders must be there before any read."""
        location = self.location
        for setting, folder in (
            ("directory", location.directory),
            ("archive_directory", location.archive_directory),
            ("rejected_directory", location.rejected_directory),
        ):
            try:
                mode = sftp.stat(folder).st_mode
            except OSError as error:
                raise self._unavailable(
                    f"the folder {folder} (`{setting}`) cannot be used", error
                ) from None
            if mode is None or not stat.S_ISDIR(mode):
                raise SourceUnavailable(
                    f"{folder} (`{setting}`) on {location.address} is not a folder",
                    **self._where(),
                )

    def _wait_until_complete(
        self, sftp: paramiko.SFTPClient, listed: _Listed
    ) -> _Listed:
        """The file once complete; SourceUnavailable if it is not within the wait."""
        ready = self.location.ready
        deadline = time.monotonic() + ready.wait_seconds
        while True:
            current, reason = self._completeness(sftp, listed)
            if reason is None:
                return current
            if time.monotonic() >= deadline:
                raise SourceUnavailable(
                    f"{listed.name} is not complete yet: {reason}; nothing was read,"
                    " the next run tries again",
                    **self._where(listed.name),
                )
            logger.info("%s: %s: %s; waiting", self.connector_id, listed.name, reason)
            listed = current
            if ready.marker is not None:
                self.sleep(_MARKER_POLL_SECONDS)

    def _completeness(
        self, sftp: paramiko.SFTPClient, listed: _Listed
    ) -> tuple[_Listed, str | None]:
        """The file's state now, and why it is not complete (``None``: it is)."""
        ready = self.location.ready
        marker = ready.marker_of(listed.name)
        if marker is not None:
            if self._exists(sftp, self._path(marker)):
                return self._stat(sftp, listed.name), None
            return listed, f"its marker {marker} is not there"
        self.sleep(ready.stable_seconds)
        current = self._stat(sftp, listed.name)
        if (current.size, current.mtime) != (listed.size, listed.mtime):
            return current, (
                f"it changed within {ready.stable_seconds:g} s (size {listed.size}"
                f" -> {current.size} bytes)"
            )
        return current, None

    def _identify(self, sftp: paramiko.SFTPClient, listed: _Listed) -> FileIdentity:
        """Hash the file's content, streaming it."""
        digest = hashlib.sha256()
        path = self._path(listed.name)
        with RemoteFile(sftp, path, listed.size).open_bytes() as stream:
            while chunk := stream.read(_READ_BYTES):
                digest.update(chunk)
        return FileIdentity(
            listed.name, listed.size, listed.modified, digest.hexdigest()
        )

    def _skip_if_processed(self, listed: _Listed, identity: FileIdentity) -> None:
        """Fail the read, naming the earlier file, when this content was processed."""
        if self.context.state_url is None:
            logger.warning(
                "%s: no state store; processed files are not remembered",
                self.connector_id,
            )
            return
        earlier = ProcessedFiles(self.context.state_url).find(
            self.connector_id, identity.sha256, identity.size
        )
        if earlier is None:
            return
        self._pickup = _Pickup(listed, identity, "duplicate")
        logger.warning(
            "%s: skipped %s: same content as %s, processed %s",
            self.connector_id,
            identity.describe(),
            earlier.identity.name,
            earlier.processed_at.isoformat(),
        )
        raise SourceUnavailable(
            f"skipped {identity.describe()}: it has the same content as"
            f" {earlier.identity.describe()}, processed"
            f" {earlier.processed_at.isoformat()}; nothing new to read (it goes to"
            " the archive folder)",
            **self._where(listed.name),
        )

    def _check_unchanged(self, sftp: paramiko.SFTPClient, listed: _Listed) -> None:
        """A file that changed while it was read is not taken as read."""
        current = self._stat(sftp, listed.name)
        if (current.size, current.mtime) != (listed.size, listed.mtime):
            raise ReadIncomplete(
                f"{listed.name} changed while it was read ({listed.size} ->"
                f" {current.size} bytes); the next run reads it again",
                **self._where(listed.name),
            )

    # -- after the run -----------------------------------------------------------

    def archive(self) -> None:
        """After an applied read: remember the file, move it (and older matches,
        superseded by it) to the archive folder."""
        pickup, self._pickup = self._pickup, None
        if pickup is None or pickup.state != "read":
            return
        self._remember(pickup.identity, "archived")
        self._move_away(
            [pickup.listed.name, *pickup.superseded], self.location.archive_directory
        )
        if pickup.superseded:
            logger.info(
                "%s: %d older file(s) superseded by %s, archived unread: %s",
                self.connector_id,
                len(pickup.superseded),
                pickup.listed.name,
                ", ".join(pickup.superseded),
            )

    def reject(self) -> None:
        """After a failed run: a file that could not be read goes to the rejected
        folder, a duplicate to the archive; anything else stays for the next run."""
        pickup, self._pickup = self._pickup, None
        if pickup is None or pickup.state == "read":
            return
        if pickup.state == "duplicate":
            self._remember(pickup.identity, "duplicate")
            self._move_away([pickup.listed.name], self.location.archive_directory)
            return
        self._remember(pickup.identity, "rejected")
        self._move_away([pickup.listed.name], self.location.rejected_directory)

    def _remember(self, identity: FileIdentity, outcome: str) -> None:
        if self.context.state_url is not None:
            ProcessedFiles(self.context.state_url).record(
                self.connector_id, identity, outcome, datetime.now(UTC)
            )

    def _move_away(self, names: list[str], folder: str) -> None:
        """Move files (and their markers) to ``folder``; a failure is logged: the
        state store remembers them, so they are not read again."""
        try:
            with self._connect() as connection:
                for name in names:
                    self._move(connection.sftp, name, folder)
                    marker = self.location.ready.marker_of(name)
                    if marker is not None and self._exists(
                        connection.sftp, self._path(marker)
                    ):
                        self._move(connection.sftp, marker, folder)
        except (ReadError, _ConnectionLost, *_TRANSPORT_ERRORS) as error:
            logger.error(
                "%s: could not move %s to %s: %s; move it by hand",
                self.connector_id,
                ", ".join(names),
                folder,
                error,
            )

    def _move(self, sftp: paramiko.SFTPClient, name: str, folder: str) -> None:
        """Rename ``name`` into ``folder``; a name taken there gets a UTC stamp."""
        target = posixpath.join(folder, name)
        if self._exists(sftp, target):
            stem, extension = posixpath.splitext(name)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            target = posixpath.join(folder, f"{stem}.{stamp}{extension}")
        sftp.rename(self._path(name), target)
        logger.info("%s: moved %s to %s", self.connector_id, name, folder)

    # -- helpers -----------------------------------------------------------------

    def _path(self, name: str) -> str:
        return posixpath.join(self.location.directory, name)

    def _stat(self, sftp: paramiko.SFTPClient, name: str) -> _Listed:
        path = self._path(name)
        try:
            attributes = sftp.stat(path)
        except OSError as error:
            raise self._unavailable(f"cannot look at {path}", error) from None
        return _Listed(name, attributes.st_size or 0, attributes.st_mtime or 0)

    def _exists(self, sftp: paramiko.SFTPClient, path: str) -> bool:
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False
        except OSError as error:
            raise self._unavailable(f"cannot look at {path}", error) from None
        return True

    def _unavailable(self, what: str, error: BaseException) -> SourceUnavailable:
        return SourceUnavailable(
            f"{what} on {self.location.address}: {_reason(error)}", **self._where()
        )

    def _lost(self, path: str, error: BaseException, yielded: int) -> ReadError:
        """A dropped connection fails the read; after records, as incomplete."""
        message = (
            f"the connection to {self.location.address} failed while reading"
            f" {path} ({_reason(error)}); nothing is suspended, the file stays for"
            " the next run"
        )
        if yielded:
            return ReadIncomplete(
                f"{message}; {yielded} records were read before", **self._where()
            )
        return SourceUnavailable(message, **self._where())

    def _where(self, file: str | None = None) -> dict[str, object]:
        return {
            "connector": self.connector_id,
            "partner": self.partner,
            "host": self.location.host,
            "file": file,
        }


def _reason(error: BaseException) -> str:
    """A short, secret-free reason: the exception's type and text."""
    text = getattr(error, "strerror", None) or str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
