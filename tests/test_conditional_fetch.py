"""Conditional fetch of the list: validators kept, sent back, and a 304 never skips a check.

Against a real nginx (``ETag`` and ``Last-Modified``, how publishers serve a list at scale) and
Python's ``http.server`` (``Last-Modified`` only), both on 127.0.0.1. A 304 stands for the
stored copy, which is verified again in full: a stored copy that has expired since, that was
tampered with, or that is older than the trust state is refused exactly as fetched bytes are.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safepip._cli import main
from safepip.fetch import Validators
from safepip.listcache import ListCache
from tests.keys import Keyring
from tests.nginx import Nginx, nginx_binary
from tests.server import LoopbackServer
from tests.site import Site, make_site

NOT_MODIFIED = "not modified (HTTP 304); verifying the stored copy in full"


@pytest.fixture
def site(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    monkeypatch.chdir(tmp_path)
    site = make_site(tmp_path, keyring)
    site.sign_raw(site.raw_list(serial=1))
    age(site, 20)
    return site


def age(site: Site, seconds: float) -> None:
    """Date the list and signature ``seconds`` ago: validators of a file written in the second
    it is served are not kept (see test_a_list_served_in_the_second_it_was_written_…)."""
    when = time.time() - seconds
    for path in (site.list_path, site.signature_path):
        os.utime(path, (when, when))


def verify(capsys: pytest.CaptureFixture[str], site: Site, url: str) -> tuple[int, str, str]:
    code = main(["verify", "-v", "--list", url + "sha256sums.txt", *site.pins()])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def republish(site: Site, serial: int) -> None:
    """A new list and signature, dated later than the old ones (validators are per second)."""
    site.sign_raw(site.raw_list(serial=serial))
    age(site, 5)


def cache() -> ListCache:
    return ListCache(Path(os.environ["XDG_CACHE_HOME"]) / "safepip")


def stored(url: str) -> tuple[Validators, Validators]:
    copy = cache().load(url + "sha256sums.txt", max_bytes=1 << 20)
    assert copy is not None
    return copy.list_validators, copy.signature_validators


@pytest.fixture
def nginx(site: Site) -> Iterator[Nginx]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run does it)")
    with Nginx(site.out) as server:
        yield server


def test_nginx_304_reverifies_the_stored_copy_and_a_new_list_is_fetched(
    site: Site, nginx: Nginx, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(capsys, site, nginx.url)
    assert code == 0, err
    assert "serial:   1" in out and NOT_MODIFIED not in err
    list_validators, signature_validators = stored(nginx.url)
    assert list_validators.etag and list_validators.last_modified
    assert signature_validators.etag

    code, out, err = verify(capsys, site, nginx.url)
    assert code == 0, err
    assert "serial:   1" in out
    assert err.count(NOT_MODIFIED) == 2  # the list and the signature
    assert "gpg" in err  # the signature was checked again
    sent = nginx.requests()[-2:]
    assert [(path, status) for path, status, _, _ in sent] == [
        ("/sha256sums.txt", 304),
        ("/sha256sums.txt.asc", 304),
    ]
    assert sent[0][2] == list_validators.etag
    assert sent[0][3] == list_validators.last_modified

    republish(site, serial=2)
    code, out, err = verify(capsys, site, nginx.url)
    assert code == 0, err
    assert "serial:   2" in out and NOT_MODIFIED not in err
    assert [status for _, status, _, _ in nginx.requests()[-2:]] == [200, 200]
    assert stored(nginx.url)[0] != list_validators


def test_http_server_last_modified_is_used_too(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer(site.out) as server:
        assert verify(capsys, site, server.url)[0] == 0
        list_validators, _ = stored(server.url)
        assert list_validators.etag is None and list_validators.last_modified
        code, out, err = verify(capsys, site, server.url)
        assert code == 0, err
        assert err.count(NOT_MODIFIED) == 2
        assert server.request_headers[-2]["if-modified-since"] == list_validators.last_modified
        republish(site, serial=2)
        code, out, err = verify(capsys, site, server.url)
    assert code == 0, err
    assert "serial:   2" in out and NOT_MODIFIED not in err


@pytest.mark.parametrize("server_kind", ["nginx", "http.server"])
def test_a_list_served_in_the_second_it_was_written_keeps_no_validators(
    site: Site, capsys: pytest.CaptureFixture[str], server_kind: str
) -> None:
    """A list replaced within the same second keeps its Last-Modified (and nginx's ETag, made of
    that time and the size): validators taken then would make the server answer 304 to the
    next list for good. They are kept only once Last-Modified is a second before Date."""
    if server_kind == "nginx" and nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; .ci/run does it)")
    age(site, -30)  # the server's clock says the files were written "now" or later
    serve = Nginx if server_kind == "nginx" else LoopbackServer
    with serve(site.out) as server:
        assert verify(capsys, site, server.url)[0] == 0
        assert stored(server.url) == (Validators(), Validators())
        data = site.list_path.read_text()
        site.list_path.write_text(data.replace("alpha", "alphb", 1))  # same size, same second
        age(site, -30)
        code, out, err = verify(capsys, site, server.url)
    assert code == 3
    assert "signature" in err.lower() and NOT_MODIFIED not in err
    assert out == ""


def plant(site: Site, url: str, data: bytes, signature: bytes) -> None:
    """Make the cache hold ``data`` and ``signature`` with validators the server answers 304 to."""
    cache().store(
        url + "sha256sums.txt",
        data,
        signature,
        now=datetime.now(tz=timezone.utc),
        list_validators=Validators(etag='"planted"'),
        signature_validators=Validators(etag='"planted-sig"'),
    )


@pytest.mark.parametrize("case", ["expired", "tampered", "rollback", "unsigned-by-pin"])
def test_a_304_never_skips_a_check(
    site: Site, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    with LoopbackServer(site.out) as server:
        assert verify(capsys, site, server.url)[0] == 0  # state: serial 1
        good_data, good_signature = site.list_path.read_bytes(), site.signature_path.read_bytes()
        if case == "expired":
            issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=60)
            site.sign_raw(site.raw_list(serial=3, issued=issued))
        elif case == "rollback":
            republish(site, serial=5)
            assert verify(capsys, site, server.url)[0] == 0  # state: serial 5
            site.sign_raw(good_data)  # serial 1 again, validly signed
            site.signature_path.write_bytes(good_signature)
        elif case == "unsigned-by-pin":
            site.sign_raw(site.raw_list(serial=3), signer="bob")
        data, signature = site.list_path.read_bytes(), site.signature_path.read_bytes()
        if case == "tampered":
            data = data.replace(b"# serial: 1\n", b"# serial: 9\n")
        plant(site, server.url, data, signature)
        # The server now says "not modified" to anything conditional: the stored copy is used.
        server.status("/sha256sums.txt", 304, b"")
        server.status("/sha256sums.txt.asc", 304, b"")
        code, out, err = verify(capsys, site, server.url)
    assert code == 3, err
    assert err.count(NOT_MODIFIED) == 2
    assert out == ""
    expected = {
        "expired": "expired",
        "tampered": "signature",
        "rollback": "rollback",
        "unsigned-by-pin": "signature",
    }[case]
    assert expected in err.lower()


def test_a_304_to_an_unconditional_request_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    with LoopbackServer(site.out) as server:
        server.status("/sha256sums.txt", 304, b"")
        code, out, err = verify(capsys, site, server.url)
    assert code == 3
    assert "HTTP status 304" in err
    assert out == ""
