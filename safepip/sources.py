"""Where a listed wheel's bytes may come from: indexes and find-links places, in order.

A source is transport only: which files exist, and their hashes, come from the signed list, and
every byte is hash-checked against it after download. So pip's source flags are accepted as
pip takes them (``-i`` takes the place of the configured index, ``--extra-index-url`` and ``-f``
add sources) and a listed file missing from one source is looked for in the next, the configured
index included (DESIGN.md §4). A source that does not answer, or answers 404, only matters when
no other source offers the file: then its error is the one raised.

A find-links place is a local folder (its files are the links) or a page whose links are files,
as pip reads ``-f``. A PEP 503 index has one page per project.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol
from urllib.parse import unquote, urlsplit

from safepip import fetch
from safepip.errors import FetchError, NotFoundError, UsageError

#: A find-links page or a project page larger than this is refused.
MAX_PAGE_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class Source:
    """An index (``kind="index"``, PEP 503: ``<location>/<project>/``) or a find-links place
    (``kind="links"``: a folder or one page)."""

    location: str
    kind: Literal["index", "links"] = "index"

    def describe(self) -> str:
        return f"the index {self.location}" if self.kind == "index" else f"-f {self.location}"


def ordered(
    index: str, *, extra_indexes: Sequence[str] = (), find_links: Sequence[str] = (),
    fallback: str | None = None, no_index: bool = False,
) -> tuple[Source, ...]:  # fmt: skip
    """The sources in the order they are tried: ``index`` (unless ``no_index``), the extra
    indexes, the find-links places, then ``fallback`` (the configured index, when ``-i`` took
    its place; also skipped with ``no_index``), each once (pure)."""
    found: list[Source] = []
    if not no_index:
        found.append(Source(_slash(index)))
        found.extend(Source(_slash(url)) for url in extra_indexes)
    found.extend(Source(place, "links") for place in find_links)
    if fallback is not None and not no_index:
        found.append(Source(_slash(fallback)))
    unique: list[Source] = []
    for source in found:
        if source not in unique:
            unique.append(source)
    return tuple(unique)


def _slash(url: str) -> str:
    return url.rstrip("/") + "/"


class Named(Protocol):
    """A listed file, as :meth:`Links.url` needs it: a list entry or an artifact."""

    @property
    def name(self) -> str: ...
    @property
    def filename(self) -> str: ...


class Links:
    """``filename → URL`` across ``sources``, each page read once and only when needed.

    Thread-safe: download workers ask at once; a page is fetched by the first to ask.

    Raises (on creation):
        UsageError: no source at all (``--no-index`` without ``-f``).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        *,
        base_dir: Path,
        cafile: str | None,
        proxies: fetch.Proxies | None,
        timeout: Callable[[], float],
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not sources:
            raise UsageError(
                "no source to download from (--no-index without -f)",
                hint="drop --no-index, or add -f with the folder or page holding the wheels",
            )
        self.sources = tuple(sources)
        self._base_dir = base_dir
        self._cafile = cafile
        self._proxies = proxies
        self._timeout = timeout
        self._log = log
        self._lock = threading.Lock()
        self._page_locks: dict[tuple[Source, str], threading.Lock] = {}
        self._pages: dict[tuple[Source, str], tuple[str, dict[str, str]] | FetchError] = {}

    def url(self, entry: Named, cancel: threading.Event | None = None) -> str:
        """The URL of ``entry``'s file at the first source that offers it.

        Raises:
            FetchError: no source offers it (the first source's error, if one failed), or its
                link breaks the fetch rules (:func:`fetch.join_url`).
        """
        errors: list[FetchError] = []
        for source in self.sources:
            page = self._page(source, entry.name, cancel)
            if isinstance(page, FetchError):
                errors.append(page)
                continue
            page_url, links = page
            href = links.get(entry.filename)
            if href is not None:
                # Judged (scheme, host) only for a file asked for: a stray link fails nothing.
                return fetch.join_url(page_url, href)
        if errors and len(errors) == len(self.sources):
            raise errors[0]
        if len(self.sources) == 1:
            raise FetchError(
                f"the index {self.sources[0].location} does not offer {entry.filename}, which "
                "the list names",
                hint="the index and the list disagree (a mirror may be hiding a version); ask "
                "its operator, or the publisher to republish both",
            )
        raise FetchError(
            f"no source offers {entry.filename}, which the list names (looked in "
            + ", ".join(s.describe() for s in self.sources)
            + ")",
            hint="add the source that serves it (-i, --extra-index-url, -f), or ask the "
            "publisher to republish the index",
        )

    def page(self, name: str) -> tuple[str, dict[str, str]]:
        """The first source's page for ``name``: its URL and ``filename → href`` (hrefs not yet
        judged: :func:`fetch.join_url` them when used).

        Raises:
            FetchError: the page cannot be fetched or read.
        """
        found = self._page(self.sources[0], name, None)
        if isinstance(found, FetchError):
            raise found
        return found

    def _page(
        self, source: Source, name: str, cancel: threading.Event | None
    ) -> tuple[str, dict[str, str]] | FetchError:
        key = (source, name if source.kind == "index" else "")
        with self._lock:
            lock = self._page_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._pages:
                try:
                    self._pages[key] = self._read(source, name, cancel)
                except NotFoundError as exc:
                    self._pages[key] = exc
                except FetchError as exc:
                    if len(self.sources) == 1:
                        raise
                    if self._log is not None:
                        self._log(f"{source.describe()}: {str(exc).splitlines()[0]}")
                    self._pages[key] = exc
            return self._pages[key]

    def _read(
        self, source: Source, name: str, cancel: threading.Event | None
    ) -> tuple[str, dict[str, str]]:
        from safepip import index  # noqa: PLC0415  (lazy: check never reads pages)

        if source.kind == "links":
            folder = _local_folder(source.location, self._base_dir)
            if folder is not None:
                return _folder_links(folder)
            url = source.location
        else:
            url = fetch.join_url(source.location, f"{name}/")
        text = fetch.fetch_bytes(
            url,
            base_dir=self._base_dir,
            max_bytes=MAX_PAGE_BYTES,
            timeout=self._timeout(),
            cafile=self._cafile,
            proxies=self._proxies,
            cancel=cancel,
        ).decode("utf-8", errors="replace")
        found = index.parse_page(text, url)
        for href in found.skipped:
            if self._log is not None:
                self._log(f"{url}: skipped a link that is not a URL: {href[:200]!r}")
        return url, dict(found.links)


def _local_folder(location: str, base_dir: Path) -> Path | None:
    """The folder a find-links place names, if it is a local folder."""
    if "://" in location:
        if not location.startswith("file://"):
            return None
        path = Path(unquote(urlsplit(location).path))
    else:
        path = base_dir / location
    return path if path.is_dir() else None


def _folder_links(folder: Path) -> tuple[str, dict[str, str]]:
    """A local find-links folder as a page: its regular files, by name."""
    base = folder.absolute().as_uri() + "/"
    links = {
        child.name: child.absolute().as_uri()
        for child in sorted(folder.iterdir())
        if child.is_file()
    }
    return base, links
