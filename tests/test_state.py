"""Tests for safepip.state: the highest serial accepted per list, stored atomically under a lock.

All tests use real files under tmp_path. Refusals are checked to leave the stored bytes unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safepip import location, state
from safepip.errors import FreshnessError, StateError
from safepip.state import Accepted, TrustState, default_state_dir, judge_serial

URL = "https://example.org/sha256sums.txt"
FPR_A = "0123456789ABCDEF0123456789ABCDEF01234567"
FPR_B = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"
IS_ROOT = os.geteuid() == 0


def digest(n: int | str) -> str:
    """A deterministic list hash for serial ``n`` (distinct per serial)."""
    return hashlib.sha256(f"list body {n}".encode()).hexdigest()


def record_path(ts: TrustState, url: str = URL) -> Path:
    return ts.directory / f"serial-{ts.key(url)}.json"


def legacy_path(ts: TrustState, url: str = URL, fprs: tuple[str, ...] = (FPR_A,)) -> Path:
    """Where safepip before format 2 kept the record of ``url`` under the pins ``fprs``."""
    return ts.directory / f"list-{state.legacy_key(url, fprs)}.json"


def write_legacy(ts: TrustState, serial: int, *, url: str = URL, fprs: tuple[str, ...] = (FPR_A,),
                 sha: str | None = None) -> Path:  # fmt: skip
    """A format 1 record, byte for byte as safepip before format 2 wrote it."""
    ts.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = {
        "version": 1,
        "url": url,
        "fingerprints": sorted(fprs),
        "serial": serial,
        "sha256": sha or digest(serial),
    }
    path = legacy_path(ts, url, fprs)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)
    return path


def snapshot(directory: Path) -> dict[str, bytes | str]:
    """Every entry of ``directory``: file bytes, or the target of a symlink."""
    out: dict[str, bytes | str] = {}
    for entry in sorted(directory.iterdir()):
        if entry.is_symlink():
            out[entry.name] = f"-> {entry.readlink()}"
        elif entry.is_file():
            out[entry.name] = entry.read_bytes()
        else:
            out[entry.name] = "<other>"
    return out


@pytest.fixture
def ts(tmp_path: Path) -> TrustState:
    return TrustState(tmp_path / "state" / "safepip")


# -- key and default directory ---------------------------------------------------------------


def test_key_is_hex_and_differs_by_list(ts: TrustState) -> None:
    key = ts.key(URL)
    assert len(key) == 64
    assert all(c in "0123456789abcdef" for c in key)
    assert key == ts.key(URL)
    assert len({key, ts.key(URL + "x"), ts.key("https://example.org/other.txt")}) == 3


def test_legacy_key_ignores_case_spaces_order_and_duplicates() -> None:
    key = state.legacy_key(URL, [FPR_A, FPR_B])
    spaced_lower = " ".join([FPR_A[i : i + 4] for i in range(0, 40, 4)]).lower()
    assert state.legacy_key(URL, [FPR_B, spaced_lower, FPR_A]) == key
    assert state.legacy_key(URL, (f for f in [FPR_B, FPR_A])) == key
    assert state.legacy_key(URL, [FPR_A]) != key


@pytest.mark.parametrize("bad", [[], ["not-hex"], FPR_A, [""]])
def test_key_rejects_empty_or_malformed_key_sets(bad: object) -> None:
    with pytest.raises(ValueError):
        state.legacy_key(URL, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"}, "/x/state/safepip"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, "/home/u/.local/state/safepip"),
        ({"XDG_STATE_HOME": "", "HOME": "/home/u"}, "/home/u/.local/state/safepip"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/safepip"),
    ],
)
def test_default_state_dir(environ: dict[str, str], expected: str) -> None:
    assert default_state_dir(environ) == Path(expected)


def test_default_state_dir_without_home_uses_password_database() -> None:
    result = default_state_dir({})
    assert result.is_absolute()
    assert result.parts[-3:] == (".local", "state", "safepip")


# -- judge_serial (pure) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "previous", "min_serial"),
    [
        (0, None, 0),
        (7, None, 7),
        (8, Accepted(7, digest(7)), 0),
        (7, Accepted(7, digest(7)), 7),
    ],
)
def test_judge_serial_accepts(serial: int, previous: Accepted | None, min_serial: int) -> None:
    judge_serial(
        serial=serial,
        sha256=digest(serial),
        previous=previous,
        min_serial=min_serial,
        list_name=URL,
    )


def test_judge_serial_refuses_below_min_serial() -> None:
    with pytest.raises(FreshnessError, match="below the project's min-serial 10") as info:
        judge_serial(serial=9, sha256=digest(9), previous=None, min_serial=10, list_name=URL)
    assert URL in str(info.value)
    assert info.value.exit_code == 3


def test_judge_serial_refuses_rollback_naming_both_serials() -> None:
    with pytest.raises(FreshnessError, match="rollback") as info:
        judge_serial(
            serial=41,
            sha256=digest(41),
            previous=Accepted(42, digest(42)),
            min_serial=0,
            list_name=URL,
        )
    assert "41" in str(info.value)
    assert "42" in str(info.value)


def test_judge_serial_refuses_equivocation() -> None:
    with pytest.raises(FreshnessError, match="same serial, different bytes"):
        judge_serial(
            serial=42,
            sha256=digest("other"),
            previous=Accepted(42, digest(42)),
            min_serial=0,
            list_name=URL,
        )


# -- accept and read ----------------------------------------------------------------------------


def test_read_of_missing_state_returns_none_and_creates_nothing(ts: TrustState) -> None:
    assert ts.read(URL) is None
    assert not ts.directory.exists()
    assert not ts.directory.parent.exists()


def test_first_accept_creates_private_directory_and_record(ts: TrustState) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    assert ts.read(URL) == Accepted(5, digest(5))
    assert stat.S_IMODE(ts.directory.stat().st_mode) == 0o700
    path = record_path(ts)
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert json.loads(path.read_bytes()) == {
        "version": 2,
        "list": URL,
        "fingerprints": [],
        "serial": 5,
        "sha256": digest(5),
    }
    ts.accept(URL, 6, digest(6), min_serial=0, fingerprints=[FPR_B, FPR_A.lower()])
    assert json.loads(path.read_bytes())["fingerprints"] == [FPR_A, FPR_B]
    # No temporary files are left behind.
    assert sorted(p.name for p in ts.directory.iterdir()) == sorted([path.name, "lock"])


def test_existing_directory_is_used_as_is(ts: TrustState) -> None:
    ts.directory.mkdir(parents=True, mode=0o755)
    ts.directory.chmod(0o755)  # an ordinary home-style mode must be accepted
    ts.accept(URL, 1, digest(1), min_serial=0)
    assert ts.read(URL) == Accepted(1, digest(1))


def test_higher_serial_is_accepted(ts: TrustState) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    ts.accept(URL, 6, digest(6), min_serial=0)
    ts.accept(URL, 100, digest(100), min_serial=0)
    assert ts.read(URL) == Accepted(100, digest(100))


def test_lower_serial_is_refused_and_state_unchanged(ts: TrustState) -> None:
    ts.accept(URL, 42, digest(42), min_serial=0)
    before = snapshot(ts.directory)
    with pytest.raises(FreshnessError, match="rollback") as info:
        ts.accept(URL, 41, digest(41), min_serial=0)
    message = str(info.value)
    assert "serial 41" in message
    assert "serial 42" in message
    assert snapshot(ts.directory) == before
    assert ts.read(URL) == Accepted(42, digest(42))


def test_same_serial_same_bytes_is_fine_and_does_not_rewrite(ts: TrustState) -> None:
    ts.accept(URL, 42, digest(42), min_serial=0)
    path = record_path(ts)
    inode = path.stat().st_ino
    ts.accept(URL, 42, digest(42), min_serial=0)
    assert path.stat().st_ino == inode
    assert ts.read(URL) == Accepted(42, digest(42))


def test_same_serial_other_bytes_is_refused_and_state_unchanged(ts: TrustState) -> None:
    ts.accept(URL, 42, digest(42), min_serial=0)
    before = snapshot(ts.directory)
    with pytest.raises(FreshnessError, match="equivocation"):
        ts.accept(URL, 42, digest("evil"), min_serial=0)
    assert snapshot(ts.directory) == before
    assert ts.read(URL) == Accepted(42, digest(42))


def test_min_serial_refused_on_empty_state_creates_nothing(ts: TrustState) -> None:
    with pytest.raises(FreshnessError, match="min-serial 10"):
        ts.accept(URL, 9, digest(9), min_serial=10)
    assert not ts.directory.exists()
    ts.accept(URL, 10, digest(10), min_serial=10)
    assert ts.read(URL) == Accepted(10, digest(10))


def test_min_serial_applies_above_stored_state(ts: TrustState) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    before = snapshot(ts.directory)
    with pytest.raises(FreshnessError, match="min-serial 10"):
        ts.accept(URL, 7, digest(7), min_serial=10)
    assert snapshot(ts.directory) == before


def test_lists_are_independent(ts: TrustState) -> None:
    other_url = "https://example.org/other/sha256sums.txt"
    ts.accept(URL, 50, digest(50), min_serial=0)
    ts.accept(other_url, 1, digest(1), min_serial=0)
    assert ts.read(URL) == Accepted(50, digest(50))
    assert ts.read(other_url) == Accepted(1, digest(1))
    assert ts.read("https://example.org/third.txt") is None
    # The same serial with other bytes is fine for another list.
    ts.accept(other_url, 50, digest("other"), min_serial=0)


def test_the_pins_do_not_open_a_fresh_history(ts: TrustState) -> None:
    # Review finding f_state_keyset_reset: adding a key to the pins (a rotation, a higher
    # threshold) must keep the ratchet. The fingerprints are stored for information only.
    ts.accept(URL, 50, digest(50), min_serial=0, fingerprints=[FPR_A])
    before = snapshot(ts.directory)
    with pytest.raises(FreshnessError, match="rollback"):
        ts.accept(URL, 3, digest(3), min_serial=0, fingerprints=[FPR_A, FPR_B])
    with pytest.raises(FreshnessError, match="rollback"):
        ts.check(URL, 3, digest(3), min_serial=0)
    assert snapshot(ts.directory) == before


def test_check_judges_without_writing(ts: TrustState) -> None:
    ts.check(URL, 5, digest(5), min_serial=0)
    assert not ts.directory.parent.exists()  # a fresh machine gets nothing from a check
    ts.accept(URL, 5, digest(5), min_serial=0)
    before = snapshot(ts.directory)
    ts.check(URL, 5, digest(5), min_serial=0)
    ts.check(URL, 6, digest(6), min_serial=0)
    for serial, sha, why in [(4, digest(4), "rollback"), (5, digest("x"), "equivocation"),
                             (6, digest(6), "min-serial")]:  # fmt: skip
        with pytest.raises(FreshnessError, match=why):
            ts.check(URL, serial, sha, min_serial=7 if why == "min-serial" else 0)
    assert snapshot(ts.directory) == before


def test_accept_keeps_a_newer_serial_when_asked(ts: TrustState) -> None:
    # A concurrent run stored 9 after this run judged 8: commit must neither lower it nor fail.
    ts.accept(URL, 9, digest(9), min_serial=0)
    before = snapshot(ts.directory)
    assert ts.accept(URL, 8, digest(8), min_serial=0, keep_newer=True) is False
    assert snapshot(ts.directory) == before
    with pytest.raises(FreshnessError, match="equivocation"):
        ts.accept(URL, 9, digest("other"), min_serial=0, keep_newer=True)
    assert ts.accept(URL, 9, digest(9), min_serial=0, keep_newer=True) is True
    assert ts.accept(URL, 10, digest(10), min_serial=0, keep_newer=True) is True
    assert ts.read(URL) == Accepted(10, digest(10))


# -- format 1 records (before the history was keyed by location alone) ------------------------


def test_legacy_records_of_every_pin_set_and_spelling_count(ts: TrustState) -> None:
    write_legacy(ts, 40, fprs=(FPR_A,))
    write_legacy(ts, 55, fprs=(FPR_A, FPR_B))
    write_legacy(ts, 60, url="HTTPS://Example.ORG:443/sha256sums.txt?#top", fprs=(FPR_B,))
    write_legacy(ts, 99, url="https://example.org/another.txt")
    before = snapshot(ts.directory)
    assert ts.read(URL) == Accepted(60, digest(60))
    assert sorted(a.serial for a in ts.history(URL)) == [40, 55, 60]
    for serial in (40, 55, 59):
        with pytest.raises(FreshnessError, match="lower than serial 60"):
            ts.check(URL, serial, digest(serial), min_serial=0)
        with pytest.raises(FreshnessError, match="lower than serial 60"):
            ts.accept(URL, serial, digest(serial), min_serial=0)
    with pytest.raises(FreshnessError, match="equivocation"):
        ts.accept(URL, 60, digest("evil"), min_serial=0)
    assert snapshot(ts.directory) == {**before, "lock": b""}  # the lock file holds no data
    # Accepting 60 again migrates: a format 2 record appears, the format 1 ones stay untouched.
    assert ts.accept(URL, 60, digest(60), min_serial=0, fingerprints=[FPR_A])
    after = snapshot(ts.directory)
    assert {k: v for k, v in after.items() if k in before} == before
    assert json.loads(record_path(ts).read_bytes())["serial"] == 60
    ts.accept(URL, 61, digest(61), min_serial=0)
    assert ts.read(URL) == Accepted(61, digest(61))


def test_legacy_local_path_record_counts_for_the_file_url(ts: TrustState, tmp_path: Path) -> None:
    listed = tmp_path / "site" / "sha256sums.txt"
    listed.parent.mkdir()
    listed.write_bytes(b"")
    write_legacy(ts, 7, url=str(listed))
    identity = location.canonical(listed.as_uri(), base_dir=Path("/"))
    assert identity == str(listed.resolve())
    with pytest.raises(FreshnessError, match="rollback"):
        ts.check(identity, 6, digest(6), min_serial=0)


@pytest.mark.parametrize("content", [b"{not json", b"", json.dumps({"version": 1}).encode()])
def test_corrupt_legacy_record_refuses_every_list(ts: TrustState, content: bytes) -> None:
    # It cannot be attributed to a list without being read: it may protect any of them.
    path = write_legacy(ts, 5, url="https://example.org/another.txt")
    path.write_bytes(content)
    (ts.directory / "lock").write_bytes(b"")
    before = snapshot(ts.directory)
    for call in read_and_accept(ts):
        with pytest.raises(StateError, match="corrupt") as info:
            call()
        assert str(path) in str(info.value)
    assert snapshot(ts.directory) == before


def test_legacy_record_renamed_to_another_key_is_refused(ts: TrustState) -> None:
    path = write_legacy(ts, 5)
    renamed = path.with_name(f"list-{'0' * 64}.json")
    path.rename(renamed)
    with pytest.raises(StateError, match="another list URL or key set") as info:
        ts.read(URL)
    assert str(renamed) in str(info.value)


@pytest.mark.parametrize(
    ("serial", "sha", "min_serial"),
    [
        (-1, digest(1), 0),
        (True, digest(1), 0),
        (1, "ab", 0),
        (1, digest(1).upper(), 0),
        (1, digest(1), -1),
    ],
)
def test_accept_rejects_impossible_arguments(
    ts: TrustState, serial: int, sha: str, min_serial: int
) -> None:
    with pytest.raises(ValueError):
        ts.accept(URL, serial, sha, min_serial=min_serial)
    assert not ts.directory.exists()


# -- corrupt and unsafe state -----------------------------------------------------------------


def _valid_record(serial: int = 5) -> dict[str, object]:
    return {
        "version": 2,
        "list": URL,
        "fingerprints": [],
        "serial": serial,
        "sha256": digest(serial),
    }


def _json(**changes: object) -> bytes:
    record = _valid_record()
    for k, v in changes.items():
        if v is _DELETE:
            del record[k]
        else:
            record[k] = v
    return json.dumps(record).encode()


_DELETE = object()

CORRUPT = {
    "not-json": b"{not json",
    "empty": b"",
    "truncated": json.dumps(_valid_record(), indent=2).encode()[:-7],
    "binary": b"\xff\xfe\x00garbage",
    "top-level-list": b"[1, 2, 3]",
    "serial-string": _json(serial="5"),
    "serial-bool": _json(serial=True),
    "serial-float": _json(serial=5.0),
    "serial-negative": _json(serial=-5),
    "sha-short": _json(sha256="abc123"),
    "sha-upper": _json(sha256=digest(5).upper()),
    "sha-not-hex": _json(sha256="z" * 64),
    "sha-int": _json(sha256=5),
    "version-1": _json(version=1),
    "version-3": _json(version=3),
    "version-string": _json(version="2"),
    "missing-key": _json(sha256=_DELETE),
    "extra-key": _json(extra=1),
    "list-int": _json(list=3),
    "fingerprints-string": _json(fingerprints=FPR_A),
    "other-list": _json(list="https://evil.example/sha256sums.txt"),
    "legacy-shape": _json(list=_DELETE, url=URL),
    "nan": b'{"version": 2, "list": "'
    + URL.encode()
    + b'", "fingerprints": ["'
    + FPR_A.encode()
    + b'"], "serial": NaN, "sha256": "'
    + digest(5).encode()
    + b'"}',
    "duplicate-key": _json()[:-1] + b', "serial": 99}',
    "huge": b" " * (state.MAX_RECORD_BYTES + 10) + _json(),
}


@pytest.mark.parametrize("content", list(CORRUPT.values()), ids=list(CORRUPT))
def test_corrupt_record_is_refused_and_left_unchanged(ts: TrustState, content: bytes) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    path = record_path(ts)
    path.write_bytes(content)
    before = snapshot(ts.directory)
    with pytest.raises(StateError) as info:
        ts.read(URL)
    assert str(path) in str(info.value)
    assert info.value.exit_code == 3
    with pytest.raises(StateError) as info:
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert str(path) in str(info.value)
    assert snapshot(ts.directory) == before
    assert path.read_bytes() == content


def test_the_valid_baseline_of_the_corrupt_cases_is_accepted(ts: TrustState) -> None:
    # Guards the parametrised test above: its refusals come from the change, not the baseline.
    ts.directory.mkdir(parents=True)
    record_path(ts).write_bytes(_json())
    assert ts.read(URL) == Accepted(5, digest(5))


def read_and_accept(ts: TrustState) -> list[Callable[[], object]]:
    """Both entry points, for tests that expect them to refuse alike."""
    return [
        lambda: ts.read(URL),
        lambda: ts.accept(URL, 6, digest(6), min_serial=0),
    ]


def test_symlinked_record_is_refused(ts: TrustState, tmp_path: Path) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    path = record_path(ts)
    real = tmp_path / "elsewhere.json"
    real.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(real)
    before = snapshot(ts.directory)
    for call in read_and_accept(ts):
        with pytest.raises(StateError, match="is a symlink; refusing") as info:
            call()
        assert str(path) in str(info.value)
    assert snapshot(ts.directory) == before
    assert path.is_symlink()
    assert json.loads(real.read_bytes()) == _valid_record(5)


def test_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = TrustState(tmp_path / "real")
    real.accept(URL, 5, digest(5), min_serial=0)
    before = snapshot(real.directory)
    link = tmp_path / "link"
    link.symlink_to(real.directory)
    ts = TrustState(link)
    for call in read_and_accept(ts):
        with pytest.raises(StateError, match="is a symlink; refusing") as info:
            call()
        assert str(link) in str(info.value)
    assert snapshot(real.directory) == before
    assert link.is_symlink()


def test_dangling_symlink_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    ts = TrustState(link)
    with pytest.raises(StateError, match="is a symlink; refusing"):
        ts.read(URL)
    with pytest.raises(StateError, match="is a symlink; refusing"):
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert not (tmp_path / "nowhere").exists()


def test_state_directory_that_is_a_file_is_refused(ts: TrustState) -> None:
    ts.directory.parent.mkdir(parents=True)
    ts.directory.write_bytes(b"precious")
    with pytest.raises(StateError, match="not a directory") as info:
        ts.accept(URL, 1, digest(1), min_serial=0)
    assert str(ts.directory) in str(info.value)
    assert ts.directory.read_bytes() == b"precious"


def test_record_that_is_a_fifo_is_refused_without_hanging(ts: TrustState) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    path = record_path(ts)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(StateError, match="not a regular file"):
        ts.read(URL)
    assert stat.S_ISFIFO(path.lstat().st_mode)


@pytest.mark.parametrize("target", ["record", "directory"])
def test_group_or_other_writable_state_is_refused(ts: TrustState, target: str) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    path = record_path(ts) if target == "record" else ts.directory
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(mode | 0o002)
    before = snapshot(ts.directory)
    with pytest.raises(StateError, match="writable by group or others") as info:
        ts.read(URL)
    assert str(path) in str(info.value)
    with pytest.raises(StateError, match="writable by group or others"):
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert snapshot(ts.directory) == before


@pytest.mark.skipif(not IS_ROOT, reason="only root can give a file to another user")
def test_record_owned_by_another_user_is_refused(ts: TrustState) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    path = record_path(ts)
    os.chown(path, 65534, 65534)
    before = snapshot(ts.directory)
    with pytest.raises(StateError, match="owned by uid 65534") as info:
        ts.read(URL)
    assert str(path) in str(info.value)
    with pytest.raises(StateError, match="owned by uid 65534"):
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert snapshot(ts.directory) == before


def test_symlinked_lock_file_is_refused(ts: TrustState, tmp_path: Path) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    lock = ts.directory / "lock"
    lock.unlink()
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not touch")
    lock.symlink_to(victim)
    with pytest.raises(StateError) as info:
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert str(lock) in str(info.value)
    assert victim.read_bytes() == b"do not touch"
    assert ts.read(URL) == Accepted(5, digest(5))


def test_uncreatable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    ts = TrustState(blocker / "safepip")
    with pytest.raises(StateError, match="cannot create") as info:
        ts.accept(URL, 1, digest(1), min_serial=0)
    assert str(ts.directory) in str(info.value)


_AS_USER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from safepip.state import TrustState
    from safepip.errors import StateError
    directory, url, fpr, serial, sha = sys.argv[1:]
    try:
        TrustState(Path(directory)).accept(url, int(serial), sha, min_serial=0)
    except StateError as exc:
        print("StateError:", exc)
    else:
        print("accepted")
    """
)


