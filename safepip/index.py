"""A PEP 503 project page as data: which filename is at which URL (pure)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlsplit


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def file_links(page: str, page_url: str) -> dict[str, str]:
    """``filename → absolute URL`` (fragment removed) for every link on a project page.

    The filename is the last path segment, percent-decoded, exactly as the list spells it. When
    two links claim one filename, the first wins: the bytes are checked against the list anyway.
    """
    parser = _Anchors()
    parser.feed(page)
    parser.close()
    links: dict[str, str] = {}
    for href in parser.hrefs:
        url = urljoin(page_url, href).split("#", 1)[0]
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        links.setdefault(filename, url)
    return links
