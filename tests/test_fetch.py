"""safepip.fetch against real servers on 127.0.0.1: caps, deadlines, redirects, schemes, TLS.

tests/ is a package, so the shared server is imported as ``from tests.server import ...``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safepip import __version__
from safepip.errors import ConfigError, FetchError
from safepip.fetch import (
    CANCEL_SLICE,
    Proxies,
    download,
    fetch_bytes,
    free_space_reserve,
    is_allowed_source,
    join_url,
)
from tests.proxy import ConnectProxy
from tests.server import LoopbackServer
from tests.tls import TEST_HOST, make_tls_files

CAP = 1 << 20
DEADLINE = 1.5
# How long a refused call may take beyond its deadline (scheduling, slow CI machines).
MARGIN = 1.0
CONTENT = b"3f1c  certifi-2024.8.30-py3-none-any.whl\n" * 100


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Every test must join what it started: servers and their handler threads."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A served folder: a file, and a PEP 503 page for project foo."""
    served = tmp_path / "served"
    (served / "simple" / "foo").mkdir(parents=True)
    (served / "list.txt").write_bytes(CONTENT)
    (served / "simple" / "foo" / "index.html").write_bytes(b"<a href='../../foo.whl'>foo</a>\n")
    return served


@pytest.fixture
def server(root: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(root) as srv:
        yield srv


def fails(source: str, *, timeout: float = DEADLINE, max_bytes: int = CAP, **kw: object) -> str:
    """Call fetch_bytes expecting FetchError; return its message after checking it is one line
    and that the call kept to its deadline."""
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_bytes(source, max_bytes=max_bytes, timeout=timeout, **kw)  # type: ignore[arg-type]
    elapsed = time.monotonic() - start
    assert elapsed < timeout + MARGIN, f"took {elapsed:.2f} s with a {timeout} s deadline"
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert info.value.exit_code == 3
    return message


# --- success ----------------------------------------------------------------------------------


def test_fetch_over_loopback_http(server: LoopbackServer) -> None:
    data = fetch_bytes(server.url_for("list.txt"), max_bytes=CAP, timeout=DEADLINE)
    assert data == CONTENT
    assert server.requests == ["/list.txt"]
    headers = server.request_headers[0]
    assert headers["user-agent"] == f"safepip/{__version__}"
    assert "accept-encoding" not in headers  # never invite a compressed body


def test_directory_serves_index_html(server: LoopbackServer) -> None:
    page = fetch_bytes(server.url_for("simple/foo/"), max_bytes=CAP, timeout=DEADLINE)
    assert b"foo.whl" in page


def test_localhost_name_is_loopback(server: LoopbackServer) -> None:
    url = f"http://localhost:{server.port}/list.txt"
    assert fetch_bytes(url, max_bytes=CAP, timeout=DEADLINE) == CONTENT


def test_exactly_max_bytes_is_accepted(server: LoopbackServer) -> None:
    assert fetch_bytes(server.url_for("list.txt"), max_bytes=len(CONTENT), timeout=DEADLINE)


def test_file_url(root: Path) -> None:
    url = (root / "list.txt").as_uri()
    assert fetch_bytes(url, max_bytes=CAP, timeout=DEADLINE) == CONTENT


def test_plain_absolute_path(root: Path) -> None:
    assert fetch_bytes(str(root / "list.txt"), max_bytes=CAP, timeout=DEADLINE) == CONTENT


def test_relative_path_is_taken_from_base_dir(root: Path) -> None:
    got = fetch_bytes("simple/foo/index.html", base_dir=root, max_bytes=CAP, timeout=DEADLINE)
    assert got.startswith(b"<a href")


def test_relative_path_without_base_dir_is_taken_from_cwd(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(root)
    assert fetch_bytes("list.txt", max_bytes=CAP, timeout=DEADLINE) == CONTENT


# --- local files ------------------------------------------------------------------------------


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    assert str(missing) in fails(str(missing))


def test_local_file_over_cap_refused(root: Path) -> None:
    path = root / "list.txt"
    message = fails(str(path), max_bytes=len(CONTENT) - 1)
    assert str(path) in message and "cap" in message


def test_fifo_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    message = fails(str(fifo))  # opening a FIFO for reading would wait for a writer forever
    assert str(fifo) in message and "regular file" in message


def test_endless_device_refused() -> None:
    assert "/dev/zero" in fails("/dev/zero")


# --- size caps --------------------------------------------------------------------------------


def test_file_url_of_a_folder_reads_its_index_html(root: Path) -> None:
    # A file:// index's project page is a folder, as a static web server serves it.
    page = (root / "simple" / "foo").as_uri() + "/"
    got = fetch_bytes(page, max_bytes=CAP, timeout=DEADLINE)
    assert got == (root / "simple" / "foo" / "index.html").read_bytes()
    assert fetch_bytes(str(root / "simple" / "foo"), max_bytes=CAP, timeout=DEADLINE) == got


def test_folder_without_index_html_refused(root: Path) -> None:
    folder = root / "simple" / "bar"
    folder.mkdir()
    message = fails(folder.as_uri() + "/")
    assert str(folder / "index.html") in message and "cannot open" in message


def test_folder_whose_index_html_is_a_folder_refused(root: Path) -> None:
    (root / "simple" / "bar" / "index.html").mkdir(parents=True)
    message = fails(str(root / "simple" / "bar"))
    assert "index.html: not a regular file" in message


def test_content_length_over_cap_refused_before_reading(server: LoopbackServer) -> None:
    server.oversized("/big", length=10**12)
    url = server.url_for("big")
    message = fails(url, max_bytes=1000)
    assert url in message and "Content-Length" in message


def test_endless_body_stops_at_cap(server: LoopbackServer) -> None:
    server.endless("/endless")
    url = server.url_for("endless")
    message = fails(url, max_bytes=200_000)
    assert url in message and "cap" in message


def test_truncated_body_refused(server: LoopbackServer) -> None:
    server.oversized("/short", length=100, body=b"x" * 10)
    url = server.url_for("short")
    message = fails(url)
    assert url in message and "truncated" in message


def test_gzip_content_encoding_refused(server: LoopbackServer) -> None:
    server.gzip("/bomb", b"\0" * 5_000_000)
    url = server.url_for("bomb")
    message = fails(url)
    assert url in message and "gzip" in message


def test_html_error_page_with_200_is_just_bytes(server: LoopbackServer) -> None:
    # Status 200 is success for fetch; the hash check upstream rejects these bytes.
    server.html_error("/list.txt")
    assert b"<html>" in fetch_bytes(server.url_for("list.txt"), max_bytes=CAP, timeout=DEADLINE)


# --- deadline ---------------------------------------------------------------------------------


def test_trickled_body_hits_total_deadline(server: LoopbackServer) -> None:
    # Each byte arrives well within any per-read timeout; only a total deadline stops this.
    server.trickle("/slow", b"x" * 100, interval=0.2)
    url = server.url_for("slow")
    message = fails(url)
    assert url in message and "deadline" in message


def test_trickled_status_line_and_headers_hit_total_deadline(server: LoopbackServer) -> None:
    server.trickle("/slowhead", b"x" * 10, interval=0.2, whole_response=True)
    url = server.url_for("slowhead")
    message = fails(url)
    assert url in message and "deadline" in message


def test_server_that_never_answers_hits_deadline(server: LoopbackServer) -> None:
    server.hang("/hang")
    url = server.url_for("hang")
    message = fails(url)
    assert url in message and "deadline" in message
    assert server.requests == ["/hang"]


def test_deadline_covers_the_whole_call_not_each_read(server: LoopbackServer) -> None:
    # 5 bytes at 0.4 s: each read waits 0.4 s (< timeout) but the total (2 s) is over 1.5 s.
    server.trickle("/five", b"abcde", interval=0.4)
    fails(server.url_for("five"))


def test_trickle_within_deadline_succeeds(server: LoopbackServer) -> None:
    server.trickle("/quick", b"abc", interval=0.05)
    assert fetch_bytes(server.url_for("quick"), max_bytes=CAP, timeout=DEADLINE) == b"abc"


# --- status -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [404, 500, 204, 304])
def test_status_other_than_200_refused(server: LoopbackServer, code: int) -> None:
    server.status("/list.txt", code)
    url = server.url_for("list.txt")
    message = fails(url)
    assert url in message and str(code) in message


def test_missing_file_on_server_is_404(server: LoopbackServer) -> None:
    url = server.url_for("nothing-here.txt")
    assert "404" in fails(url)


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/list.txt"  # nothing listens there any more
    message = fails(url)
    assert url in message and "refused" in message


# --- redirects --------------------------------------------------------------------------------


def test_redirect_on_same_host_followed(server: LoopbackServer) -> None:
    server.redirect("/old", "/list.txt")
    assert fetch_bytes(server.url_for("old"), max_bytes=CAP, timeout=DEADLINE) == CONTENT
    assert server.requests == ["/old", "/list.txt"]


def test_five_redirects_followed_six_refused(server: LoopbackServer) -> None:
    for i in range(6):
        server.redirect(f"/r{i}", f"/r{i + 1}")
    server.redirect("/r6", "/list.txt")
    assert fetch_bytes(server.url_for("r2"), max_bytes=CAP, timeout=DEADLINE) == CONTENT
    message = fails(server.url_for("r0"))
    assert "more than 5 redirects" in message


def test_redirect_loop_refused(server: LoopbackServer) -> None:
    server.redirect("/loop", "/loop")
    assert server.url_for("loop") in fails(server.url_for("loop"))


def test_redirect_to_another_port_refused(root: Path) -> None:
    with LoopbackServer(root) as first, LoopbackServer(root) as other:
        target = other.url_for("list.txt")
        first.redirect("/list.txt", target)
        source = first.url_for("list.txt")
        message = fails(source)
        assert source in message and target in message
        assert other.requests == []


def test_redirect_to_another_host_refused(server: LoopbackServer) -> None:
    target = f"http://localhost:{server.port}/list.txt"  # same port, other host name
    server.redirect("/list.txt", target)
    message = fails(server.url_for("list.txt"))
    assert target in message
    assert server.requests == ["/list.txt"]


@pytest.mark.parametrize(
    "target", ["file:///etc/passwd", "ftp://127.0.0.1/list.txt", "data:,hello", "https://example/"]
)
def test_redirect_to_other_scheme_refused(server: LoopbackServer, target: str) -> None:
    server.redirect("/list.txt", target)
    source = server.url_for("list.txt")
    message = fails(source)
    assert source in message and target in message


# --- schemes and hosts, refused before any connection -----------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and block) any attempt to resolve or connect."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError("fetch tried to reach the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize(
    "url",
    [
        "http://192.0.2.1/list.txt",  # TEST-NET-1: must never be contacted
        "http://example.com/list.txt",
        "http://10.0.0.1:8080/list.txt",
        "http://localhost.example.org/list.txt",
        "ftp://127.0.0.1/list.txt",
        "data:,hello",
        "gopher://127.0.0.1/",
        "https://user:secret@example.org/list.txt",
    ],
)
def test_refused_source_fails_fast_without_network(url: str, no_network: list[object]) -> None:
    start = time.monotonic()
    message = fails(url)
    assert time.monotonic() - start < 0.5
    assert "not an allowed source" in message
    assert no_network == []
    if "secret" not in url:
        assert url in message


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("https://example.org/sha256sums.txt", True),
        ("HTTPS://Example.org/x", True),
        ("https:///no-host", False),
        ("file:///srv/list.txt", True),
        ("file://localhost/srv/list.txt", True),
        ("file://server/share/list.txt", False),
        ("list.txt", True),
        ("/srv/list.txt", True),
        ("../lists/list.txt", True),
        ("http://127.0.0.1:8000/list.txt", True),
        ("http://127.5.6.7/list.txt", True),
        ("http://[::1]:8000/list.txt", True),
        ("http://localhost/list.txt", True),
        ("http://192.0.2.1/list.txt", False),
        ("http://127.0.0.1.example.org/list.txt", False),
        ("http://0.0.0.0/list.txt", False),
        ("ftp://127.0.0.1/list.txt", False),
        ("data:text/plain,hi", False),
        ("javascript:alert(1)", False),
        ("https://user@example.org/list.txt", False),
        ("http://127.0.0.1:99999/list.txt", False),
        ("https://example.org/a\nb", False),
        ("", False),
    ],
)
def test_is_allowed_source(source: str, allowed: bool) -> None:
    assert is_allowed_source(source) is allowed