def test_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    if not IS_ROOT:
        ts = TrustState(tmp_path / "safepip")
        ts.accept(URL, 5, digest(5), min_serial=0)
        before = snapshot(ts.directory)
        ts.directory.chmod(0o500)
        try:
            with pytest.raises(StateError) as info:
                ts.accept(URL, 6, digest(6), min_serial=0)
            assert str(ts.directory) in str(info.value)
        finally:
            ts.directory.chmod(0o700)
        assert snapshot(ts.directory) == before
        return
    # Root ignores permission bits, so run the writer as `nobody` in a directory nobody owns.
    base = Path(tempfile.mkdtemp(prefix="safepip-state-test-"))
    try:
        base.chmod(0o755)
        directory = base / "safepip"
        directory.mkdir(mode=0o500)
        os.chown(directory, 65534, 65534)
        try:
            out = subprocess.run(
                [sys.executable, "-c", _AS_USER_SCRIPT, str(directory), URL, FPR_A, "6", digest(6)],
                capture_output=True,
                text=True,
                check=True,
                user=65534,
                group=65534,
                extra_groups=[],
                cwd=base,
            )
        except PermissionError:
            pytest.skip("this Python cannot be run by uid 65534 (test_unwritable_simulated covers)")
        assert out.stdout.startswith("StateError:"), out.stdout + out.stderr
        assert str(directory) in out.stdout
        assert list(directory.iterdir()) == []
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("existing", [False, True])
def test_unwritable_directory_simulated(
    ts: TrustState, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    # What the kernel does for a non-root user in a 0500 directory: creating any entry fails.
    if existing:
        ts.accept(URL, 5, digest(5), min_serial=0)
    else:
        ts.directory.mkdir(parents=True, mode=0o700)
    before = snapshot(ts.directory)
    real_open = os.open

    def open_without_create(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            try:
                os.stat(path, dir_fd=kwargs.get("dir_fd"), follow_symlinks=False)  # type: ignore[arg-type]
            except FileNotFoundError:
                raise PermissionError(13, "Permission denied") from None
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_without_create)
    with pytest.raises(StateError, match="Permission denied") as info:
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert str(ts.directory) in str(info.value)
    monkeypatch.undo()
    assert snapshot(ts.directory) == before


def test_failed_write_removes_temp_file_and_keeps_old_record(
    ts: TrustState, monkeypatch: pytest.MonkeyPatch
) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    before = snapshot(ts.directory)

    def failing_replace(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StateError, match="No space left") as info:
        ts.accept(URL, 6, digest(6), min_serial=0)
    assert str(record_path(ts)) in str(info.value)
    monkeypatch.undo()
    assert snapshot(ts.directory) == before
    # The lock was released despite the failure.
    ts.accept(URL, 6, digest(6), min_serial=0)
    assert ts.read(URL) == Accepted(6, digest(6))


@contextlib.contextmanager
def held_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_accept_waits_for_the_lock_and_gives_up_with_a_state_error(
    ts: TrustState, monkeypatch: pytest.MonkeyPatch
) -> None:
    ts.accept(URL, 5, digest(5), min_serial=0)
    before = snapshot(ts.directory)
    monkeypatch.setattr(state, "LOCK_TIMEOUT_SECONDS", 0.2)
    with held_lock(ts.directory):
        start = time.monotonic()
        with pytest.raises(StateError, match="lock") as info:
            ts.accept(URL, 6, digest(6), min_serial=0)
        assert time.monotonic() - start >= 0.2
        assert str(ts.directory / "lock") in str(info.value)
        # Reading needs no lock.
        assert ts.read(URL) == Accepted(5, digest(5))
    assert snapshot(ts.directory) == before
    ts.accept(URL, 6, digest(6), min_serial=0)


# -- concurrency ----------------------------------------------------------------------------

_CHILD_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys, time
    from pathlib import Path
    from safepip.state import TrustState
    from safepip.errors import FreshnessError
    directory, url, mode, serial, go = sys.argv[1:]
    # Slow every fsync down so that, without the lock, reads and writes of the
    # processes would interleave and a lower serial could be written last.
    real_fsync = os.fsync
    def slow_fsync(fd):
        time.sleep(0.02)
        real_fsync(fd)
    os.fsync = slow_fsync
    while not os.path.exists(go):
        time.sleep(0.001)
    sha = hashlib.sha256(f"list body {serial}".encode()).hexdigest()
    ts = TrustState(Path(directory))
    try:
        if mode == "run":  # what a safepip run does: judge read-only, work, then commit
            ts.check(url, int(serial), sha, min_serial=0)
            time.sleep(0.01)
            stored = ts.accept(url, int(serial), sha, min_serial=0, keep_newer=True)
        else:
            stored = ts.accept(url, int(serial), sha, min_serial=0)
    except FreshnessError:
        print("refused")
    else:
        print("accepted" if stored else "kept newer")
    """
)


def run_concurrently(
    directory: Path, serials: list[int], go: Path, mode: str = "accept"
) -> dict[int, str]:
    procs = {
        serial: subprocess.Popen(
            [sys.executable, "-c", _CHILD_SCRIPT, str(directory), URL, mode, str(serial), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for serial in serials
    }
    time.sleep(0.5)  # let every child reach its wait loop
    go.write_bytes(b"")
    results = {}
    for serial, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results[serial] = out.strip()
    return results


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_accepts_never_lower_the_stored_serial(tmp_path: Path, round_: int) -> None:
    ts = TrustState(tmp_path / "safepip")
    serials = list(range(10, 22))
    results = run_concurrently(ts.directory, serials, tmp_path / "go")
    accepted = [s for s, r in results.items() if r == "accepted"]
    assert set(results.values()) <= {"accepted", "refused"}
    # The highest serial can never be refused, and nothing may be stored below it.
    assert max(serials) in accepted
    assert ts.read(URL) == Accepted(max(accepted), digest(max(accepted)))
    assert sorted(p.name for p in ts.directory.iterdir()) == sorted([record_path(ts).name, "lock"])


def test_concurrent_lower_serials_are_all_refused(tmp_path: Path) -> None:
    ts = TrustState(tmp_path / "safepip")
    ts.accept(URL, 50, digest(50), min_serial=0)
    before = snapshot(ts.directory)
    results = run_concurrently(ts.directory, list(range(40, 50)), tmp_path / "go")
    assert set(results.values()) == {"refused"}
    assert snapshot(ts.directory) == before


def test_concurrent_runs_that_judge_then_commit_never_lower_the_stored_serial(
    tmp_path: Path,
) -> None:
    ts = TrustState(tmp_path / "safepip")
    ts.accept(URL, 10, digest(10), min_serial=0)
    serials = list(range(5, 21))
    results = run_concurrently(ts.directory, serials, tmp_path / "go", mode="run")
    assert set(results.values()) <= {"accepted", "refused", "kept newer"}
    assert all(results[s] == "refused" for s in serials if s < 10)
    assert results[max(serials)] == "accepted"
    assert ts.read(URL) == Accepted(max(serials), digest(max(serials)))
