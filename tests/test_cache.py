"""The wheel cache: content-addressed, re-hashed on every read, private, bounded; end to end."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from safepip._cli import main
from safepip.cache import ENTRY_HEADROOM, NewEntry, WheelCache, configured
from safepip.errors import FetchError, UsageError
from tests.keys import Keyring
from tests.site import make_site, published_and_served
from tests.wheels import make_wheel


def _wheel(tmp_path: Path, data: bytes = b"wheel bytes") -> tuple[Path, str]:
    path = tmp_path / "w.whl"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_store_then_copy_rehashes(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    source, sha = _wheel(tmp_path)
    cache.store(source, sha)
    entry = cache.path(sha)
    assert entry == tmp_path / "c" / "wheels" / sha[:2] / sha
    for folder in (tmp_path / "c", tmp_path / "c" / "wheels", entry.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    dest = tmp_path / "dest.whl"
    assert cache.copy_to(sha, dest)
    assert dest.read_bytes() == b"wheel bytes"
    assert not list(entry.parent.glob(".tmp-*"))


@pytest.mark.parametrize("bad", [b"poisoned bytes", b"wheel by"])  # other bytes, truncated
def test_a_poisoned_entry_is_removed_never_handed_out(tmp_path: Path, bad: bytes) -> None:
    cache = WheelCache(tmp_path / "c")
    source, sha = _wheel(tmp_path)
    cache.store(source, sha)
    cache.path(sha).write_bytes(bad)
    dest = tmp_path / "dest.whl"
    assert not cache.copy_to(sha, dest)
    assert not dest.exists(), "no byte of a poisoned entry may reach the staging folder"
    assert not cache.path(sha).exists()
    cache.store(source, sha)
    cache.path(sha).write_bytes(bad)
    with cache.open_verified(sha) as handle:
        assert handle is None
    assert not cache.path(sha).exists()


def test_a_store_with_other_bytes_keeps_nothing(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    source, _ = _wheel(tmp_path)
    cache.store(source, "0" * 64)
    assert not cache.has("0" * 64)


def test_an_entry_is_kept_only_when_the_callers_digest_is_its_name(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    data = b"streamed wheel bytes"
    sha = hashlib.sha256(data).hexdigest()
    with cache.entry(sha) as entry:
        assert entry is not None
        entry.write(data[:7])
        entry.write(data[7:])
        assert not cache.has(sha), "nothing is an entry before the commit"
        assert entry.commit(sha)
    assert cache.path(sha).read_bytes() == data
    with cache.entry(sha) as again:
        assert again is None, "an entry already there is left alone"
    other = hashlib.sha256(b"other").hexdigest()
    with cache.entry(other) as wrong:
        assert wrong is not None
        wrong.write(b"not the bytes named")
        assert not wrong.commit(hashlib.sha256(b"not the bytes named").hexdigest())
    with cache.entry(other) as abandoned:  # a download that failed half-way: no commit
        assert abandoned is not None
        abandoned.write(b"half")
    assert not cache.has(other)
    assert not list(cache.path(other).parent.glob(".tmp-*"))
    assert not list(cache.path(sha).parent.glob(".tmp-*"))


def test_an_entry_that_cannot_be_written_is_dropped_without_failing_the_caller(
    tmp_path: Path,
) -> None:
    # /dev/full fails every write with ENOSPC: a full cache disk, even for root.
    data = b"x" * (1 << 16)
    sha = hashlib.sha256(data).hexdigest()
    final = tmp_path / "final"
    with Path("/dev/full").open("wb", buffering=0) as full:
        entry = NewEntry(full, tmp_path / "tmp", final, sha)
        entry.write(data)
        entry.write(data)
        assert not entry.commit(sha)
    assert not final.exists()


class _FailsOnce:
    """A real file whose second write fails, as a disk that fills up for a moment."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 2:
            raise OSError(28, "No space left on device")
        return self._file.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


def test_an_entry_whose_write_failed_once_is_never_committed(tmp_path: Path) -> None:
    data = [b"first chunk ", b"lost chunk ", b"third chunk"]
    sha = hashlib.sha256(b"".join(data)).hexdigest()
    temporary, final = tmp_path / ".tmp-x", tmp_path / "final"
    file = _FailsOnce(temporary)
    entry = NewEntry(file, temporary, final, sha)  # type: ignore[arg-type]
    for chunk in data:
        entry.write(chunk)  # the failure is the entry's own: the download goes on
    assert file.writes == 2, "nothing is written after a failed write"
    assert not entry.commit(sha)
    assert not final.exists() and not temporary.exists()


