"""The last verified list, kept for ``safepip check`` when the list's server cannot be reached.

Real keys, a real server on 127.0.0.1 that is then stopped, and the real CLI. A cached copy is
verified again on every use: a tampered, expired or rolled-back copy is refused as a fetched
list would be.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safepip._cli import main
from safepip.errors import FetchError
from safepip.listcache import ListCache
from safepip.location import canonical
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.site import Site, make_site


@pytest.fixture
def site(tmp_path: Path, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Site:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    monkeypatch.chdir(tmp_path)
    return make_site(tmp_path, keyring, {"gamma": ("0.1", ())})


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def publish(site: Site, capsys: pytest.CaptureFixture[str], *extra: str) -> None:
    code, _, err = run(capsys, "publish", str(site.wheels), "--out", str(site.out),
                       "--key", site.fingerprint(), *site.pins(), *extra)  # fmt: skip
    assert code == 0, err


def lock_file(site: Site, tmp_path: Path) -> Path:
    (wheel,) = site.wheels.glob("gamma-*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    path = tmp_path / "requirements.txt"
    path.write_text(f"gamma==0.1 --hash=sha256:{digest}\n")
    return path


def files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def served_once(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> tuple[str, list[str]]:
    """Check against the served list once (which caches it); return its URL and the flags."""
    with LoopbackServer(site.out) as server:
        url = server.url + "sha256sums.txt"
        flags = ["--list", url, *site.pins()]
        code, _, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
        assert code == 0, err
        assert "cached" not in err
    return url, flags


def test_check_falls_back_to_the_last_verified_list(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    url, flags = served_once(site, capsys, tmp_path)
    cache = tmp_path / "cache" / "safepip"
    (record,) = (cache / "lists").iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE((cache / "lists").stat().st_mode) == 0o700
    assert stat.S_IMODE(record.stat().st_mode) & 0o077 == 0
    head, _, payload = record.read_bytes().partition(b"\n")
    assert json.loads(head)["list"] == url
    assert payload == site.list_path.read_bytes() + site.signature_path.read_bytes()
    # The server is gone: check still works, from the cache, and says so.
    code, out, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 0, err
    assert "ok: 1 requirement(s)" in out
    assert "warning: using the cached list from " in err
    # Another spelling of the same URL finds the same copy.
    respelt = ["--list", url.replace("http://", "HTTP://") + "?", "--signature", url + ".asc"]
    assert run(capsys, "check", *respelt, *site.pins(), str(lock_file(site, tmp_path)))[0] == 0


def test_only_check_falls_back(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    _, flags = served_once(site, capsys, tmp_path)
    for command in (["verify"], ["install", "--dry-run", "gamma==0.1"]):
        code, _, err = run(capsys, *command, *flags)
        assert code == 3, command
        assert "cached" not in err


def test_a_tampered_cached_list_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    url, flags = served_once(site, capsys, tmp_path)
    (record,) = (tmp_path / "cache" / "safepip" / "lists").iterdir()
    cached = ListCache(tmp_path / "cache" / "safepip").load(url, max_bytes=1 << 20)
    assert cached is not None
    ListCache(tmp_path / "cache" / "safepip").store(
        url, cached.data + b"# appended\n", cached.signature, now=cached.stored
    )
    code, _, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 3
    assert "does not match" in err
    record.write_bytes(b"{not json")
    code, _, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 3
    assert f"cached list {record}: not valid JSON" in err


def test_an_expired_cached_list_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    url, flags = served_once(site, capsys, tmp_path)
    # A genuine list, signed by the pinned key, that expired yesterday.
    issued = datetime.now(tz=timezone.utc).replace(microsecond=0) - timedelta(days=31)
    old = site.raw_list(serial=9, issued=issued, lifetime=timedelta(days=30))
    signature = site.keyring.detach_sign(old, site.fingerprint())
    cache = ListCache(tmp_path / "cache" / "safepip")
    cache.store(canonical(url, base_dir=tmp_path), old, signature, now=issued)
    code, _, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 3
    assert "expired" in err


def test_a_rolled_back_cached_list_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys, "--serial", "1")
    one = (site.list_path.read_bytes(), site.signature_path.read_bytes())
    publish(site, capsys, "--serial", "2")
    url, flags = served_once(site, capsys, tmp_path)
    ListCache(tmp_path / "cache" / "safepip").store(url, *one, now=datetime.now(tz=timezone.utc))
    code, _, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 3
    assert "serial 1 is lower than serial 2" in err


def test_a_refused_check_writes_no_cache(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    unhashed = tmp_path / "loose.txt"
    unhashed.write_text("gamma==0.1\n")
    with LoopbackServer(site.out) as server:
        code, _, _ = run(capsys, "check", "--list", server.url + "sha256sums.txt",
                         *site.pins(), str(unhashed))  # fmt: skip
    assert code == 1
    assert files(tmp_path / "cache") == {}
    assert files(tmp_path / "state") == {}


def test_a_local_list_is_not_cached(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish(site, capsys)
    flags = ["--list", str(site.list_path), *site.pins()]
    assert run(capsys, "check", *flags, str(lock_file(site, tmp_path)))[0] == 0
    assert files(tmp_path / "cache") == {}


def test_an_unsafe_cache_is_refused(tmp_path: Path) -> None:
    cache = ListCache(tmp_path / "cache")
    cache.store("https://example.org/x", b"list", b"sig", now=datetime.now(tz=timezone.utc))
    assert cache.load("https://example.org/x", max_bytes=100) is not None
    cache.directory.chmod(0o777)
    with pytest.raises(FetchError, match="writable by group or others"):
        cache.load("https://example.org/x", max_bytes=100)
    cache.directory.chmod(0o700)
    path = cache.path("https://example.org/x")
    target = tmp_path / "elsewhere.json"
    path.rename(target)
    path.symlink_to(target)
    with pytest.raises(FetchError, match="cached list"):
        cache.load("https://example.org/x", max_bytes=100)
    path.unlink()
    target.rename(cache.path("https://example.org/y"))
    with pytest.raises(FetchError, match="another list than its name says"):
        cache.load("https://example.org/y", max_bytes=100)


def test_a_cache_that_cannot_be_written_costs_only_a_warning(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish(site, capsys)
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with LoopbackServer(site.out) as server:
        flags = ["--list", server.url + "sha256sums.txt", *site.pins()]
        code, out, err = run(capsys, "check", *flags, str(lock_file(site, tmp_path)))
    assert code == 0, err
    assert "ok: 1 requirement(s)" in out
    assert "warning: cannot keep a copy of the list for offline use" in err
    assert (tmp_path / "state").exists()  # the serial was recorded all the same


def test_validators_are_kept_with_the_pair_and_version_1_files_still_read(tmp_path: Path) -> None:
    from safepip.fetch import Validators

    cache = ListCache(tmp_path / "cache")
    now = datetime.now(tz=timezone.utc)
    tags = Validators('"abc"', "Mon, 30 Nov 2026 01:00:00 GMT"), Validators(etag='W/"sig"')
    cache.store("https://example.org/x", b"list", b"sig", now=now,
                list_validators=tags[0], signature_validators=tags[1])  # fmt: skip
    copy = cache.load("https://example.org/x", max_bytes=100)
    assert copy is not None
    assert (copy.list_validators, copy.signature_validators) == tags
    path = cache.path("https://example.org/x")
    head, _, payload = path.read_bytes().partition(b"\n")
    record = json.loads(head)
    assert (record["data"], record["signature"], payload) == (4, 3, b"listsig")
    old = {k: v for k, v in record.items() if k != "validators"} | {"version": 1}
    old |= {"data": base64.b64encode(b"list").decode(), "signature": "c2ln"}
    path.write_text(json.dumps(old))
    copy = cache.load("https://example.org/x", max_bytes=100)
    assert copy is not None and (copy.data, copy.signature) == (b"list", b"sig")
    assert copy.list_validators == Validators() == copy.signature_validators
    for bad in ({"list": {"etag": "a\r\nX-Evil: 1"}, "signature": {}},
                {"list": {"etag": 5}, "signature": {}}, {"list": {}},
                {"list": {"other": "x"}, "signature": {}}):  # fmt: skip
        path.write_bytes(json.dumps(record | {"validators": bad}).encode() + b"\n" + payload)
        with pytest.raises(FetchError, match="validators are malformed"):
            cache.load("https://example.org/x", max_bytes=100)
    for wrong in ({"version": 3}, {"data": 5}, {"data": True}, {"data": "4"}, {"data": -1}):
        path.write_bytes(json.dumps(record | wrong).encode() + b"\n" + payload)
        with pytest.raises(FetchError, match=r"a field is malformed|not a cached list"):
            cache.load("https://example.org/x", max_bytes=100)
    path.write_bytes(json.dumps(old).encode() + b"\n" + payload)  # v1 with bytes after it
    with pytest.raises(FetchError, match="a field is malformed"):
        cache.load("https://example.org/x", max_bytes=100)
    path.write_text(json.dumps(old | {"version": 2}))
    with pytest.raises(FetchError, match="not a cached list of this safepip"):
        cache.load("https://example.org/x", max_bytes=100)


def test_a_cache_file_of_the_wrong_shape_is_refused_and_a_good_one_read_whole(
    tmp_path: Path,
) -> None:
    cache = ListCache(tmp_path / "cache")
    url = "https://example.org/x"
    data = b"line one\nline two\n" * 50_000  # newlines in the list never move the split
    cache.store(url, data, b"sig\n", now=datetime.now(tz=timezone.utc))
    copy = cache.load(url, max_bytes=len(data))
    assert copy is not None and (copy.data, copy.signature) == (data, b"sig\n")
    path = cache.path(url)
    good = path.read_bytes()
    for bad, why in (
        (good[:-1], "a field is malformed"),  # truncated: the sizes no longer fit
        (good + b"x", "a field is malformed"),  # one byte more than the sizes say
        (good.replace(b"\n", b" ", 1), "not valid JSON"),  # no record line
        (b"\n" + good, "not valid JSON"),
    ):
        path.write_bytes(bad)
        with pytest.raises(FetchError, match=why):
            cache.load(url, max_bytes=len(data))
    path.write_bytes(good)
    with pytest.raises(FetchError, match="larger than a list and its signature can be"):
        cache.load(url, max_bytes=1000)


def test_a_copy_written_in_short_pieces_reads_back_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """writev may write less than asked: each write resumes where the last one stopped."""
    import os

    real = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, views: real(fd, [bytes(views[0][:7])]))
    cache = ListCache(tmp_path / "cache")
    data = b"a list\n" * 100
    cache.store("https://example.org/x", data, b"signature", now=datetime.now(tz=timezone.utc))
    monkeypatch.undo()
    copy = cache.load("https://example.org/x", max_bytes=len(data))
    assert copy is not None and (copy.data, copy.signature) == (data, b"signature")


def test_a_copy_that_grows_while_it_is_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    cache = ListCache(tmp_path / "cache")
    data = b"a list\n" * 100
    cache.store("https://example.org/x", data, b"sig", now=datetime.now(tz=timezone.utc))
    real = os.fstat

    def earlier(fd: int) -> os.stat_result:  # the size it had before a writer appended
        found = real(fd)
        return os.stat_result((*found[:6], found.st_size - 3, *found[7:10]))

    monkeypatch.setattr(os, "fstat", earlier)
    with pytest.raises(FetchError, match="it changed while it was read"):
        cache.load("https://example.org/x", max_bytes=len(data))


def test_a_store_removes_what_killed_runs_left_not_what_a_live_run_writes(tmp_path: Path) -> None:
    import os
    import time

    cache = ListCache(tmp_path / "cache")
    now = datetime.now(tz=timezone.utc)
    cache.store("https://example.org/x", b"list", b"sig", now=now)
    old = cache.directory / ".tmp-0123456789abcdef-killed.json"
    live = cache.directory / ".tmp-fedcba9876543210-writing.json"
    old.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    cache.store("https://example.org/y", b"other", b"sig", now=now)
    assert not old.exists() and live.exists()
    assert cache.load("https://example.org/x", max_bytes=100) is not None
