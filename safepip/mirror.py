"""A filtered view of the index for pip's resolver: only files on the signed list are offered.

pip resolves loose requirements against this loopback PEP 503 server instead of the configured
index. Each project page is fetched from the real index (through :mod:`fetch`, with its caps
and deadline) and every link whose filename is not a listed wheel is dropped, so an unvetted
file beside vetted ones (a newer version, another platform, an sdist) is never even a
candidate: pip picks among vetted files only. Links keep pointing at the real index; the bytes
are still checked by safepip's own download against the list.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from packaging.utils import canonicalize_name

from safepip import fetch, index
from safepip.errors import SafepipError
from safepip.hashlist import HashList

_MAX_PAGE_BYTES: Final = 16 * 1024 * 1024
_PAGE_DEADLINE: Final = 60.0


@dataclass
class _View:
    listed: HashList
    index_url: str
    cafile: str | None
    base_dir: Path
    proxies: fetch.Proxies | None = None
    missing: set[str] = field(default_factory=set)
    failures: list[SafepipError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, name: str) -> bytes | None:
        """The filtered page for ``name``, or ``None`` (404) when no listed wheel exists."""
        wheels = [e for e in self.listed.for_project(name) if e.kind == "wheel"]
        if not wheels:
            with self.lock:
                self.missing.add(name)
            return None
        # Every failure is recorded for the caller: one escaping would kill this handler thread
        # and print its traceback on the user's terminal.
        links = []
        try:
            url = fetch.join_url(self.index_url, f"{name}/")
            text = fetch.fetch_bytes(
                url,
                base_dir=self.base_dir,
                max_bytes=_MAX_PAGE_BYTES,
                timeout=_PAGE_DEADLINE,
                cafile=self.cafile,
                proxies=self.proxies,
            ).decode("utf-8", errors="replace")
            offered = index.file_links(text, url)
            for entry in wheels:
                if entry.filename in offered:
                    href = html.escape(fetch.join_url(url, offered[entry.filename]))
                    links.append(f'<a href="{href}">{html.escape(entry.filename)}</a>')
        except SafepipError as exc:
            with self.lock:
                self.failures.append(exc)
            return None
        body = "<br>\n".join(links)
        return f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pip's own output says what it fetched."""

    def do_GET(self) -> None:
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        page = None
        if len(parts) == 2 and parts[0] == "simple":
            page = self.server.view.page(canonicalize_name(parts[1]))
        if page is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, view: _View) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.view = view


@dataclass(frozen=True)
class VettedIndex:
    """The running view: ``url`` for pip, and what pip asked for that the list lacks."""

    url: str
    missing: frozenset[str] | set[str]
    failures: list[SafepipError]


@contextmanager
def vetted_index(
    listed: HashList,
    index_url: str,
    *,
    cafile: str | None,
    base_dir: Path,
    proxies: fetch.Proxies | None = None,
) -> Iterator[VettedIndex]:
    """Serve the filtered view on 127.0.0.1 for the duration of the block, then stop it."""
    view = _View(listed, index_url, cafile, base_dir, proxies)
    server = _Server(view)
    thread = threading.Thread(target=server.serve_forever, name="safepip-index", daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield VettedIndex(f"http://127.0.0.1:{port}/simple/", view.missing, view.failures)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
