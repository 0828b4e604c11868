"""A PEP 503 project page as data: which filename is at which URL (pure).

The page comes from the index, which safepip does not trust (the bytes are checked against the
signed list): whatever it holds, parsing it never raises anything but :class:`FetchError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit

from safepip.errors import FetchError

__all__ = ["ProjectPage", "file_links", "parse_page"]


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


@dataclass(frozen=True)
class ProjectPage:
    """The links of one project page.

    ``links`` maps each filename (the last path segment, percent-decoded, exactly as the list
    spells it) to its absolute URL without the fragment; when two links claim one filename the
    first wins, since the bytes are checked against the list anyway. ``skipped`` holds the hrefs
    that are not URLs at all (``http://[oops/x``), for a ``-v`` note: such a link names no file,
    so dropping it can only make a listed file "not offered", never let another one in.
    """

    links: dict[str, str]
    skipped: tuple[str, ...] = ()


def parse_page(page: str, page_url: str) -> ProjectPage:
    """Parse the project page ``page`` fetched from ``page_url``.

    Raises:
        FetchError: the page is not HTML that Python's parser can read (some markup, such as an
            unknown ``<![keyword[`` section, makes :mod:`html.parser` give up).
    """
    parser = _Anchors()
    try:
        parser.feed(page)
        parser.close()
    except (AssertionError, ValueError) as exc:  # html.parser asserts on some hostile markup
        raise FetchError(
            f"{page_url}: not a readable project page: {_short(str(exc))}",
            hint="the index serves a broken page; tell its operator, or use another index-url",
        ) from exc
    links: dict[str, str] = {}
    skipped: list[str] = []
    for href in parser.hrefs:
        try:
            url = urljoin(page_url, href).split("#", 1)[0]
            path = urlsplit(url).path
        except ValueError:  # e.g. "http://[oops/x": an unbalanced IPv6 bracket
            skipped.append(href)
            continue
        filename = unquote(path.rsplit("/", 1)[-1])
        links.setdefault(filename, url)
    return ProjectPage(links, tuple(skipped))


def file_links(page: str, page_url: str) -> dict[str, str]:
    """``filename → absolute URL`` (fragment removed) for every usable link on a project page.

    Raises:
        FetchError: as :func:`parse_page`.
    """
    return parse_page(page, page_url).links


def _short(text: str, limit: int = 120) -> str:
    """``text`` on one line, at most ``limit`` characters, control characters escaped."""
    flat = "".join(c if 0x20 <= ord(c) != 0x7F else repr(c)[1:-1] for c in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
