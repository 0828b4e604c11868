"""The highest list serial this machine has accepted, per list URL and pinned key set.

This is the memory behind rollback and equivocation protection (THREATS.md class B): a list is
refused when its serial is lower than one already accepted, or equal to it with other bytes.

Storage: one small JSON file per (list URL, pinned key set), named ``list-<key>.json`` inside the
state directory, plus a ``lock`` file that serialises writers. One file per key rather than one
shared file because a damaged record then blocks only the project it belongs to (it is still
refused, never reset), every write replaces exactly one record, and each file is self-describing
(it repeats its URL and fingerprints, and is checked against them on every read). A record::

    {"fingerprints": ["ABCD…"], "serial": 42, "sha256": "3f1c…", "url": "https://…", "version": 1}

Anything that is not exactly that shape is refused with :class:`~safepip.errors.StateError`, and
the file is left as it is for a human to inspect. The same goes for a state directory, record or
lock file that is a symlink or not a regular file / directory, that is owned by another user, or
that is writable by group or others (another account could then roll the serial back). Only the
final path component is checked: ``$HOME`` and ``~/.local/state`` belong to the user's own setup,
and may legitimately be symlinks.

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
import pwd
import re
import secrets
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from safepip.errors import FreshnessError, StateError

#: Version of the record format written and the only one read.
FORMAT_VERSION: Final = 1
#: Name of the lock file inside the state directory.
LOCK_NAME: Final = "lock"
#: How long :meth:`TrustState.accept` waits for another run's lock before giving up. The lock is
#: only ever held for one small read and one small write, so a wait this long means a stuck process.
LOCK_TIMEOUT_SECONDS: Final[float] = 30.0
#: A record is about 300 bytes; anything far larger is not one of ours.
MAX_RECORD_BYTES: Final = 64 * 1024

_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT_RE: Final = re.compile(r"[0-9A-F]+")
_RECORD_KEYS: Final = frozenset({"version", "url", "fingerprints", "serial", "sha256"})
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
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "safepip"
    home = environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = ""
    if not home or not Path(home).is_absolute():
        raise StateError(
            "cannot find a directory for the trust state: "
            "XDG_STATE_HOME and HOME are unset and the user has no home directory",
            hint="set XDG_STATE_HOME to an absolute path owned by you",
        )
    return Path(home) / ".local" / "state" / "safepip"


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


def _normalise_fingerprints(fingerprints: Iterable[str]) -> list[str]:
    """Return the fingerprints without spaces, upper-case, de-duplicated and sorted.

    Raises :class:`ValueError` (a bug in the caller: the config module validates pins) for an empty
    set or a fingerprint that is not hex.
    """
    if isinstance(fingerprints, str):
        # A bare string is iterable too; splitting it into characters would silently build a key.
        raise ValueError("fingerprints must be a collection of strings, not one string")
    result = sorted({"".join(fpr.split()).upper() for fpr in fingerprints})
    if not result:
        raise ValueError("the pinned key set is empty")
    for fpr in result:
        if not _FINGERPRINT_RE.fullmatch(fpr):
            raise ValueError(f"not a hex fingerprint: {fpr!r}")
    return result


def _is_int(value: object) -> bool:
    # bool is a subclass of int; `true` in a record is corruption, not serial 1.
    return type(value) is int


class TrustState:
    """The trust state kept in one directory; see the module docstring for the format.

    Nothing touches the file system until :meth:`read` or :meth:`accept` is called.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- public API ---------------------------------------------------------------------------

    def key(self, list_url: str, fingerprints: Iterable[str]) -> str:
        """Return the stable id (64 lower-case hex) of ``list_url`` with this pinned key set.

        The URL is taken verbatim; the fingerprints are compared case- and space-insensitively and
        in any order. Raises :class:`ValueError` for an empty or non-hex key set.
        """
        fprs = _normalise_fingerprints(fingerprints)
        # JSON, not string concatenation, so that no URL can be crafted to collide with another
        # (url, keys) pair.
        blob = json.dumps(["safepip-state-key", 1, list_url, fprs], separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def read(self, list_url: str, fingerprints: Iterable[str]) -> Accepted | None:
        """Return what was last accepted for this list and key set, or ``None`` if nothing was.

        Creates nothing and takes no lock (records are replaced atomically, so a reader sees the old
        or the new one). Raises :class:`StateError` for a corrupt, symlinked, foreign-owned or
        group/other-writable record or directory, naming the path.
        """
        fprs = _normalise_fingerprints(fingerprints)
        key = self.key(list_url, fprs)
        try:
            dir_fd = self._open_directory(create=False)
        except FileNotFoundError:
            return None
        try:
            return self._read_record(dir_fd, key, list_url, fprs)
        finally:
            os.close(dir_fd)

    def accept(
        self,
        list_url: str,
        fingerprints: Iterable[str],
        serial: int,
        sha256: str,
        *,
        min_serial: int,
    ) -> None:
        """Record that the list at ``list_url`` with ``serial`` and body ``sha256`` is accepted.

        Under an exclusive lock, re-reads the stored record, judges the new serial against it with
        :func:`judge_serial` (so a concurrent run that stored a higher serial meanwhile makes this
        call refuse: the stored serial never goes down), then replaces the record atomically.
        Creates the directory (``0700``) if missing.

        Raises :class:`FreshnessError` for a refused serial (the state is then unchanged),
        :class:`StateError` for corrupt or unwritable state or a lock held too long, and
        :class:`ValueError` for arguments no verified list can produce.
        """
        if not _is_int(serial) or serial < 0:
            raise ValueError(f"serial must be a non-negative int, not {serial!r}")
        if not _is_int(min_serial) or min_serial < 0:
            raise ValueError(f"min_serial must be a non-negative int, not {min_serial!r}")
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, not {sha256!r}")
        fprs = _normalise_fingerprints(fingerprints)
        key = self.key(list_url, fprs)
        # A serial below min-serial is refused whatever is stored; deciding that first means a
        # refused run on a fresh machine does not even create the state directory.
        judge_serial(
            serial=serial, sha256=sha256, previous=None, min_serial=min_serial, list_name=list_url
        )
        dir_fd = self._open_directory(create=True)
        try:
            with self._locked(dir_fd):
                previous = self._read_record(dir_fd, key, list_url, fprs)
                judge_serial(
                    serial=serial,
                    sha256=sha256,
                    previous=previous,
                    min_serial=min_serial,
                    list_name=list_url,
                )
                if previous == Accepted(serial, sha256):
                    return  # nothing new: leave the file (and its mtime) alone
                record = {
                    "version": FORMAT_VERSION,
                    "url": list_url,
                    "fingerprints": fprs,
                    "serial": serial,
                    "sha256": sha256,
                }
                data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("ascii")
                self._write_atomically(dir_fd, self._filename(key), data)
        finally:
            os.close(dir_fd)

    # -- directory and lock ---------------------------------------------------------------------

    @staticmethod
    def _filename(key: str) -> str:
        return f"list-{key}.json"

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

    def _read_record(
        self, dir_fd: int, key: str, list_url: str, fprs: list[str]
    ) -> Accepted | None:
        """Return the stored record for ``key`` or ``None``; raise :class:`StateError` if bad."""
        name = self._filename(key)
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
        return self._parse_record(data, path, list_url, fprs)

    def _parse_record(self, data: bytes, path: Path, list_url: str, fprs: list[str]) -> Accepted:
        """Validate one record's bytes strictly; raise :class:`StateError` for any deviation."""
        if not data:
            raise self._corrupt(path, "empty (truncated?)")

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
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
        if set(obj) != _RECORD_KEYS:
            missing = sorted(_RECORD_KEYS - set(obj))
            extra = sorted(set(obj) - _RECORD_KEYS)
            raise self._corrupt(path, f"wrong keys (missing {missing}, unexpected {extra})")
        version = obj["version"]
        if not _is_int(version) or version != FORMAT_VERSION:
            raise self._corrupt(
                path,
                f"unknown format version {version!r} (this safepip reads {FORMAT_VERSION})",
                hint="a newer safepip may have written it; upgrade safepip rather than delete it",
            )
        serial = obj["serial"]
        if not _is_int(serial) or serial < 0:
            raise self._corrupt(path, f"serial is {serial!r}, not a non-negative integer")
        sha = obj["sha256"]
        if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha):
            raise self._corrupt(path, "sha256 is not 64 lower-case hex digits")
        url = obj["url"]
        stored_fprs = obj["fingerprints"]
        if not isinstance(url, str):
            raise self._corrupt(path, "url is not a string")
        if not isinstance(stored_fprs, list) or not all(isinstance(f, str) for f in stored_fprs):
            raise self._corrupt(path, "fingerprints is not a list of strings")
        # The file name is a hash of (url, keys); a record that names another list was copied or
        # renamed here, and its serial says nothing about this list.
        if url != list_url or stored_fprs != fprs:
            raise self._corrupt(path, "it records another list URL or key set than its name says")
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