def test_an_entry_gives_way_to_the_free_space_reserve_and_to_the_cap(tmp_path: Path) -> None:
    chunk = os.urandom(1024 * 1024)
    sha = hashlib.sha256(chunk * 4).hexdigest()
    cache = WheelCache(tmp_path / "c")
    info = os.statvfs(tmp_path)
    # Room for about two chunks above the reserve and the headroom entries keep.
    reserve = info.f_bavail * info.f_frsize - ENTRY_HEADROOM - 2 * len(chunk) - 4096
    with cache.entry(sha, reserve=reserve) as entry:
        assert entry is not None
        for _ in range(4):
            entry.write(chunk)
        assert not entry.commit(sha)
    assert not cache.has(sha)
    assert not list((tmp_path / "c" / "wheels").glob("*/.tmp-*")), "what it took is freed"
    small = WheelCache(tmp_path / "small", max_bytes=3 * len(chunk))
    with small.entry(sha) as entry:
        assert entry is not None
        for _ in range(4):
            entry.write(chunk)
        assert not entry.commit(sha), "an entry larger than the whole cache is not kept"
    assert not small.has(sha)
    with small.entry(hashlib.sha256(chunk).hexdigest()) as entry:
        assert entry is not None
        entry.write(chunk)
        assert entry.commit(hashlib.sha256(chunk).hexdigest())


