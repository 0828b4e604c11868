"""The highest list serial this machine has accepted, per list location.

This is the memory behind rollback and equivocation protection (THREATS.md class B): a list is
refused when its serial is lower than one already accepted, or equal to it with other bytes.

**One history per list location, whatever the pins.** Records are keyed by the canonical identity
of the list's location (:func:`safepip.location.canonical`: a path and its ``file://`` URL, an
upper-case host, a default port, an empty ``?`` or a fragment all name one list), never by the
pinned key set: adding a key to the pins (a key rotation, a higher threshold) or respelling the
URL must not open a fresh history in which an older, still unexpired list would be accepted. The
fingerprints pinned by the run that last wrote a record are kept in it for information only.

**Judging is separate from recording.** :meth:`TrustState.check` judges a serial against the stored
records and writes nothing (a refused run leaves the state exactly as it was, and a fresh machine
gets no state directory); :meth:`TrustState.accept` records it, re-judging under the lock so that
concurrent runs never lower the stored serial. The CLI records only when its command succeeds.

Storage: one small JSON file per list, ``serial-<key>.json`` inside the state directory (``<key>``
is :meth:`TrustState.key` of the identity), plus a ``lock`` file that serialises writers. One file
per list rather than one shared file because a damaged record then blocks only the list it belongs
to (it is still refused, never reset), every write replaces exactly one record, and each file is
self-describing (it repeats its identity, checked on every read). A record (format 2)::

    {"fingerprints": ["ABCD…"], "list": "https://…", "serial": 42, "sha256": "3f1c…", "version": 2}

**Records of format 1** (``list-<key>.json``, written by safepip before format 2, keyed by URL as
given *and* pinned key set) are still read, never rewritten nor removed: every one whose URL has
the same canonical identity counts, so the history a machine built under several pin sets or
spellings is the union of them (the highest serial is the floor, and every serial stored with a
body must keep that body). The first write for a list creates its format 2 record. A format 1
record cannot be attributed to a list without reading it, so a corrupt one refuses every list
until a human has looked at it (fail closed: it may have protected any of them).

Anything that is not exactly one of those shapes is refused with
:class:`~safepip.errors.StateError`, and the file is left as it is for a human to inspect. The same
goes for a state directory, record or lock file that is a symlink or not a regular file /
directory, that is owned by another user, or that is writable by group or others (another account
could then roll the serial back). Only the final path component is checked: ``$HOME`` and
``~/.local/state`` belong to the user's own setup, and may legitimately be symlinks.

Crash leftovers: a process killed between creating its temporary file and renaming it leaves a
``.tmp-*`` file behind; it is never read and is harmless.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from safepip import location
from safepip.errors import FreshnessError, StateError
from safepip.files import xdg_folder

#: Version of the record format written.
FORMAT_VERSION: Final = 2
#: The earlier format, keyed by (URL as given, pinned key set): read, never written.
LEGACY_VERSION: Final = 1
#: Name of the lock file inside the state directory.
LOCK_NAME: Final = "lock"
#: How long :meth:`TrustState.accept` waits for another run's lock before giving up. The lock is
#: only ever held for one small read and one small write, so a wait this long means a stuck process.
LOCK_TIMEOUT_SECONDS: Final[float] = 30.0
#: A record is about 300 bytes; anything far larger is not one of ours.
MAX_RECORD_BYTES: Final = 64 * 1024

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT_RE: Final = re.compile(r"[0-9A-F]+")
_LEGACY_NAME_RE: Final = re.compile(r"list-([0-9a-f]{64})\.json")
_RECORD_KEYS: Final = frozenset({"version", "list", "fingerprints", "serial", "sha256"})
_LEGACY_KEYS: Final = frozenset({"version", "url", "fingerprints", "serial", "sha256"})
_CHMOD_HINT: Final = "run `chmod go-w {path}` if you own it, or use a state directory of your own"


@dataclass(frozen=True)
class Accepted:
    """Last accepted for one list: its serial and the sha256 of its exact bytes."""

    serial: int
    sha256: str


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """Return the trust state directory for ``environ`` (the CLI passes ``os.environ``).

    ``$XDG_STATE_HOME/safepip`` when that variable is an absolute path (the XDG spec says relative
    values are to be ignored), else ``$HOME/.local/state/safepip``, else the home directory of the
    current user from the password database. Raises :class:`StateError` when none is available.
    """
    folder = xdg_folder(environ, "XDG_STATE_HOME", ".local", "state")
    if folder is None:
        raise StateError(
            "cannot find a directory for the trust state: "
            "XDG_STATE_HOME and HOME are unset and the user has no home directory",
            hint="set XDG_STATE_HOME to an absolute path owned by you",
        )
    return folder


def judge_serial(
    *, serial: int, sha256: str, previous: Accepted | None, min_serial: int, list_name: str
) -> None:
    """Decide whether a list with ``serial`` and body hash ``sha256`` may be accepted (pure).

    Raises :class:`FreshnessError` when ``serial`` is below ``min_serial``, below
    ``previous.serial`` (rollback), or equal to it with another ``sha256`` (equivocation). The same
    serial with the same bytes passes: running twice against one list is normal.
    """
    if serial < min_serial:
        raise FreshnessError(
            f"{list_name}: serial {serial} is below the project's min-serial {min_serial}",
            hint="the list is older than the project allows; ask the publisher for a fresh list, "
            "and never lower min-serial to get past this",
        )
    if previous is None:
        return
    if serial < previous.serial:
        raise FreshnessError(
            f"{list_name}: serial {serial} is lower than serial {previous.serial} already "
            "accepted on this machine (rollback)",
            hint="an old list is being served, possibly by an attacker; ask the publisher for a "
            "fresh list and do not delete the trust state to get past this",
        )
    if serial == previous.serial and sha256 != previous.sha256:
        raise FreshnessError(
            f"{list_name}: serial {serial} was already accepted with sha256 {previous.sha256}, "
            f"now it has sha256 {sha256}: same serial, different bytes (equivocation)",
            hint="two different lists were signed under one serial; report this to the publisher "
            "and do not install until it is explained",
        )


def judge_history(
    *, serial: int, sha256: str, history: Sequence[Accepted], min_serial: int, list_name: str
) -> None:
    """:func:`judge_serial` against every record of one list (pure); raises as it does.

    A list may have several records (format 1 ones under other pin sets or spellings): each is a
    floor, and each serial stored with a body keeps that body.
    """
    judge_serial(
        serial=serial, sha256=sha256, previous=None, min_serial=min_serial, list_name=list_name
    )
    # Highest first, so that a rollback is reported against the highest serial accepted.
    for previous in sorted(history, key=lambda a: a.serial, reverse=True):
        judge_serial(
            serial=serial,
            sha256=sha256,
            previous=previous,
            min_serial=min_serial,
            list_name=list_name,
        )


def _normalise_fingerprints(fingerprints: Iterable[str], *, allow_empty: bool = False) -> list[str]:
    """Return the fingerprints without spaces, upper-case, de-duplicated and sorted.

    Raises :class:`ValueError` (a bug in the caller: the config module validates pins) for an empty
    set (unless ``allow_empty``) or a fingerprint that is not hex.
    """
    if isinstance(fingerprints, str):
        # A bare string is iterable too; splitting it into characters would silently build a key.
        raise ValueError("fingerprints must be a collection of strings, not one string")
    result = sorted({"".join(fpr.split()).upper() for fpr in fingerprints})
    if not result and not allow_empty:
        raise ValueError("the pinned key set is empty")
    for fpr in result:
        if not _FINGERPRINT_RE.fullmatch(fpr):
            raise ValueError(f"not a hex fingerprint: {fpr!r}")
    return result


def _is_int(value: object) -> bool:
    # bool is a subclass of int; `true` in a record is corruption, not serial 1.
    return type(value) is int


def legacy_key(list_url: str, fingerprints: Iterable[str]) -> str:
    """The key of a format 1 record: ``list_url`` verbatim with the pinned key set (any order).

    Kept to find and check format 1 records. Raises :class:`ValueError` for an empty or non-hex
    key set.
    """
    fprs = _normalise_fingerprints(fingerprints)
    blob = json.dumps(["safepip-state-key", 1, list_url, fprs], separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class TrustState:
    """The trust state kept in one directory; see the module docstring for the format.

    ``list_id`` arguments are canonical list identities (:func:`safepip.location.canonical`).
    Nothing touches the file system until :meth:`read`, :meth:`check` or :meth:`accept` is called.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- public API ---------------------------------------------------------------------------

    @staticmethod
    def key(list_id: str) -> str:
        """Return the stable id (64 lower-case hex) of the list ``list_id``."""
        # JSON, not string concatenation, so that no identity can be crafted to collide.
        blob = json.dumps(["safepip-state-key", FORMAT_VERSION, list_id], separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def read(self, list_id: str) -> Accepted | None:
        """Return the highest serial accepted for this list (with its body), or ``None``.

        Creates nothing and takes no lock (records are replaced atomically, so a reader sees the old
        or the new one). Raises :class:`StateError` for a corrupt, symlinked, foreign-owned or
        group/other-writable record or directory, naming the path.
        """
        history = self.history(list_id)
        return max(history, key=lambda a: a.serial) if history else None

    def history(self, list_id: str) -> list[Accepted]:
        """Every record of this list: its format 2 record and matching format 1 records.

        Read-only, as :meth:`read`, and raises as it does.
        """
        try:
            dir_fd = self._open_directory(create=False)
        except FileNotFoundError:
            return []
        try:
            return self._history(dir_fd, list_id)
        finally:
            os.close(dir_fd)

    def check(self, list_id: str, serial: int, sha256: str, *, min_serial: int) -> None:
        """Judge ``serial`` with body ``sha256`` against the stored records; write nothing.

        Raises :class:`FreshnessError` for a refused serial (see :func:`judge_serial`),
        :class:`StateError` for unsafe or corrupt state, :class:`ValueError` for arguments no
        verified list can produce.
        """
        _check_arguments(serial, sha256, min_serial)
        judge_history(
            serial=serial,
            sha256=sha256,
            history=self.history(list_id),
            min_serial=min_serial,
            list_name=list_id,
        )

    def accept(
        self,
        list_id: str,
        serial: int,
        sha256: str,
        *,
        min_serial: int,
        fingerprints: Iterable[str] = (),
        keep_newer: bool = False,
    ) -> bool:
        """Record that the list ``list_id`` with ``serial`` and body ``sha256`` is accepted.

        Under an exclusive lock, re-reads the stored records and judges the serial against them
        (so a concurrent run that stored a higher serial meanwhile is never overwritten: the stored
        serial never goes down), then replaces the list's record atomically. ``fingerprints`` (the
        run's pins) are stored for information. Creates the directory (``0700``) if missing.

        ``keep_newer``: when a higher serial is already stored (a concurrent run recorded it after
        this run judged its list), keep it and return ``False`` instead of raising. Returns ``True``
        when the list's record holds this serial and body afterwards (written, or already so).

        Raises :class:`FreshnessError` for a refused serial (the state is then unchanged),
        :class:`StateError` for corrupt or unwritable state or a lock held too long, and
        :class:`ValueError` for arguments no verified list can produce.
        """
        _check_arguments(serial, sha256, min_serial)
        fprs = _normalise_fingerprints(fingerprints, allow_empty=True)
        # A serial below min-serial is refused whatever is stored; deciding that first means a
        # refused run on a fresh machine does not even create the state directory.
        judge_history(
            serial=serial, sha256=sha256, history=(), min_serial=min_serial, list_name=list_id
        )
        dir_fd = self._open_directory(create=True)
        try:
            with self._locked(dir_fd):
                history = self._history(dir_fd, list_id)
                if keep_newer and any(a.serial > serial for a in history):
                    return False
                judge_history(
                    serial=serial,
                    sha256=sha256,
                    history=history,
                    min_serial=min_serial,
                    list_name=list_id,
                )
                name = self._filename(self.key(list_id))
                if self._read_record(dir_fd, name, list_id) == Accepted(serial, sha256):
                    return True  # nothing new: leave the file (and its mtime) alone
                record = {
                    "version": FORMAT_VERSION,
                    "list": list_id,
                    "fingerprints": fprs,
                    "serial": serial,
                    "sha256": sha256,
                }
                data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("ascii")
                self._write_atomically(dir_fd, name, data)
                return True
        finally:
            os.close(dir_fd)

    @staticmethod
    def _filename(key: str) -> str:
        return f"serial-{key}.json"

    # -- directory and lock ---------------------------------------------------------------------

    def _open_directory(self, *, create: bool) -> int:
        """Open the state directory as a file descriptor after checking it; return the descriptor.

        Every later operation is relative to this descriptor, so swapping the directory for a
        symlink after the check changes nothing. Raises :class:`FileNotFoundError` when it is
        missing and ``create`` is false, :class:`StateError` when it is unsafe or cannot be made.
        """
        path = self.directory
        if create:
            self._create_directory()
        try:
            st = path.lstat()
        except FileNotFoundError:
            if create:  # removed between mkdir and lstat: treat as unwritable rather than loop
                raise StateError(
                    f"trust state directory {path} vanished while creating it"
                ) from None
            raise
        except OSError as exc:
            raise StateError(
                f"cannot inspect trust state directory {path}: {exc.strerror}",
                hint=f"check the permissions of {path.parent}",
            ) from exc
        if stat.S_ISLNK(st.st_mode):
            raise StateError(
                f"trust state directory {path} is a symlink; refusing to follow it",
                hint="replace the symlink with a real directory owned by you, "
                "or point XDG_STATE_HOME elsewhere",
            )
        if not stat.S_ISDIR(st.st_mode):
            raise StateError(
                f"trust state directory {path} is not a directory",
                hint="move that file out of the way; safepip never removes it on its own",
            )
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            dir_fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise StateError(
                    f"trust state directory {path} is a symlink; refusing to follow it",
                    hint="replace the symlink with a real directory owned by you",
                ) from exc
            raise StateError(
                f"cannot open trust state directory {path}: {exc.strerror}",
                hint=f"check the permissions of {path}",
            ) from exc
        try:
            self._check_owner_and_mode(os.fstat(dir_fd), path, "directory")
        except BaseException:
            os.close(dir_fd)
            raise
        return dir_fd

    def _create_directory(self) -> None:
        """Create the state directory (``0700``) and missing parents; an existing one is kept."""
        path = self.directory
        try:
            # Parents get the usual umask-governed mode: they are the user's (XDG), not ours.
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create trust state directory {path}: {exc.strerror or exc}",
                hint="make sure the parent directory is writable, or set XDG_STATE_HOME",
            ) from exc
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass  # already there (or made by a concurrent run); _open_directory checks what it is
        except OSError as exc:
            raise StateError(
                f"cannot create trust state directory {path}: {exc.strerror}",
                hint="make sure the parent directory is writable, or set XDG_STATE_HOME",
            ) from exc

    @staticmethod
    def _check_owner_and_mode(st: os.stat_result, path: Path, what: str) -> None:
        """Raise :class:`StateError` unless ``st`` is owned by us and not group/other-writable."""
        if st.st_uid != os.geteuid():
            raise StateError(
                f"trust state {what} {path} is owned by uid {st.st_uid}, not by you "
                f"(uid {os.geteuid()})",
                hint="another account could rewrite it; use a state directory of your own "
                "(XDG_STATE_HOME), or chown it if it is yours",
            )
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise StateError(
                f"trust state {what} {path} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o})",
                hint=_CHMOD_HINT.format(path=path),
            )

    @contextlib.contextmanager
    def _locked(self, dir_fd: int) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the lock file for the duration of the block.

        Raises :class:`StateError` when the lock file is unsafe or the lock stays taken for
        :data:`LOCK_TIMEOUT_SECONDS`. The lock is released (and the file closed) in all cases.
        """
        lock_path = self.directory / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(LOCK_NAME, flags, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            raise self._os_error("open trust state lock file", lock_path, exc) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StateError(
                    f"trust state lock file {lock_path} is not a regular file",
                    hint="remove it; it holds no data",
                )
            self._check_owner_and_mode(st, lock_path, "lock file")
            # Poll rather than block so that a stopped process cannot hang every later run.
            deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StateError(
                            f"another safepip run has held the trust state lock {lock_path} "
                            f"for more than {LOCK_TIMEOUT_SECONDS:g} s",
                            hint="wait for the other run to finish, or find the stuck process",
                        ) from None
                    time.sleep(0.005)
                except OSError as exc:
                    raise self._os_error("lock trust state lock file", lock_path, exc) from exc
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- records --------------------------------------------------------------------------------

    def _history(self, dir_fd: int, list_id: str) -> list[Accepted]:
        """The format 2 record of ``list_id`` and every format 1 record naming the same list."""
        records: list[Accepted] = []
        current = self._read_record(dir_fd, self._filename(self.key(list_id)), list_id)
        if current is not None:
            records.append(current)
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError as exc:
            raise self._os_error("list trust state directory", self.directory, exc) from exc
        for name in names:
            match = _LEGACY_NAME_RE.fullmatch(name)
            if match is None:
                continue
            legacy = self._read_legacy(dir_fd, name, match.group(1))
            if legacy is not None and legacy[0] == list_id:
                records.append(legacy[1])
        return records

    def _read_record(self, dir_fd: int, name: str, list_id: str) -> Accepted | None:
        """The format 2 record ``name``, or ``None``; raise :class:`StateError` if bad."""
        data = self._read_file(dir_fd, name)
        if data is None:
            return None
        path = self.directory / name
        obj = self._parse_json(data, path, _RECORD_KEYS, FORMAT_VERSION)
        if not isinstance(obj["list"], str):
            raise self._corrupt(path, "list is not a string")
        # The file name is a hash of the identity; a record that names another list was copied
        # or renamed here, and its serial says nothing about this list.
        if obj["list"] != list_id:
            raise self._corrupt(path, "it records another list than its name says")
        return self._accepted(obj, path)

    def _read_legacy(self, dir_fd: int, name: str, key: str) -> tuple[str, Accepted] | None:
        """A format 1 record as (canonical identity of its URL, record), or ``None`` if gone."""
        data = self._read_file(dir_fd, name)
        if data is None:
            return None
        path = self.directory / name
        obj = self._parse_json(data, path, _LEGACY_KEYS, LEGACY_VERSION)
        url = obj["url"]
        if not isinstance(url, str):
            raise self._corrupt(path, "url is not a string")
        accepted = self._accepted(obj, path)
        try:
            expected = legacy_key(url, obj["fingerprints"])
        except ValueError:
            expected = ""
        # The name is a hash of (url, keys): a record whose content says otherwise was copied or
        # edited, and its serial cannot be attributed to any list.
        if key != expected:
            raise self._corrupt(path, "it records another list URL or key set than its name says")
        # Format 1 identities were verbatim URLs or absolute paths: both canonicalise as now.
        return location.canonical(url, base_dir=Path("/")), accepted

    def _read_file(self, dir_fd: int, name: str) -> bytes | None:
        """The bytes of the record file ``name`` (size-capped), or ``None`` when it is missing."""
        path = self.directory / name
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error("inspect trust state file", path, exc) from exc
        if stat.S_ISLNK(st.st_mode):
            raise StateError(
                f"trust state file {path} is a symlink; refusing to follow it",
                hint="replace it with the file it points to, after checking that file",
            )
        # O_NOFOLLOW closes the race with a symlink swapped in after lstat; O_NONBLOCK keeps a FIFO
        # planted there from hanging the run (S_ISREG below then refuses it).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(
                    f"trust state file {path} is a symlink; refusing to follow it",
                    hint="replace it with the file it points to, after checking that file",
                ) from exc
            raise self._os_error("open trust state file", path, exc) from exc
        try:
            fst = os.fstat(fd)
            if not stat.S_ISREG(fst.st_mode):
                raise StateError(
                    f"trust state file {path} is not a regular file",
                    hint="move it out of the way after checking what it is",
                )
            self._check_owner_and_mode(fst, path, "file")
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_RECORD_BYTES:
                chunk = os.read(fd, MAX_RECORD_BYTES + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise self._os_error("read trust state file", path, exc) from exc
        finally:
            os.close(fd)
        data = b"".join(chunks)
        if len(data) > MAX_RECORD_BYTES:
            raise self._corrupt(path, f"larger than {MAX_RECORD_BYTES} bytes")
        return data

    def _parse_json(
        self, data: bytes, path: Path, keys: frozenset[str], version: int
    ) -> dict[str, Any]:
        """The record's JSON object with exactly ``keys`` and ``version``, else StateError."""
        if not data:
            raise self._corrupt(path, "empty (truncated?)")

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            names = [k for k, _ in pairs]
            if len(set(names)) != len(names):
                raise ValueError("duplicate key")
            return dict(pairs)

        def no_constants(name: str) -> None:
            raise ValueError(f"non-JSON constant {name}")

        try:
            obj = json.loads(
                data.decode("utf-8"),
                object_pairs_hook=no_duplicates,
                parse_constant=no_constants,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            # JSONDecodeError is a ValueError; a truncated file lands here too.
            raise self._corrupt(path, f"not valid JSON (truncated?): {exc}") from exc
        if not isinstance(obj, dict):
            raise self._corrupt(path, "not a JSON object")
        found = obj.get("version")
        if not isinstance(found, int) or isinstance(found, bool) or found != version:
            if isinstance(found, int) and not isinstance(found, bool) and found > FORMAT_VERSION:
                raise self._corrupt(
                    path,
                    f"unknown format version {found!r} (this safepip reads {FORMAT_VERSION})",
                    hint="a newer safepip may have written it; upgrade safepip rather than delete "
                    "it",
                )
            raise self._corrupt(path, f"format version {found!r} where {version} belongs")
        if set(obj) != keys:
            missing = sorted(keys - set(obj))
            extra = sorted(set(obj) - keys)
            raise self._corrupt(path, f"wrong keys (missing {missing}, unexpected {extra})")
        return obj

    def _accepted(self, obj: dict[str, Any], path: Path) -> Accepted:
        """The serial and sha256 of a parsed record, checked; the fingerprints' shape, checked."""
        serial = obj["serial"]
        if not _is_int(serial) or serial < 0:
            raise self._corrupt(path, f"serial is {serial!r}, not a non-negative integer")
        sha = obj["sha256"]
        if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
            raise self._corrupt(path, "sha256 is not 64 lower-case hex digits")
        fprs = obj["fingerprints"]
        if not isinstance(fprs, list) or not all(isinstance(f, str) for f in fprs):
            raise self._corrupt(path, "fingerprints is not a list of strings")
        return Accepted(serial=serial, sha256=sha)

    def _write_atomically(self, dir_fd: int, name: str, data: bytes) -> None:
        """Replace ``name`` in the directory with ``data``: temp file, fsync, rename, fsync dir.

        Raises :class:`StateError` on any failure; the temporary file is removed then.
        """
        path = self.directory / name
        tmp_name = f".tmp-{secrets.token_hex(8)}-{name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(tmp_name, flags, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            raise self._os_error(
                "create a temporary file beside trust state file", path, exc
            ) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp_name, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name, dir_fd=dir_fd)
            if isinstance(exc, OSError):
                raise self._os_error("write trust state file", path, exc) from exc
            raise
        try:
            # Make the rename itself durable, so a power cut cannot bring back the old serial.
            os.fsync(dir_fd)
        except OSError as exc:
            raise self._os_error("sync the directory of trust state file", path, exc) from exc

    # -- errors ---------------------------------------------------------------------------------

    @staticmethod
    def _corrupt(path: Path, why: str, *, hint: str | None = None) -> StateError:
        return StateError(
            f"trust state file {path} is corrupt: {why}",
            hint=hint
            or "inspect the file (it may have been tampered with); safepip never resets it on its "
            "own. Remove it only if you are sure, which forgets the serial it protected",
        )

    @staticmethod
    def _os_error(action: str, path: Path, exc: OSError) -> StateError:
        return StateError(
            f"cannot {action} {path}: {exc.strerror or exc}",
            hint=f"check that {path.parent} exists, is yours and is writable",
        )


def _check_arguments(serial: int, sha256: str, min_serial: int) -> None:
    """Raise :class:`ValueError` for arguments no verified list can produce (a caller's bug)."""
    if not _is_int(serial) or serial < 0:
        raise ValueError(f"serial must be a non-negative int, not {serial!r}")
    if not _is_int(min_serial) or min_serial < 0:
        raise ValueError(f"min_serial must be a non-negative int, not {min_serial!r}")
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"sha256 must be 64 lower-case hex digits, not {sha256!r}")