# --- join_url ---------------------------------------------------------------------------------


def test_join_url_relative_link_keeps_fragment() -> None:
    joined = join_url("https://idx.example/simple/foo/", "../../foo-1.0.whl#sha256=ab")
    assert joined == "https://idx.example/foo-1.0.whl#sha256=ab"


def test_join_url_absolute_https_link_to_other_host() -> None:
    link = "https://files.example/foo-1.0.whl"
    assert join_url("https://idx.example/simple/foo/", link) == link


@pytest.mark.parametrize(
    "ref", ["http://idx.example/foo.whl", "file:///etc/passwd", "ftp://idx.example/f.whl"]
)
def test_join_url_refuses_weaker_link_from_https(ref: str) -> None:
    base = "https://idx.example/simple/foo/"
    with pytest.raises(FetchError) as info:
        join_url(base, ref)
    assert base in str(info.value) and ref in str(info.value)


def test_join_url_refuses_file_link_from_loopback_http() -> None:
    with pytest.raises(FetchError):
        join_url("http://127.0.0.1:8000/simple/foo/", "file:///etc/passwd")


def test_join_url_on_plain_path_gives_file_url(root: Path) -> None:
    joined = join_url(str(root / "simple" / "foo") + "/", "../../list.txt")
    assert joined == (root / "list.txt").as_uri()
    assert fetch_bytes(joined, max_bytes=CAP, timeout=DEADLINE) == CONTENT


