"""Wheels already downloaded and hash-checked, kept by sha256 so a later run skips the network.

Storage: ``$XDG_CACHE_HOME/safepip/wheels/`` (or ``~/.cache/safepip/wheels/``), directories
``0700``, one file per wheel named by the sha256 of its bytes (``wheels/3f/3f1c…``), mode
``0600``, written atomically (temporary file, fsync, rename). A download is copied into a
temporary file beside the entries as it streams, from the very chunks it hashes; that file
becomes the entry only if their digest is the sha256 the list vouches for, and is removed
otherwise. It keeps the free-space reserve of a download on its own file system, with room to
spare, and it never grows beyond the cache's cap. A download about to stop at its reserve first
has the cache give back what this run took (:meth:`WheelCache.make_room`: the copies being
written and the entries written), so a cache on its file system never makes it stop. A
temporary file is locked while it is written; one a killed run left behind (unlocked, an hour
old) is removed by the next prune.

Nothing read from here is trusted as is: every read re-hashes the bytes it hands out, in the same
pass that copies them into the caller's private folder (or hashes an open descriptor the caller
then reads), so the bytes used are the bytes hashed. A file whose hash is not its name (a
poisoned or truncated entry) is removed and the read is a miss: the wheel is downloaded again. A
symlink, a foreign-owned or group/other-writable folder, or an entry that is not a regular file
is refused (:class:`~safepip.errors.FetchError`), never followed or repaired.

The cache is bounded: after each store, entries are removed oldest-used first (a hit refreshes an
entry's modification time) until the total is within ``max_bytes`` (``--cache-max-mb``,
``SAFEPIP_CACHE_MAX_MB``; default :data:`DEFAULT_MAX_BYTES`). ``--no-cache-dir`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from safepip.errors import FetchError, UsageError
from safepip.fetch import free_and_reserve
from safepip.listcache import STALE_SECONDS, default_cache_dir, unsafe

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: age alone tells an abandoned file
    fcntl = None  # type: ignore[assignment]

#: The default size cap of the wheel cache.
DEFAULT_MAX_BYTES: Final = 2 * 1024 * 1024 * 1024
#: The largest ``--cache-max-mb``: a pebibyte is already no cap.
MAX_MB: Final = 1024**3
_CHUNK: Final = 1024 * 1024
#: The free space a new entry keeps beyond a download's reserve: two 1 MiB chunks for each of
#: the eight download workers. Sharing a file system with the downloads, entries give way (and
#: free what they took) before a download's own free-space check can trip because of them.
ENTRY_HEADROOM: Final = 16 * 1024 * 1024
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Pruned:
    """What :meth:`WheelCache.prune` removed, and what the cache holds afterwards."""

    removed: int
    freed: int
    kept: int
    size: int


def configured(
    environ: Mapping[str, str], *, disabled: bool, max_mb: float | None
) -> WheelCache | None:
    """The wheel cache a run uses, or ``None`` (``--no-cache-dir``, or no home to put it in).

    ``max_mb`` is the size cap in MiB (``--cache-max-mb``), else ``SAFEPIP_CACHE_MAX_MB`` from
    ``environ``, else :data:`DEFAULT_MAX_BYTES`; ``0`` disables the cache as well.

    Raises:
        UsageError: ``SAFEPIP_CACHE_MAX_MB`` is not a number of MiB.
    """
    if disabled:
        return None
    if max_mb is None and environ.get("SAFEPIP_CACHE_MAX_MB"):
        text = environ["SAFEPIP_CACHE_MAX_MB"]
        try:
            max_mb = float(text)
        except ValueError:
            max_mb = -1.0
        if not (math.isfinite(max_mb) and 0 <= max_mb <= MAX_MB):
            raise UsageError(
                f"SAFEPIP_CACHE_MAX_MB={text!r}: not a size in MiB",
                hint=f"give a number of MiB from 0 (no cache) to {MAX_MB}",
            )
    cap = DEFAULT_MAX_BYTES if max_mb is None else int(max_mb * 1024 * 1024)
    if cap <= 0:
        return None
    try:
        return WheelCache(default_cache_dir(environ), max_bytes=cap)
    except FetchError:
        return None


class WheelCache:
    """The content-addressed wheels under ``directory`` (the ``safepip`` cache folder).

    ``max_bytes`` caps the total size (see the module doc); ``0`` keeps nothing.
    """

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(directory)
        self.directory = self.root / "wheels"
        self.max_bytes = max_bytes
        # What this process is writing, and the entries it wrote: what make_room may take back.
        self._lock = threading.Lock()
        self._writing: set[NewEntry] = set()
        self._written: list[Path] = []

    def path(self, sha256: str) -> Path:
        """Where the wheel of ``sha256`` lives (whether or not it is there).

        Raises:
            ValueError: ``sha256`` is not 64 lower-case hex digits.
        """
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.directory / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """True when an entry for ``sha256`` exists (not yet re-hashed: a read may still miss)."""
        try:
            return stat.S_ISREG(self.path(sha256).lstat().st_mode)
        except OSError:
            return False

    @contextlib.contextmanager
    def open_verified(self, sha256: str) -> Iterator[BinaryIO | None]:
        """An open file of the entry ``sha256`` whose bytes were just hashed, or ``None``.

        The caller reads the yielded file (seeked to 0) and nothing else: those are the bytes
        that were hashed. A poisoned entry is removed and ``None`` yielded.

        Raises:
            FetchError: the cache folder or the entry is unsafe (symlink, owner, permissions).
        """
        fd = self._open(sha256)
        if fd is None:
            yield None
            return
        with os.fdopen(fd, "rb") as handle:
            digest = hashlib.sha256()
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
            if digest.hexdigest() != sha256:
                self._evict(sha256)
                yield None
                return
            self._touch(sha256)
            handle.seek(0)
            yield handle

    def copy_to(self, sha256: str, dest: Path) -> bool:
        """Copy the entry ``sha256`` into the new file ``dest`` (``0600``), hashing as it copies.

        Returns False (and leaves no ``dest``) on a miss, including a poisoned entry, which is
        removed. ``dest`` must not exist: it is created exclusively, never through a symlink.

        Raises:
            FetchError: the cache folder or the entry is unsafe, or ``dest`` cannot be written.
        """
        fd = self._open(sha256)
        if fd is None:
            return False
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            out = os.open(dest, flags, 0o600)
        except OSError as exc:
            os.close(fd)
            raise FetchError(f"{dest}: cannot create: {exc.strerror or exc}") from exc
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "rb") as source, os.fdopen(out, "wb") as target:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    target.write(chunk)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            raise
        if digest.hexdigest() != sha256:
            dest.unlink()
            self._evict(sha256)
            return False
        self._touch(sha256)
        return True

    def store(self, source: Path, sha256: str, *, prune: bool = True) -> None:
        """Keep a copy of ``source``, whose sha256 the caller just checked, then prune.

        The copy is hashed again while written, and dropped if it differs. An entry already
        present is left alone. ``prune=False``: the caller calls :meth:`prune` once after a
        batch of stores (each prune reads the whole cache).

        Raises:
            OSError: ``source`` cannot be read.
            FetchError: the cache folder is unsafe.
        """
        with self.entry(sha256) as entry:
            if entry is None:
                return
            digest = hashlib.sha256()
            with Path(source).open("rb") as src:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    entry.write(chunk)
            entry.commit(digest.hexdigest())
        if prune:
            self.prune()

    @contextlib.contextmanager
    def entry(self, sha256: str, *, reserve: int | None = None) -> Iterator[NewEntry | None]:
        """A new entry for ``sha256``, written while its bytes arrive, or ``None`` when the cache
        keeps nothing, already holds ``sha256``, or cannot be written (a cache that cannot take a
        wheel costs only the next run's download, never this run's result).

        The caller feeds it exactly the chunks it hashes (:meth:`NewEntry.write`) and, once their
        digest is ``sha256``, calls :meth:`NewEntry.commit`: so the entry's bytes are the bytes
        hashed, with no second read or hash. Leaving the block without a commit removes what was
        written. ``reserve``: the free space the download keeps (default: as
        :func:`safepip.fetch.free_space_reserve` of the cache's file system); the entry keeps
        :data:`ENTRY_HEADROOM` more, and is dropped rather than take it.

        Raises:
            FetchError: the cache folder is unsafe (symlink, owner, permissions): refused, as a
                read refuses it, never written through.
        """
        opened = self._new_entry(sha256, reserve)
        try:
            yield opened
        finally:
            if opened is not None:
                opened.discard()

    def _new_entry(self, sha256: str, reserve: int | None) -> NewEntry | None:
        if self.max_bytes <= 0:
            return None
        final = self.path(sha256)
        try:
            self._folders(create=True)
            with contextlib.suppress(FileExistsError):
                final.parent.mkdir(mode=0o700)
            self._check(final.parent.lstat(), final.parent, directory=True)
            if self.has(sha256):
                return None
            tmp = final.parent / f".tmp-{secrets.token_hex(8)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            file = os.fdopen(os.open(tmp, flags, 0o600), "wb")
        except OSError:
            return None
        _hold(file.fileno())  # a prune never removes a file someone is writing
        entry = NewEntry(
            file, tmp, final, sha256, reserve=reserve, cap=self.max_bytes, owner=self._finished
        )
        with self._lock:
            self._writing.add(entry)
        return entry

    def make_room(self) -> bool:
        """Give back the space this process's cache writes took: every entry being written is
        dropped and every entry written in this run removed (the next run downloads them
        again). Called by a download about to stop at its free-space reserve, so that a cache
        on its file system never makes it stop. Returns whether anything was freed."""
        with self._lock:
            writing, written = list(self._writing), self._written
            self._writing, self._written = set(), []
        freed = False
        for entry in writing:
            freed = entry.discard() or freed
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
                freed = True
        return freed

    def _finished(self, entry: NewEntry, kept: Path | None) -> None:
        with self._lock:
            self._writing.discard(entry)
            if kept is not None:
                self._written.append(kept)

    def prune(self, max_bytes: int | None = None) -> Pruned:
        """Remove entries, least recently used first, until the total is within ``max_bytes``
        (default: the cache's cap). Temporary files older runs left behind are removed too.

        Raises:
            FetchError: the cache folder is unsafe.
        """
        cap = self.max_bytes if max_bytes is None else max_bytes
        if not self._folders(create=False):
            return Pruned(0, 0, 0, 0)
        entries: list[tuple[float, int, Path]] = []
        for folder in self.directory.iterdir():
            status = folder.lstat()
            if not stat.S_ISDIR(status.st_mode):
                continue
            for path in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    status = path.lstat()
                    if path.name.startswith(".tmp-"):
                        _remove_if_abandoned(path, status)
                        continue
                    if stat.S_ISREG(status.st_mode):
                        entries.append((status.st_mtime, status.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = freed = 0
        for _, size, path in sorted(entries):
            if total <= cap:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            removed += 1
            freed += size
        return Pruned(removed, freed, len(entries) - removed, total)

    # --- checks -----------------------------------------------------------------------------

    def _open(self, sha256: str) -> int | None:
        """A read descriptor on the entry, or ``None`` when there is none."""
        if not self._folders(create=False):
            return None
        path = self.path(sha256)
        try:
            self._check(path.parent.lstat(), path.parent, directory=True)
        except FileNotFoundError:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink where an entry should be
            raise self._bad(path, f"cannot open it: {exc.strerror}") from exc
        try:
            self._check(os.fstat(fd), path, directory=False)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _folders(self, *, create: bool) -> bool:
        """Check (and with ``create``, make) the cache folders; False when they do not exist."""
        for folder in (self.root, self.directory):
            if create:
                folder.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    folder.mkdir(mode=0o700)
            try:
                self._check(folder.lstat(), folder, directory=True)
            except FileNotFoundError:
                return False
        return True

    def _evict(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def _touch(self, sha256: str) -> None:
        # The prune's "used": a hit makes the entry the newest. Best effort.
        with contextlib.suppress(OSError):
            os.utime(self.path(sha256), follow_symlinks=False)

    def _check(self, st: os.stat_result, path: Path, *, directory: bool) -> None:
        why = unsafe(st, directory=directory)
        if why:
            raise self._bad(path, why)

    @staticmethod
    def _bad(path: Path, why: str) -> FetchError:
        return FetchError(
            f"wheel cache {path}: {why}",
            hint="the cache is only a copy: remove it once you have looked at it, or run with "
            "--no-cache-dir",
        )


class NewEntry:
    """A cache entry being written from a download's chunks, under a temporary name.

    It never raises on a write: a cache that cannot be written (a full disk, say) must not fail
    the download it copies; the entry is then simply dropped, as it is when it would leave less
    than ``reserve`` (default: :func:`~safepip.fetch.free_space_reserve` of its file system) plus
    :data:`ENTRY_HEADROOM` free, or grow beyond ``cap`` bytes. :meth:`commit` makes it the entry
    only if the caller's digest of the very chunks written is the name it was opened for.
    """

    def __init__(
        self,
        file: BinaryIO,
        temporary: Path,
        final: Path,
        sha256: str,
        *,
        reserve: int | None = None,
        cap: int = DEFAULT_MAX_BYTES,
        owner: Callable[[NewEntry, Path | None], None] | None = None,
    ) -> None:
        self._file: BinaryIO | None = file
        self._temporary = temporary
        self._final = final
        self._sha256 = sha256
        self._reserve = reserve
        self._left = cap
        self._owner = owner
        # The download's thread writes and commits; another one may drop it (make_room).
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; on failure, or when it does not fit, stop writing and drop the
        entry (whatever comes after is not written either)."""
        with self._lock:
            file = self._file
            if file is None:
                return
            try:
                self._left -= len(chunk)
                if self._left >= 0 and self._fits(file, len(chunk)):
                    file.write(chunk)
                    return
            except OSError:
                pass
        self.discard()

    def _fits(self, file: BinaryIO, size: int) -> bool:
        """Whether ``size`` more bytes leave the reserve and the headroom free."""
        if not hasattr(os, "fstatvfs"):  # pragma: no cover - Windows
            return True
        free, floor = free_and_reserve(os.fstatvfs(file.fileno()), self._reserve)
        return free - size >= floor + ENTRY_HEADROOM

    def commit(self, sha256: str) -> bool:
        """Keep the entry (fsync, then rename into place) when ``sha256``, the caller's digest
        of every chunk written, is the entry's name; else drop it. Returns whether it was kept."""
        with self._lock:
            file, self._file = self._file, None
            if file is None:
                return False
            kept = True
            try:
                with file:
                    if sha256 != self._sha256:
                        raise OSError("not the bytes this entry was opened for")
                    file.flush()
                    os.fsync(file.fileno())
                self._temporary.replace(self._final)
            except OSError:
                with contextlib.suppress(OSError):
                    self._temporary.unlink()
                kept = False
        self._report(self._final if kept else None)
        return kept

    def discard(self) -> bool:
        """Remove what was written (nothing once committed); return whether there was a file."""
        with self._lock:
            file, self._file = self._file, None
            if file is None:
                return False
            with contextlib.suppress(OSError):
                file.close()
            with contextlib.suppress(OSError):
                self._temporary.unlink()
        self._report(None)
        return True

    def _report(self, kept: Path | None) -> None:
        if self._owner is not None:
            self._owner(self, kept)


def _hold(fd: int) -> None:
    """Lock a temporary file being written: a prune leaves a locked one alone (POSIX)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _remove_if_abandoned(path: Path, status: os.stat_result) -> None:
    """Remove the temporary file ``path`` if a killed run left it: a regular file nobody wrote
    to for an hour and (where locks exist) nobody holds, as a live writer does. Best effort."""
    if not stat.S_ISREG(status.st_mode) or time.time() - status.st_mtime <= STALE_SECONDS:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by a live writer: OSError
            path.unlink()
        finally:
            os.close(fd)
