"""The last verified copy of each list and its signature, for ``check`` when the server is down.

Nothing read from here is trusted as is: the caller verifies a cached copy exactly as a fetched one
(signature against the pins, format, expiry, serial against the trust state) on every use. The
cache only makes ``safepip check`` work offline; it can never make an older or unsigned list pass.

Storage: ``$XDG_CACHE_HOME/safepip/lists/`` (or ``~/.cache/safepip/lists/``), directories
``0700``, one JSON file per list named by the sha256 of its canonical identity
(:func:`safepip.location.canonical`), holding the list's and signature's bytes together so that
they are replaced as a pair, atomically (temporary file, fsync, rename)::

    {"version": 2, "list": "https://…", "stored": "2026-11-30T01:00:00+00:00",
     "data": 9900093, "signature": 228,
     "validators": {"list": {"etag": "\"5f…\"", "last-modified": "Mon, 30 Nov 2026 …"},
                    "signature": {"etag": null, "last-modified": null}}}
    <the list's 9900093 bytes><the signature's 228 bytes>

(the record on one line, then a newline, then the bytes as they are, no encoding).

The validators are what the server sent with those bytes (``ETag``, ``Last-Modified``): the next
fetch sends them back (``If-None-Match``, ``If-Modified-Since``), and on a 304 the stored bytes
are verified in full, exactly as fetched ones, so a 304 saves the transfer and never a check.
Version 1 files (one JSON object, the bytes in base64, no validators) are still read.

A copy is written only after a command that used the list succeeded (a refused run changes no
cache). A symlinked, foreign-owned or group/other-writable cache, or a file that is not exactly
that shape, is refused (:class:`~safepip.errors.FetchError`) when it is needed, never repaired.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from safepip.errors import FetchError
from safepip.fetch import Validators
from safepip.files import xdg_folder

FORMAT_VERSION: Final = 2
_KEYS_V1: Final = frozenset({"version", "list", "stored", "data", "signature"})
_KEYS: Final = _KEYS_V1 | {"validators"}
#: A cache's temporary file nobody wrote to for this long was left by a killed run, and is
#: removed (here by the next store; in the wheel cache by the next prune, if unlocked).
STALE_SECONDS: Final = 3600


@dataclass(frozen=True)
class CachedList:
    """A list and its signature as last verified on this machine, and when they were stored."""

    list_id: str
    data: bytes
    signature: bytes
    stored: datetime
    list_validators: Validators = field(default_factory=Validators)
    signature_validators: Validators = field(default_factory=Validators)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/safepip`` if that is absolute, else ``~/.cache/safepip``.

    Raises :class:`FetchError` when no home directory can be found.
    """
    folder = xdg_folder(environ, "XDG_CACHE_HOME", ".cache")
    if folder is None:
        raise FetchError(
            "cannot find a cache directory: XDG_CACHE_HOME and HOME are unset",
            hint="set XDG_CACHE_HOME to an absolute path owned by you",
        )
    return folder


def unsafe(st: os.stat_result, *, directory: bool) -> str:
    """Why a cache file or folder with status ``st`` (from ``lstat`` or ``fstat``) must not be
    used (a symlink or another kind of file, another owner, group/other-writable), or ``""``."""
    kind = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    if stat.S_ISLNK(st.st_mode) or not kind:
        return f"not {'a real directory' if directory else 'a regular file'} (a symlink?)"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "writable by group or others"
    return ""


