"""Listed wheels, fetched and hash-checked on demand: what the resolver reads metadata from.

A :class:`WheelStore` downloads a listed wheel into a private folder the first time anything
asks for it, hashing while streaming, and hands out the file (and its METADATA) only once its
sha256 is the list's. Where a file lives is read from the sources' pages (:mod:`safepip.sources`;
a source is transport only: which files exist, and which version is newest, comes from the
list). Downloads run on a small thread pool, so the wheels the resolver will likely need next
arrive while it works; every download shares one deadline, the run's ``--timeout``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Final

from safepip import fetch
from safepip.errors import FetchError
from safepip.hashlist import Entry
from safepip.policy import Rejection
from safepip.resolve import Refused
from safepip.sources import Links
from safepip.vet import MAX_WHEEL_BYTES, caching, prune
from safepip.wheel import WheelError, WheelMetadata, read_metadata

if TYPE_CHECKING:
    from safepip.cache import WheelCache

#: Downloads at once.
WORKERS: Final = 8


class WheelStore:
    """Listed wheels in ``folder`` (created 0700 by the caller), fetched from ``links``.

    Use as a context manager: leaving it stops every download still under way.
    """

    def __init__(
        self,
        folder: Path,
        *,
        links: Links,
        cafile: str | None,
        timeout: float,
        proxies: fetch.Proxies | None = None,
        on_download: Callable[[Entry], None] | None = None,
        cache: WheelCache | None = None,
    ) -> None:
        self.folder = folder
        self._links = links
        self._cache = cache
        #: Filenames taken from the cache (re-hashed on the way in), for source().
        self._cafile = cafile
        self._deadline = time.monotonic() + timeout
        self._timeout = timeout
        self._proxies = proxies
        self._on_download = on_download
        #: Set when the store closes: every fetch stops within fetch.CANCEL_SLICE instead of
        #: running on to the deadline.
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._cached: set[str] = set()
        self._wheels: dict[str, Future[Path]] = {}
        self._metadata: dict[str, WheelMetadata] = {}
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="safepip-fetch")

    def __enter__(self) -> WheelStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every download still queued or under way and wait for it (within
        ``fetch.CANCEL_SLICE``); its partial file is removed by :func:`fetch.download`.

        Once a resolution is done every wheel it chose is already here (its METADATA was read),
        so what is still running is a prefetch nobody needs; after a failure or a Ctrl-C,
        nothing is needed at all.
        """
        self._cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._cache is not None:
            prune(self._cache)  # once, after every store

    # --- where ------------------------------------------------------------------------------

    def url(self, entry: Entry) -> str:
        """The URL of ``entry``'s file at the first source that offers it.

        Raises:
            FetchError: no source offers this listed file, or its page cannot be fetched.
        """
        # Read in the calling thread (a download worker, usually), once per page: waiting on
        # the pool from inside the pool could leave every worker waiting for a queued page.
        return self._links.url(entry, self._cancel)

    def source(self, entry: Entry) -> str:
        """Where ``entry``'s file came from: the cache entry's URI, else :meth:`url`.

        Raises:
            FetchError: as :meth:`url`.
        """
        with self._lock:
            cached = entry.filename in self._cached
        if cached and self._cache is not None:
            return self._cache.path(entry.sha256).as_uri()
        return self.url(entry)

    # --- what -------------------------------------------------------------------------------

    def prefetch(self, entries: Sequence[Entry]) -> None:
        """Start downloading ``entries`` in the background (a hint; failures surface on use)."""
        for entry in entries:
            self._wheel(entry)

    def path(self, entry: Entry) -> Path:
        """The file of ``entry``, downloaded and hash-checked.

        Raises:
            Refused: the index served other bytes (``hash-mismatch``; the file is deleted).
            FetchError: the download failed.
        """
        return self._wheel(entry).result()

    def metadata(self, entry: Entry) -> WheelMetadata:
        """METADATA of ``entry``'s vetted file, checked against its filename.

        Raises:
            Refused: hash mismatch, or METADATA that contradicts the filename or does not parse
                (``metadata-mismatch``).
            FetchError: the download failed.
        """
        found = self._metadata.get(entry.filename)
        if found is None:
            path = self.path(entry)
            try:
                found = read_metadata(path)
            except WheelError as exc:
                raise Refused(Rejection("metadata-mismatch", entry.filename, str(exc))) from None
            self._metadata[entry.filename] = found
        return found

    def _wheel(self, entry: Entry) -> Future[Path]:
        with self._lock:
            future = self._wheels.get(entry.filename)
            if future is None:
                future = self._pool.submit(self._download, entry)
                self._wheels[entry.filename] = future
            return future

    def _download(self, entry: Entry) -> Path:
        path = self.folder / entry.filename
        # A cache hit is re-hashed while copied in: no page, no download.
        if self._cache is not None and self._cache.copy_to(entry.sha256, path):
            with self._lock:
                self._cached.add(entry.filename)
            return path
        url = self.url(entry)
        with caching(self._cache, entry.sha256) as kept:
            digest = fetch.download(
                url,
                path,
                max_bytes=MAX_WHEEL_BYTES,
                timeout=self._remaining(),
                cafile=self._cafile,
                proxies=self._proxies,
                cancel=self._cancel,
                copy=kept.write if kept is not None else None,
                make_room=self._cache.make_room if self._cache is not None else None,
            )
            if kept is not None:
                kept.commit(digest)  # kept only if digest is its name; pruned when the store closes
        if digest != entry.sha256:
            path.unlink()
            raise Refused(
                Rejection(
                    "hash-mismatch",
                    entry.filename,
                    f"the index served other bytes (sha256 {digest[:12]}…, the list says "
                    f"{entry.sha256[:12]}…)",
                )
            )
        if self._on_download is not None:
            self._on_download(entry)
        return path

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(
                f"the downloads did not finish within {self._timeout:g} s",
                hint="check that the index answers, or raise --timeout",
            )
        return remaining

    def discard_except(self, keep: Sequence[Entry]) -> None:
        """Delete the wheels fetched for candidates the resolution did not choose."""
        wanted = {e.filename for e in keep}
        for path in self.folder.iterdir():
            if path.name not in wanted:
                path.unlink()
