"""Tests for safepip.location: one identity per list, however its location is spelt."""

from __future__ import annotations

from pathlib import Path

import pytest

from safepip.location import canonical

URL = "https://example.org/lists/sha256sums.txt"


@pytest.mark.parametrize(
    "spelling",
    [
        URL,
        "HTTPS://EXAMPLE.ORG/lists/sha256sums.txt",
        "https://example.org:443/lists/sha256sums.txt",
        "https://example.org/lists/sha256sums.txt?",
        "https://example.org/lists/sha256sums.txt#top",
        "https://example.org/lists/sha256sums.txt?#",
        "https://user:secret@example.org/lists/sha256sums.txt",
        "https://example.org/lists/./sha256sums.txt",
        "https://example.org/other/../lists/sha256sums.txt",
        "https://example.org/lists/sha256sums%2Etxt",
        "https://example.org/%6Cists/sha256sums.txt",
    ],
)
def test_spellings_of_one_url_are_one_identity(spelling: str) -> None:
    assert canonical(spelling, base_dir=Path("/")) == URL


def test_http_default_port_and_case() -> None:
    assert canonical("HTTP://LocalHost:80/x.txt", base_dir=Path("/")) == "http://localhost/x.txt"
    assert canonical("http://[::1]:8000/x.txt", base_dir=Path("/")) == "http://[::1]:8000/x.txt"


@pytest.mark.parametrize(
    "other",
    [
        "https://example.org:8443/lists/sha256sums.txt",
        "http://example.org/lists/sha256sums.txt",
        "https://example.org/lists/sha256sums.txt?v=2",
        "https://example.org/lists/SHA256SUMS.txt",
        "https://example.org/lists/sha256sums.txt/",
        "https://example.org/lists/a%2Fb",
    ],
)
def test_different_lists_stay_different(other: str) -> None:
    assert canonical(other, base_dir=Path("/")) != URL


def test_escapes_that_matter_are_kept_and_upper_cased() -> None:
    assert canonical("https://example.org/a%2fb", base_dir=Path("/")) == "https://example.org/a%2Fb"


def test_a_path_and_its_file_urls_are_one_identity(tmp_path: Path) -> None:
    folder = tmp_path / "my site"
    folder.mkdir()
    listed = folder / "sha256sums.txt"
    listed.write_bytes(b"")
    link = tmp_path / "link"
    link.symlink_to(folder)
    expected = str(listed.resolve())
    spellings = [
        str(listed),
        "my site/sha256sums.txt",
        "./my site/../my site/sha256sums.txt",
        listed.as_uri(),
        "FILE://localhost" + listed.as_uri().removeprefix("file://"),
        listed.as_uri() + "#x",
        str(link / "sha256sums.txt"),
    ]
    for spelling in spellings:
        assert canonical(spelling, base_dir=tmp_path) == expected, spelling


def test_a_file_url_on_another_host_is_not_a_local_path() -> None:
    assert canonical("file://server/x.txt", base_dir=Path("/")).startswith("file://server/")


def test_a_malformed_port_is_kept_verbatim() -> None:
    assert canonical("https://example.org:x/a", base_dir=Path("/")) == "https://example.org:x/a"