class ListCache:
    """The cached lists under ``directory`` (the ``safepip`` cache folder); see the module doc."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory) / "lists"

    def path(self, list_id: str) -> Path:
        """The file that holds the copy of the list ``list_id``."""
        key = hashlib.sha256(f"safepip-list-cache\0{list_id}".encode()).hexdigest()
        return self.directory / f"{key}.json"

    def load(self, list_id: str, *, max_bytes: int) -> CachedList | None:
        """The cached copy of ``list_id``, or ``None`` when there is none.

        ``max_bytes`` caps the list and the signature, as for a fetch. Raises :class:`FetchError`
        for an unsafe (symlinked, foreign-owned, group/other-writable) or malformed cache file.
        """
        path = self.path(list_id)
        for folder in (self.directory.parent, self.directory):
            try:
                self._check(folder.lstat(), folder, directory=True)
            except FileNotFoundError:
                return None
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._bad(path, f"cannot open it: {exc.strerror}") from exc
        try:
            raw = self._read(fd, path, limit=2 * (4 * max_bytes // 3 + 4) + 64 * 1024)
        finally:
            os.close(fd)
        head, payload = _split(raw)
        try:
            obj = json.loads(head.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._bad(path, "not valid JSON") from exc
        shapes: dict[object, frozenset[str]] = {1: _KEYS_V1, FORMAT_VERSION: _KEYS}
        if not isinstance(obj, dict) or shapes.get(obj.get("version")) != frozenset(obj):
            raise self._bad(path, "not a cached list of this safepip")
        if obj["list"] != list_id:
            raise self._bad(path, "it holds another list than its name says")
        try:
            data, signature = _pair(obj, payload)
            stored = datetime.fromisoformat(obj["stored"])
        except (TypeError, ValueError, binascii.Error) as exc:
            raise self._bad(path, "a field is malformed") from exc
        if stored.tzinfo is None:
            raise self._bad(path, "its time has no time zone")
        found = obj.get("validators", {"list": {}, "signature": {}})
        if not isinstance(found, dict) or set(found) != {"list", "signature"}:
            raise self._bad(path, "its validators are malformed")
        return CachedList(
            list_id,
            data,
            signature,
            stored,
            self._validators(found["list"], path),
            self._validators(found["signature"], path),
        )

    def _read(self, fd: int, path: Path, *, limit: int) -> bytes:
        """The bytes of the cache file open as ``fd``: at most ``limit``, and not one more than
        it held when it was looked at.

        Raises:
            FetchError: an unsafe or oversized file, or one that grew while it was read.
        """
        status = os.fstat(fd)
        self._check(status, path, directory=False)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            # One more byte than the file holds: no buffer of the whole cap is allocated for a
            # list of a tenth of it, and a file that grew meanwhile shows it.
            raw = handle.read(min(status.st_size, limit) + 1)
        if len(raw) > limit:
            raise self._bad(path, "larger than a list and its signature can be")
        if len(raw) > status.st_size:
            raise self._bad(path, "it changed while it was read")
        return raw

    def _validators(self, raw: object, path: Path) -> Validators:
        if not isinstance(raw, dict) or not set(raw) <= {"etag", "last-modified"}:
            raise self._bad(path, "its validators are malformed")
        etag, modified = raw.get("etag"), raw.get("last-modified")
        if not all(v is None or isinstance(v, str) for v in (etag, modified)):
            raise self._bad(path, "its validators are malformed")
        validators = Validators.from_headers(etag, modified)
        if (validators.etag, validators.last_modified) != (etag, modified):
            raise self._bad(path, "its validators are malformed")
        return validators

    def store(
        self,
        list_id: str,
        data: bytes,
        signature: bytes,
        *,
        now: datetime,
        list_validators: Validators = Validators(),  # noqa: B008 (frozen)
        signature_validators: Validators = Validators(),  # noqa: B008 (frozen)
    ) -> None:
        """Keep ``data`` and ``signature`` (just verified) as the copy of ``list_id``, atomically,
        with the validators the server sent with each.

        Raises :class:`OSError` when the cache cannot be written, :class:`FetchError` when it is
        unsafe; the caller decides whether that matters (it never does for the run's result).
        """
        for folder in (self.directory.parent, self.directory):
            folder.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
            self._check(folder.lstat(), folder, directory=True)
        record = {
            "version": FORMAT_VERSION,
            "list": list_id,
            "stored": now.isoformat(),
            "data": len(data),
            "signature": len(signature),
            "validators": {
                "list": _validators_json(list_validators),
                "signature": _validators_json(signature_validators),
            },
        }
        # The bytes themselves follow the one-line record as they are: a 10 MB list is neither
        # encoded nor decoded on every run (a 304 reads it back).
        head = json.dumps(record, sort_keys=True).encode("ascii") + b"\n"
        path = self.path(list_id)
        tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
        try:
            try:
                _write_all(fd, [head, data, signature])
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Remove the temporary files of runs killed while they stored a copy: those nobody
        wrote to for an hour (a store takes milliseconds). Best effort."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if entry.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        status = entry.stat(follow_symlinks=False)
                        if time.time() - status.st_mtime > STALE_SECONDS:
                            Path(entry.path).unlink()

    def _check(self, st: os.stat_result, path: Path, *, directory: bool) -> None:
        why = unsafe(st, directory=directory)
        if why:
            raise self._bad(path, why)

    @staticmethod
    def _bad(path: Path, why: str) -> FetchError:
        return FetchError(
            f"cached list {path}: {why}",
            hint="the cache is only a copy: remove that file once you have looked at it, and run "
            "safepip again when the list's server can be reached",
        )


def _split(raw: bytes) -> tuple[bytes, memoryview]:
    """The record line and a view of the payload after it (a view, not a partition: the list's
    bytes are then copied once, by :func:`_pair`, not twice)."""
    end = raw.find(b"\n")
    if end < 0:
        return raw, memoryview(b"")
    return raw[:end], memoryview(raw)[end + 1 :]


def _pair(record: dict[str, object], payload: memoryview) -> tuple[bytes, bytes]:
    """The list's and the signature's bytes: in base64 in a version 1 record, else the payload
    that follows the record, split at the sizes it gives.

    Raises:
        ValueError, binascii.Error: malformed fields, or sizes that do not fit the payload.
    """
    data, signature = record["data"], record["signature"]
    if record["version"] == 1:
        if payload or not isinstance(data, str) or not isinstance(signature, str):
            raise ValueError("not a version 1 record")
        return base64.b64decode(data, validate=True), base64.b64decode(signature, validate=True)
    if type(data) is not int or type(signature) is not int:
        raise ValueError("sizes are not integers")
    if data < 0 or signature < 0 or data + signature != len(payload):
        raise ValueError("sizes do not match the bytes")
    return payload[:data].tobytes(), payload[data:].tobytes()


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write ``parts`` one after the other to ``fd``, without joining them into a new buffer
    (a 10 MB list would be copied, and its pages faulted in, once more)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        # writev is POSIX; elsewhere one part at a time.
        written = os.writev(fd, views) if hasattr(os, "writev") else os.write(fd, views[0])
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views:
            views[0] = views[0][written:]


def _validators_json(validators: Validators) -> dict[str, str | None]:
    return {"etag": validators.etag, "last-modified": validators.last_modified}