def test_prune_removes_temporary_files_killed_runs_left_not_live_ones(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    source, sha = _wheel(tmp_path)
    cache.store(source, sha, prune=False)
    assert cache.has(sha)
    folder = cache.path(sha).parent
    old, recent, held = folder / ".tmp-old", folder / ".tmp-recent", folder / ".tmp-held"
    for path in (old, recent, held):
        path.write_bytes(b"x" * 1000)
    (folder / ".tmp-folder").mkdir()  # not a file: left alone, and no reason to stop pruning
    two_hours_ago = time.time() - 7200
    for path in (old, held, folder / ".tmp-folder"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    with held.open("ab") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)  # as a live download holds its copy
        pruned = cache.prune(max_bytes=5)  # below the one entry's 11 bytes
    assert not old.exists()
    assert recent.exists() and held.exists() and (folder / ".tmp-folder").is_dir()
    assert (pruned.removed, pruned.kept) == (1, 0), "the entries were still pruned to the cap"
    assert not cache.has(sha)


def test_prune_leaves_a_copy_being_written_that_looks_abandoned(tmp_path: Path) -> None:
    """A download may get nothing for an hour (a --timeout of days): its copy is locked."""
    cache = WheelCache(tmp_path / "c")
    data = b"slowly arriving wheel"
    sha = hashlib.sha256(data).hexdigest()
    with cache.entry(sha) as entry:
        assert entry is not None
        entry.write(data[:5])
        (temporary,) = cache.path(sha).parent.glob(".tmp-*")
        two_hours_ago = time.time() - 7200
        os.utime(temporary, (two_hours_ago, two_hours_ago))
        cache.prune()
        assert temporary.exists()
        entry.write(data[5:])
        assert entry.commit(sha)
    assert cache.path(sha).read_bytes() == data


def test_make_room_gives_back_what_this_run_wrote_and_nothing_else(tmp_path: Path) -> None:
    source, earlier = _wheel(tmp_path, b"an earlier run's wheel")
    WheelCache(tmp_path / "c").store(source, earlier)
    cache = WheelCache(tmp_path / "c")
    source, mine = _wheel(tmp_path, b"this run's wheel")
    cache.store(source, mine)
    data = b"being written"
    with cache.entry(hashlib.sha256(data).hexdigest()) as writing:
        assert writing is not None
        writing.write(data)
        assert cache.make_room()
        writing.write(data)  # the download goes on; its copy is gone
        assert not writing.commit(hashlib.sha256(data).hexdigest())
    assert cache.has(earlier) and not cache.has(mine)
    assert not list((tmp_path / "c" / "wheels").glob("*/.tmp-*"))
    assert not cache.make_room(), "nothing left to give back"


def test_symlinks_are_refused(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    source, sha = _wheel(tmp_path)
    cache.store(source, sha)
    entry = cache.path(sha)
    real = tmp_path / "elsewhere"
    entry.rename(real)
    entry.symlink_to(real)
    with pytest.raises(FetchError, match="cannot open it"):
        cache.copy_to(sha, tmp_path / "dest.whl")
    entry.unlink()
    wheels = tmp_path / "c" / "wheels"
    wheels.rename(tmp_path / "moved")
    wheels.symlink_to(tmp_path / "moved")
    with pytest.raises(FetchError, match="not a real directory"):
        cache.copy_to(sha, tmp_path / "dest.whl")
    with pytest.raises(FetchError, match="not a real directory"):
        cache.store(source, sha)


def test_a_group_writable_cache_is_refused(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c")
    source, sha = _wheel(tmp_path)
    cache.store(source, sha)
    (tmp_path / "c" / "wheels").chmod(0o770)
    with pytest.raises(FetchError, match="writable by group or others"):
        cache.copy_to(sha, tmp_path / "dest.whl")


def test_prune_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c", max_bytes=10**9)
    shas = []
    for i in range(3):
        source = tmp_path / f"{i}.whl"
        source.write_bytes(bytes([i]) * 1000)
        sha = hashlib.sha256(source.read_bytes()).hexdigest()
        cache.store(source, sha)
        os.utime(cache.path(sha), (1000 + i, 1000 + i))
        shas.append(sha)
    assert cache.copy_to(shas[0], tmp_path / "used.whl")  # the oldest, now the newest
    pruned = cache.prune(2000)
    assert (pruned.removed, pruned.kept, pruned.size) == (1, 2, 2000)
    assert not cache.has(shas[1])
    assert cache.has(shas[0]) and cache.has(shas[2])


def test_a_store_beyond_the_cap_prunes(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c", max_bytes=1500)
    for i in range(3):
        source = tmp_path / f"{i}.whl"
        source.write_bytes(bytes([i]) * 1000)
        cache.store(source, hashlib.sha256(source.read_bytes()).hexdigest())
    assert len(list((tmp_path / "c" / "wheels").glob("*/*"))) == 1


def test_a_batch_of_stores_is_pruned_once_by_the_caller(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "c", max_bytes=1500)
    for i in range(3):
        source = tmp_path / f"{i}.whl"
        source.write_bytes(bytes([i]) * 1000)
        cache.store(source, hashlib.sha256(source.read_bytes()).hexdigest(), prune=False)
    assert len(list((tmp_path / "c" / "wheels").glob("*/*"))) == 3
    assert cache.prune().size == 1000


def test_configured_honours_no_cache_dir_and_the_cap(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    assert configured(environ, disabled=True, max_mb=None) is None
    assert configured(environ, disabled=False, max_mb=0) is None
    cache = configured({**environ, "SAFEPIP_CACHE_MAX_MB": "1"}, disabled=False, max_mb=None)
    assert cache is not None and cache.max_bytes == 1024 * 1024
    with pytest.raises(UsageError, match="SAFEPIP_CACHE_MAX_MB"):
        configured({**environ, "SAFEPIP_CACHE_MAX_MB": "lots"}, disabled=False, max_mb=None)


@pytest.mark.e2e
@pytest.mark.parametrize("locked", [True, False], ids=["locked", "resolver"])
def test_a_poisoned_cache_is_downloaded_again_never_installed(
    tmp_path: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    locked: bool,
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = make_site(tmp_path, keyring, {"alpha": ("1.0", ())})
    with published_and_served(site, monkeypatch, "--serial", "1") as (server, client, venv):
        wheel = site.out / "alpha-1.0-py3-none-any.whl"
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        spec = ["-r", str(_lock(client, sha))] if locked else ["alpha"]
        python = str(venv / "bin" / "python")
        assert main(["install", "--python", python, *spec]) == 0
        entry = tmp_path / "cache" / "safepip" / "wheels" / sha[:2] / sha
        assert entry.read_bytes() == wheel.read_bytes()
        downloads = server.requests.count("/alpha-1.0-py3-none-any.whl")
        assert downloads == 1

        # Warm: no download at all, not even the project page.
        assert main(["install", "--python", python, *spec]) == 0
        assert server.requests.count("/alpha-1.0-py3-none-any.whl") == 1
        assert server.requests.count("/simple/alpha/") == 1

        # Poisoned: another wheel's bytes under alpha's hash (a valid zip, importable).
        evil = make_wheel(
            tmp_path / "evil", "alpha", "1.0", modules={"alpha/__init__.py": "EVIL = 1\n"}
        )
        entry.write_bytes(evil.read_bytes())
        fresh = tmp_path / "fresh"
        subprocess.run(["python3", "-m", "venv", "--without-pip", str(fresh)], check=True)
        capsys.readouterr()
        code = main(["install", "--python", str(fresh / "bin" / "python"), *spec])
        assert code == 0, capsys.readouterr().err
        assert server.requests.count("/alpha-1.0-py3-none-any.whl") == 2, "downloaded again"
        installed = next(fresh.glob("lib/python*/site-packages/alpha/__init__.py"))
        assert installed.read_text() == '__version__ = "1.0"\n'
        assert entry.read_bytes() == wheel.read_bytes(), "the cache holds the good bytes again"

        # --no-cache-dir: downloaded, whatever the cache holds.
        assert main(["install", "--python", python, "--no-cache-dir", *spec]) == 0
        assert server.requests.count("/alpha-1.0-py3-none-any.whl") == 3


def _lock(client: Path, sha: str) -> Path:
    path = client / "locked.txt"
    path.write_text(f"alpha==1.0 --hash=sha256:{sha}\n")
    return path