@pytest.mark.parametrize("ref", ["http://[oops/x.whl", "https://[::1/x.whl"])
def test_join_url_refuses_a_link_that_is_not_a_url(ref: str) -> None:
    with pytest.raises(FetchError) as info:
        join_url("https://example.org/simple/foo/", ref)
    assert ref in str(info.value) and "not a URL" in str(info.value)


# --- download ---------------------------------------------------------------------------------


def test_download_hashes_streams_and_creates_0600(server: LoopbackServer, tmp_path: Path) -> None:
    big = os.urandom(3_000_000)  # several 1 MiB chunks
    server.serve_bytes("/big.whl", big)
    dest = tmp_path / "big.whl"
    progress: list[int] = []
    digest = download(
        server.url_for("big.whl"),
        dest,
        max_bytes=len(big),
        timeout=DEADLINE,
        on_progress=progress.append,
    )
    assert digest == hashlib.sha256(big).hexdigest()
    assert dest.read_bytes() == big
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sum(progress) == len(big)
    assert len(progress) > 1 and all(0 < n <= 1024 * 1024 for n in progress)


@pytest.mark.parametrize("over", ["http", "file"])
def test_download_copy_receives_exactly_the_chunks_it_hashed(
    over: str, server: LoopbackServer, tmp_path: Path
) -> None:
    # Several 1 MiB reads: a copy that missed, repeated or reordered one would differ.
    body = os.urandom(3 * 1024 * 1024 + 12345)
    source = tmp_path / "body.whl"
    source.write_bytes(body)
    server.serve_bytes("/body.whl", body)
    url = server.url_for("body.whl") if over == "http" else source.as_uri()
    copied: list[bytes] = []
    digest = download(
        url, tmp_path / "dest.whl", max_bytes=len(body), timeout=DEADLINE, copy=copied.append
    )
    assert len(copied) > 1
    assert b"".join(copied) == body == (tmp_path / "dest.whl").read_bytes()
    assert digest == hashlib.sha256(body).hexdigest()


def test_download_of_html_error_page_returns_its_hash(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.html_error("/list.txt")
    digest = download(server.url_for("list.txt"), tmp_path / "f", max_bytes=CAP, timeout=DEADLINE)
    assert digest != hashlib.sha256(CONTENT).hexdigest()  # the caller's hash check refuses it


def test_download_from_local_path(root: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy"
    digest = download(str(root / "list.txt"), dest, max_bytes=CAP, timeout=DEADLINE)
    assert digest == hashlib.sha256(CONTENT).hexdigest()
    assert dest.read_bytes() == CONTENT


def test_download_refuses_existing_dest_and_keeps_it(
    server: LoopbackServer, tmp_path: Path
) -> None:
    dest = tmp_path / "there.whl"
    dest.write_bytes(b"mine")
    with pytest.raises(FetchError) as info:
        download(server.url_for("list.txt"), dest, max_bytes=CAP, timeout=DEADLINE)
    assert str(dest) in str(info.value)
    assert dest.read_bytes() == b"mine"
    assert server.requests == []


def test_download_refuses_symlink_dest(server: LoopbackServer, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    dest = tmp_path / "link.whl"
    dest.symlink_to(victim)
    with pytest.raises(FetchError):
        download(server.url_for("list.txt"), dest, max_bytes=CAP, timeout=DEADLINE)
    assert victim.read_bytes() == b"keep"


def _download_fails(url: str, dest: Path, **kw: object) -> str:
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        download(url, dest, **{"max_bytes": CAP, "timeout": DEADLINE, **kw})  # type: ignore[arg-type]
    assert time.monotonic() - start < DEADLINE + MARGIN
    assert not dest.exists() and not dest.is_symlink()
    return str(info.value)


def test_download_removes_dest_when_cap_exceeded_mid_stream(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.endless("/endless.whl")
    url = server.url_for("endless.whl")
    progress: list[int] = []
    message = _download_fails(
        url, tmp_path / "e.whl", max_bytes=3_000_000, on_progress=progress.append
    )
    assert url in message and "cap" in message
    assert 0 < sum(progress) <= 3_000_000  # bytes were written, then removed


def test_download_removes_dest_at_deadline(server: LoopbackServer, tmp_path: Path) -> None:
    server.trickle("/slow.whl", b"x" * 100, interval=0.1)
    url = server.url_for("slow.whl")
    assert "deadline" in _download_fails(url, tmp_path / "s.whl")


def test_download_removes_dest_on_404(server: LoopbackServer, tmp_path: Path) -> None:
    url = server.url_for("missing.whl")
    assert url in _download_fails(url, tmp_path / "m.whl")


def test_download_removes_dest_when_progress_callback_raises(
    server: LoopbackServer, tmp_path: Path
) -> None:
    dest = tmp_path / "i.whl"

    def interrupt(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(
            server.url_for("list.txt"), dest, max_bytes=CAP, timeout=DEADLINE, on_progress=interrupt
        )
    assert not dest.exists()


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throw-away CA and a server certificate for IP 127.0.0.1 and safepip.test only (not
    "localhost")."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(root: Path, tls_files: dict[str, Path]) -> Iterator[LoopbackServer]:
    with LoopbackServer(root, tls=(tls_files["cert"], tls_files["key"])) as srv:
        yield srv


def test_https_with_cafile(tls_server: LoopbackServer, tls_files: dict[str, Path]) -> None:
    url = tls_server.url_for("list.txt")
    assert url.startswith("https://")
    got = fetch_bytes(url, max_bytes=CAP, timeout=DEADLINE, cafile=str(tls_files["ca"]))
    assert got == CONTENT


def test_https_untrusted_certificate_refused(tls_server: LoopbackServer) -> None:
    url = tls_server.url_for("list.txt")
    message = fails(url)  # system store: our test CA is not in it
    assert url in message and "certificate" in message
    assert tls_server.requests == []  # no request was sent over the unverified channel


def test_https_host_name_mismatch_refused(
    tls_server: LoopbackServer, tls_files: dict[str, Path]
) -> None:
    url = f"https://localhost:{tls_server.port}/list.txt"  # the certificate names 127.0.0.1 only
    message = fails(url, cafile=str(tls_files["ca"]))
    assert url in message and "certificate" in message
    assert tls_server.requests == []


def test_https_to_http_redirect_refused(
    tls_server: LoopbackServer, tls_files: dict[str, Path]
) -> None:
    target = f"http://127.0.0.1:{tls_server.port}/list.txt"
    tls_server.redirect("/list.txt", target)
    source = tls_server.url_for("list.txt")
    message = fails(source, cafile=str(tls_files["ca"]))
    assert source in message and target in message


def test_https_hang_during_handshake_hits_deadline(tls_files: dict[str, Path]) -> None:
    # A listener that accepts (via the backlog) but never speaks TLS.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/list.txt"
        message = fails(url, cafile=str(tls_files["ca"]))
    assert url in message and "deadline" in message


def test_unreadable_cafile_refused(tls_server: LoopbackServer, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-ca.pem")
    with pytest.raises(ConfigError, match="cannot read it") as info:
        fetch_bytes(
            tls_server.url_for("list.txt"), max_bytes=CAP, timeout=DEADLINE, cafile=str(missing)
        )
    assert missing in str(info.value)
    assert info.value.exit_code == 2
    assert tls_server.requests == []


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_fifo_cafile_refused_without_blocking(tls_server: LoopbackServer, tmp_path: Path) -> None:
    """A FIFO as the CA bundle: OpenSSL would block opening it; refused at once (exit 2)."""
    fifo = str(tmp_path / "ca.fifo")
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file") as info:
        fetch_bytes(
            tls_server.url_for("list.txt"), max_bytes=CAP, timeout=DEADLINE, cafile=str(fifo)
        )
    assert time.monotonic() - start < MARGIN
    assert fifo in str(info.value)
    assert info.value.exit_code == 2
    assert tls_server.requests == []


# --- cancel (a Ctrl-C in the main thread while workers fetch) -----------------------------------


def cancel_after(seconds: float) -> tuple[threading.Event, threading.Timer]:
    """An event that another thread sets after ``seconds`` (start the timer, then join it)."""
    event = threading.Event()
    return event, threading.Timer(seconds, event.set)


def test_cancel_stops_a_trickled_download_at_once(server: LoopbackServer, tmp_path: Path) -> None:
    server.trickle("/slow.whl", b"x" * 100, interval=0.1)
    dest = tmp_path / "slow.whl"
    cancel, timer = cancel_after(0.5)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(FetchError) as info:
            download(server.url_for("slow.whl"), dest, max_bytes=CAP, timeout=60, cancel=cancel)
    finally:
        timer.join()
    elapsed = time.monotonic() - start
    assert elapsed < 0.5 + CANCEL_SLICE + MARGIN, f"took {elapsed:.2f} s after the cancel"
    assert "cancelled" in str(info.value)
    assert not dest.exists()


def test_cancel_stops_a_page_that_never_answers(server: LoopbackServer) -> None:
    server.hang("/simple/foo/")
    cancel, timer = cancel_after(0.3)
    timer.start()
    try:
        message = fails(server.url_for("simple/foo/"), timeout=60 - MARGIN, cancel=cancel)
    except AssertionError:
        timer.join()
        raise
    timer.join()
    assert "cancelled" in message


def test_cancel_stops_a_stalled_tls_handshake(tls_files: dict[str, Path]) -> None:
    with socket.socket() as listener:  # accepts (via the backlog), never speaks TLS
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        cancel, timer = cancel_after(0.3)
        timer.start()
        start = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetch_bytes(
                f"https://127.0.0.1:{listener.getsockname()[1]}/x",
                max_bytes=CAP,
                timeout=60,
                cafile=str(tls_files["ca"]),
                cancel=cancel,
            )
        timer.join()
    assert time.monotonic() - start < 0.3 + CANCEL_SLICE + MARGIN
    assert "cancelled" in str(info.value)


def test_a_set_cancel_stops_a_local_file_read(root: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    assert "cancelled" in fails(str(root / "list.txt"), cancel=cancel)


# --- free space: an index answering a small wheel with an endless body ------------------------


def test_free_space_reserve_is_a_tenth_up_to_one_gib() -> None:
    assert free_space_reserve(100 << 20) == 10 << 20
    assert free_space_reserve(100 << 30) == 1 << 30
    assert free_space_reserve(0) == 0


def test_endless_download_stops_before_the_free_space_reserve(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.endless("/gamma-0.1-py3-none-any.whl")
    dest = tmp_path / "gamma-0.1-py3-none-any.whl"
    info = os.statvfs(tmp_path)
    allowance = 8 << 20  # what this test lets the endless body write
    reserve = info.f_bavail * info.f_frsize - allowance
    peak = 0

    def watch(size: int) -> None:
        nonlocal peak
        peak = max(peak, dest.stat().st_size)

    start = time.monotonic()
    with pytest.raises(FetchError) as info_error:
        download(
            server.url_for("gamma-0.1-py3-none-any.whl"),
            dest,
            max_bytes=1 << 40,
            timeout=60,
            min_free_bytes=reserve,
            on_progress=watch,
        )
    message = str(info_error.value)
    assert "free" in message and str(tmp_path) in message
    assert info_error.value.hint is not None and "TMPDIR" in info_error.value.hint
    assert time.monotonic() - start < 30, "stopped by the reserve, not by the deadline"
    # Other programs write to this file system too: allow them a generous margin.
    assert 0 < peak < allowance + (64 << 20)
    assert not dest.exists()


def test_download_refused_at_once_when_the_reserve_is_already_gone(
    server: LoopbackServer, tmp_path: Path
) -> None:
    dest = tmp_path / "list.txt"
    with pytest.raises(FetchError, match="stopped after 0 bytes"):
        download(
            server.url_for("list.txt"),
            dest,
            max_bytes=CAP,
            timeout=DEADLINE,
            min_free_bytes=1 << 62,
        )
    assert not dest.exists()


# --- proxies (pure) ---------------------------------------------------------------------------


def test_proxies_from_environment_lower_case_wins() -> None:
    both = Proxies.from_environ({"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2"})
    assert (both.https, both.https_source) == ("http://a:1", "https_proxy")
    upper = Proxies.from_environ({"HTTPS_PROXY": "b:2", "NO_PROXY": " x.org, .y.org ,"})
    assert (upper.https, upper.https_source, upper.no_proxy) == (
        "b:2",
        "HTTPS_PROXY",
        ("x.org", ".y.org"),
    )
    assert Proxies.from_environ({"https_proxy": "", "no_proxy": ""}) == Proxies()


def test_proxy_applies_to_https_only_and_never_to_loopback() -> None:
    proxies = Proxies(https="proxy.corp:3128")
    proxy = proxies.for_url("https://pypi.org/simple/")
    assert proxy is not None and (proxy.host, proxy.port, proxy.url) == (
        "proxy.corp",
        3128,
        "http://proxy.corp:3128",
    )
    for direct in ("https://127.0.0.1:8443/x", "https://localhost/x", "https://[::1]/x",
                   "http://127.0.0.1:8080/x", "file:///tmp/x", "/tmp/x"):  # fmt: skip
        assert proxies.for_url(direct) is None, direct
    assert Proxies().for_url("https://pypi.org/") is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("*", "https://pypi.org/", True),
        ("pypi.org", "https://pypi.org/", True),
        ("pypi.org", "https://files.pypi.org/", True),
        (".pypi.org", "https://pypi.org/", True),
        ("*.pypi.org", "https://a.pypi.org/", True),
        ("pypi.org", "https://notpypi.org/", False),
        ("pypi.org:443", "https://pypi.org/", True),
        ("pypi.org:8443", "https://pypi.org/", False),
        ("10.0.0.0/8", "https://10.1.2.3/", True),
        ("10.0.0.0/8", "https://11.1.2.3/", False),
        ("10.1.2.3", "https://10.1.2.3:8443/", True),
        ("fd00::/8", "https://[fd00::1]/", True),
        ("[fd00::1]:443", "https://[fd00::1]/", True),
        ("example.org, PyPI.org", "https://pypi.org/", True),
        ("", "https://pypi.org/", False),
    ],
)
def test_no_proxy(no_proxy: str, url: str, bypassed: bool) -> None:
    proxies = Proxies.from_environ({"https_proxy": "http://proxy:3128", "no_proxy": no_proxy})
    assert (proxies.for_url(url) is None) is bypassed


def test_proxy_credentials_become_basic_auth_and_stay_out_of_messages() -> None:
    proxy = Proxies(https="http://me:s%40cret@proxy:8080").for_url("https://pypi.org/")
    assert proxy is not None and proxy.url == "http://proxy:8080"
    assert proxy.authorization == "Basic bWU6c0BjcmV0"  # base64 of "me:s@cret"
    assert "cret" not in repr(proxy)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("socks5://proxy:1080", "socks5:// proxies are not supported"),
        ("https://proxy:443", "https:// proxies are not supported"),
        ("http://proxy:99999", "not a usable proxy URL"),
        ("http://", "no host"),
    ],
)
def test_unusable_proxy_setting_refused_when_used(value: str, why: str) -> None:
    proxies = Proxies.from_environ({"HTTPS_PROXY": value})
    assert proxies.for_url("https://127.0.0.1/") is None  # loopback: never asked
    with pytest.raises(FetchError) as info:
        proxies.for_url("https://pypi.org/")
    assert why in str(info.value) and "HTTPS_PROXY" in str(info.value)


# --- proxies: a real CONNECT proxy, TLS end to end --------------------------------------------


def test_https_through_a_connect_proxy(
    tls_server: LoopbackServer, tls_files: dict[str, Path]
) -> None:
    with ConnectProxy(hosts={TEST_HOST: "127.0.0.1"}) as proxy:
        url = f"https://{TEST_HOST}:{tls_server.port}/list.txt"
        got = fetch_bytes(
            url,
            max_bytes=CAP,
            timeout=DEADLINE,
            cafile=str(tls_files["ca"]),
            proxies=Proxies(https=proxy.url),
        )
        assert got == CONTENT
        assert proxy.targets == [f"{TEST_HOST}:{tls_server.port}"]
        assert proxy.headers[0]["user-agent"] == f"safepip/{__version__}"
        assert "proxy-authorization" not in proxy.headers[0]
    assert tls_server.requests == ["/list.txt"]


def test_download_through_a_proxy_sends_its_credentials(
    tls_server: LoopbackServer, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    with ConnectProxy(hosts={TEST_HOST: "127.0.0.1"}) as proxy:
        credentials = proxy.url.replace("http://", "http://me:pw@")
        digest = download(
            f"https://{TEST_HOST}:{tls_server.port}/list.txt",
            tmp_path / "list.txt",
            max_bytes=CAP,
            timeout=DEADLINE,
            cafile=str(tls_files["ca"]),
            proxies=Proxies(https=credentials),
        )
        assert proxy.headers[0]["proxy-authorization"] == "Basic bWU6cHc="
    assert digest == hashlib.sha256(CONTENT).hexdigest()


def test_tls_through_the_proxy_is_verified_end_to_end(
    tls_server: LoopbackServer, tls_files: dict[str, Path]
) -> None:
    with ConnectProxy(hosts={TEST_HOST: "127.0.0.1", "other.test": "127.0.0.1"}) as proxy:
        proxies = Proxies(https=proxy.url)
        url = f"https://{TEST_HOST}:{tls_server.port}/list.txt"
        message = fails(url, proxies=proxies)  # the system store does not know the test CA
        assert url in message and "certificate" in message
        other = f"https://other.test:{tls_server.port}/list.txt"  # not in the certificate
        message = fails(other, proxies=proxies, cafile=str(tls_files["ca"]))
        assert other in message and "certificate" in message
        assert len(proxy.targets) == 2
    assert tls_server.requests == []


def test_no_proxy_connects_directly(tls_server: LoopbackServer) -> None:
    with ConnectProxy(hosts={TEST_HOST: "127.0.0.1"}) as proxy:
        proxies = Proxies.from_environ({"https_proxy": proxy.url, "no_proxy": "example.org,.test"})
        message = fails(f"https://{TEST_HOST}:{tls_server.port}/list.txt", proxies=proxies)
        assert f"cannot resolve {TEST_HOST}" in message  # this machine tried, not the proxy
        assert proxy.targets == []


def test_loopback_never_goes_through_the_proxy(server: LoopbackServer) -> None:
    with ConnectProxy() as proxy:
        proxies = Proxies(https=proxy.url)
        got = fetch_bytes(
            server.url_for("list.txt"), max_bytes=CAP, timeout=DEADLINE, proxies=proxies
        )
        assert got == CONTENT
        assert proxy.targets == []


def test_dead_proxy_named_in_a_one_line_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        proxies = Proxies.from_environ({"HTTPS_PROXY": f"127.0.0.1:{port}"})
        message = fails("https://pypi.example/simple/", proxies=proxies)
    assert f"the proxy http://127.0.0.1:{port} (from HTTPS_PROXY) refused the connection" in message


def test_proxy_refusing_connect_named_with_its_status(tls_server: LoopbackServer) -> None:
    with ConnectProxy(refuse=403) as proxy:
        proxies = Proxies(https=proxy.url, https_source="https_proxy")
        message = fails(f"https://{TEST_HOST}:{tls_server.port}/list.txt", proxies=proxies)
    assert f"the proxy {proxy.url} (from https_proxy) refused CONNECT" in message
    assert "403" in message


def test_proxy_that_never_answers_connect_hits_the_deadline() -> None:
    with socket.socket() as listener:  # accepts (via the backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        proxy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        message = fails("https://pypi.example/simple/", proxies=Proxies(https=proxy_url))
    assert "deadline" in message and proxy_url in message


# --- conditional requests ---------------------------------------------------------------------


def test_validators_are_sent_and_a_304_returns_no_bytes(server: LoopbackServer, root: Path) -> None:
    from safepip.fetch import Validators, fetch_if_changed

    when = time.time() - 10  # a file served in the second it was written keeps no validators
    os.utime(root / "list.txt", (when, when))
    url = server.url_for("list.txt")
    first = fetch_if_changed(url, validators=Validators(), max_bytes=CAP, timeout=DEADLINE)
    assert first.data == CONTENT
    assert first.validators.etag is None and first.validators.last_modified  # http.server
    assert "if-modified-since" not in server.request_headers[0]
    again = fetch_if_changed(url, validators=first.validators, max_bytes=CAP, timeout=DEADLINE)
    assert again.data is None and again.validators == first.validators
    assert server.request_headers[1]["if-modified-since"] == first.validators.last_modified
    tagged = Validators(etag='"v1"')
    fetch_if_changed(url, validators=tagged, max_bytes=CAP, timeout=DEADLINE)
    assert server.request_headers[2]["if-none-match"] == '"v1"'


def test_malformed_validators_are_dropped_and_files_have_none(
    server: LoopbackServer, root: Path
) -> None:
    from safepip.fetch import Validators, fetch_if_changed

    server.serve_bytes("/odd", b"x", headers=(("ETag", '"' + "a" * 300 + '"'),
                                              ("Last-Modified", "bad\x01date")))  # fmt: skip
    odd = fetch_if_changed(server.url_for("odd"), validators=Validators(), max_bytes=CAP,
                           timeout=DEADLINE)  # fmt: skip
    assert odd.data == b"x" and odd.validators == Validators()
    local = fetch_if_changed(str(root / "list.txt"), validators=Validators(etag='"x"'),
                             max_bytes=CAP, timeout=DEADLINE)  # fmt: skip
    assert local.data == CONTENT and local.validators == Validators()
    assert Validators.from_headers(' "ok" ', None) == Validators(etag='"ok"')


def test_validators_of_a_file_not_a_second_older_than_the_answer_are_not_kept() -> None:
    from safepip.fetch import Validators

    date = "Mon, 30 Nov 2026 02:00:00 GMT"
    same = Validators.from_headers('"e"', "Mon, 30 Nov 2026 02:00:00 GMT", date)
    older = Validators.from_headers('"e"', "Mon, 30 Nov 2026 01:59:59 GMT", date)
    assert same == Validators() == Validators.from_headers('"e"', "garbage", date)
    assert Validators.from_headers('"e"', "Mon, 30 Nov 2026 01:59:59 GMT", "") == Validators()
    assert older == Validators('"e"', "Mon, 30 Nov 2026 01:59:59 GMT")
    assert Validators.from_headers('"sha-of-body"', None, date) == Validators('"sha-of-body"')
