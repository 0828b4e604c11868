"""safepip.vet's transport steps against real servers on 127.0.0.1: locate and download_all.

A hostile index (THREATS.md class E) decides what its project pages say and what its files
hold; whatever it does, these steps end in a verdict or a FetchError, never an internal error,
and leave no file behind.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from safepip import sources, vet
from safepip.cache import WheelCache
from safepip.errors import FetchError
from safepip.hashlist import Entry
from safepip.policy import Rejection
from tests.server import LoopbackServer
from tests.wheels import make_wheel, sha256_of

WHEEL = "gamma-0.1-py3-none-any.whl"
BODY = b"PK\x05\x06" + b"\x00" * 18  # the bytes do not matter here, only their hash
ENTRY = Entry(WHEEL, hashlib.sha256(BODY).hexdigest(), "gamma", "0.1", "wheel", 5)
PAGE = f'<a href="../../{WHEEL}#sha256={ENTRY.sha256}">{WHEEL}</a>\n'


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before]
    assert not left, f"threads left running: {left}"


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "simple" / "gamma").mkdir(parents=True)
    (root / "simple" / "gamma" / "index.html").write_text(PAGE)
    (root / WHEEL).write_bytes(BODY)
    return root


@pytest.fixture
def server(served: Path) -> Iterator[LoopbackServer]:
    with LoopbackServer(served) as srv:
        yield srv


def links_of(index_url: str, log: list[str] | None = None) -> sources.Links:
    return sources.Links(
        sources.ordered(index_url),
        base_dir=Path.cwd(),
        cafile=None,
        proxies=None,
        timeout=lambda: 60.0,
        log=log.append if log is not None else None,
    )


def locate(index_url: str, log: list[str] | None = None) -> dict[str, str]:
    return vet.locate([ENTRY], links_of(index_url, log))


# --- locate: the project pages ------------------------------------------------------------------


def test_locate_reads_a_file_index_whose_pages_are_folders(served: Path) -> None:
    index_url = (served / "simple").as_uri() + "/"
    assert locate(index_url) == {WHEEL: (served / WHEEL).as_uri()}


def test_locate_refuses_a_file_index_folder_without_index_html(served: Path) -> None:
    (served / "simple" / "gamma" / "index.html").unlink()
    with pytest.raises(FetchError, match=r"index\.html: cannot open"):
        locate((served / "simple").as_uri() + "/")


def test_locate_skips_a_link_that_is_not_a_url_and_notes_it(server: LoopbackServer) -> None:
    server.serve_bytes("/simple/gamma/", (PAGE + '<a href="http://[oops/x.tar.gz">x</a>').encode())
    log: list[str] = []
    assert locate(server.url_for("simple/"), log) == {WHEEL: server.url_for(WHEEL)}
    assert log == [
        f"{server.url_for('simple/gamma/')}: skipped a link that is not a URL: "
        "'http://[oops/x.tar.gz'"
    ]


def test_locate_ignores_bad_links_of_files_not_on_the_list(server: LoopbackServer) -> None:
    page = '<a href="file:///etc/passwd">passwd</a><a href="http://example.org/x.whl">x</a>'
    server.serve_bytes("/simple/gamma/", (page + PAGE).encode())
    assert locate(server.url_for("simple/")) == {WHEEL: server.url_for(WHEEL)}


@pytest.mark.parametrize(
    "href",
    [f"file:///etc/{WHEEL}", f"http://example.org/{WHEEL}", f"ftp://127.0.0.1/{WHEEL}"],
)
def test_locate_refuses_a_listed_file_linked_to_another_scheme_or_host(
    server: LoopbackServer, href: str
) -> None:
    server.serve_bytes("/simple/gamma/", f'<a href="{href}">{WHEEL}</a>'.encode())
    with pytest.raises(FetchError) as info:
        locate(server.url_for("simple/"))
    assert href in str(info.value) and info.value.exit_code == 3


def test_locate_refuses_a_page_html_parser_gives_up_on(server: LoopbackServer) -> None:
    server.serve_bytes("/simple/gamma/", (PAGE + "<![xyz]>").encode())
    with pytest.raises(FetchError, match="not a readable project page"):
        locate(server.url_for("simple/"))


def test_locate_refuses_an_endless_page_at_the_cap(server: LoopbackServer) -> None:
    server.endless("/simple/gamma/")
    with pytest.raises(FetchError, match="more than the cap"):
        locate(server.url_for("simple/"))


# --- download_all -------------------------------------------------------------------------------


def artifact(url: str, filename: str = WHEEL, sha256: str = ENTRY.sha256) -> vet.Artifact:
    return vet.Artifact("gamma", "0.1", filename, sha256, url)


def test_download_all_stops_an_endless_body_at_the_free_space_reserve(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.endless("/" + WHEEL)
    folder = tmp_path / "wheels"
    folder.mkdir()
    info = os.statvfs(folder)
    reserve = info.f_bavail * info.f_frsize - (16 << 20)  # lets the endless body write 16 MiB
    start = time.monotonic()
    with pytest.raises(FetchError) as error:
        vet.download_all(
            [artifact(server.url_for(WHEEL))],
            folder,
            cafile=None,
            timeout=120,
            advance=lambda n: None,
            min_free_bytes=reserve,
        )
    assert "free" in str(error.value) and time.monotonic() - start < 60
    assert list(folder.iterdir()) == []


def test_one_failed_download_cancels_the_others_and_removes_every_file(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.trickle("/slow-1.0-py3-none-any.whl", b"x" * 1000, interval=0.05)  # ~50 s
    folder = tmp_path / "wheels"
    folder.mkdir()
    artifacts = [
        artifact(server.url_for(WHEEL)),
        artifact(server.url_for("slow-1.0-py3-none-any.whl"), "slow-1.0-py3-none-any.whl"),
        artifact(server.url_for("missing-1.0-py3-none-any.whl"), "missing-1.0-py3-none-any.whl"),
    ]
    start = time.monotonic()
    with pytest.raises(FetchError, match="404"):
        vet.download_all(artifacts, folder, cafile=None, timeout=120, advance=lambda n: None)
    assert time.monotonic() - start < 3
    assert list(folder.iterdir()) == []


def test_download_all_looks_up_a_wheel_without_url_in_the_worker_that_downloads_it(
    server: LoopbackServer, tmp_path: Path
) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    urls: dict[str, str] = {}
    problems = vet.download_all(
        [artifact("")],
        folder,
        cafile=None,
        timeout=120,
        advance=lambda n: None,
        links=links_of(server.url + "simple/"),
        urls=urls,
    )
    assert problems == []
    assert urls == {WHEEL: server.url_for(WHEEL)}
    assert (folder / WHEEL).read_bytes() == BODY
    # A file the index does not offer is refused as locate refuses it, and nothing stays.
    missing = artifact("", "missing-1.0-py3-none-any.whl")
    with pytest.raises(FetchError, match=r"does not offer missing-1\.0-py3-none-any\.whl"):
        vet.download_all(
            [missing],
            folder,
            cafile=None,
            timeout=120,
            advance=lambda n: None,
            links=links_of(server.url + "simple/"),
        )
    assert list(folder.iterdir()) == []


# --- METADATA read by the worker that fetched the wheel ------------------------------------------


def test_download_all_reads_the_metadata_of_each_wheel_with_the_list_hash(
    served: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    good = make_wheel(served, "alpha", "1.0")
    evil = make_wheel(served, "beta", "2.0", metadata_name="evil")
    folder = tmp_path / "wheels"
    folder.mkdir()
    reads: vet.Reads = {}
    problems = vet.download_all(
        [
            vet.Artifact("alpha", "1.0", good.name, sha256_of(good), server.url_for(good.name)),
            vet.Artifact("beta", "2.0", evil.name, sha256_of(evil), server.url_for(evil.name)),
            artifact(server.url_for(WHEEL), sha256="0" * 64),  # other bytes: never read
        ],
        folder,
        cafile=None,
        timeout=120,
        advance=lambda n: None,
        reads=reads,
    )
    assert [p.code for p in problems] == ["hash-mismatch"]
    assert sorted(reads) == [good.name, evil.name]
    assert not isinstance(reads[good.name], Rejection) and reads[good.name].name == "alpha"
    refused = reads[evil.name]
    assert isinstance(refused, Rejection) and refused.code == "metadata-mismatch"
    assert refused.subject == evil.name and "METADATA says evil" in refused.message


def test_download_all_caches_exactly_the_bytes_it_hashed_and_nothing_it_refused(
    served: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    # Over 1 MiB of incompressible data: the wheel streams in several chunks.
    noise = os.urandom(900 * 1024).hex()
    good = make_wheel(served, "alpha", "1.0", modules={"m.py": f"x = {noise!r}\n"})
    assert good.stat().st_size > 1024 * 1024
    cache = WheelCache(tmp_path / "cache")
    folder = tmp_path / "wheels"
    folder.mkdir()
    problems = vet.download_all(
        [
            vet.Artifact("alpha", "1.0", good.name, sha256_of(good), server.url_for(good.name)),
            artifact(server.url_for(WHEEL), sha256="0" * 64),  # the index serves other bytes
        ],
        folder,
        cafile=None,
        timeout=120,
        advance=lambda n: None,
        cache=cache,
    )
    assert [p.code for p in problems] == ["hash-mismatch"]
    entries = sorted((tmp_path / "cache" / "wheels").glob("*/*"))
    assert entries == [cache.path(sha256_of(good))], "one entry, no temporary file"
    assert entries[0].read_bytes() == good.read_bytes()
    # A download of a later run that fails half-way (the body stops at the free-space reserve)
    # leaves no entry and no temporary file in the cache either, and takes nothing it did not
    # write.
    cache = WheelCache(tmp_path / "cache")
    server.endless("/endless-1.0-py3-none-any.whl")
    info = os.statvfs(folder)
    with pytest.raises(FetchError, match="free"):
        vet.download_all(
            [
                artifact(
                    server.url_for("endless-1.0-py3-none-any.whl"), "endless-1.0-py3-none-any.whl"
                )
            ],
            folder,
            cafile=None,
            timeout=120,
            advance=lambda n: None,
            cache=cache,
            min_free_bytes=info.f_bavail * info.f_frsize - (4 << 20),
        )
    assert sorted((tmp_path / "cache" / "wheels").glob("*/*")) == entries


def test_a_cache_on_the_download_file_system_never_makes_a_download_fail(
    served: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    """Room for the wheel, not for the wheel and its cache copy: the copy gives way."""
    body = os.urandom(16 << 20)
    name = "big-1.0-py3-none-any.whl"
    (served / name).write_bytes(body)
    big = vet.Artifact("big", "1.0", name, hashlib.sha256(body).hexdigest(), server.url_for(name))
    cache = WheelCache(tmp_path / "cache")
    folder = tmp_path / "wheels"
    folder.mkdir()
    info = os.statvfs(folder)
    reserve = info.f_bavail * info.f_frsize - (24 << 20)
    problems = vet.download_all(
        [big],
        folder,
        cafile=None,
        timeout=120,
        advance=lambda n: None,
        cache=cache,
        min_free_bytes=reserve,
    )
    assert problems == []
    assert (folder / name).read_bytes() == body
    assert not cache.has(big.sha256), "the copy gave way"
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


class _StallingIndex(BaseHTTPRequestHandler):
    """Serves ``/slow.whl`` (its first 12 MiB, then the rest once ``go`` is set) and
    ``/fast.whl`` (after ``delay`` seconds, whole)."""

    slow = b""
    fast = b""
    delay = 0.0
    go = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.fast if self.path == "/fast.whl" else self.slow
        if self.path == "/fast.whl":
            time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: 12 << 20])
        self.wfile.flush()
        if self.path != "/fast.whl":
            self.go.wait(30)
        self.wfile.write(body[12 << 20 :])


@pytest.mark.parametrize("stalled", [False, True], ids=["copy kept", "copy being written"])
def test_a_cache_copy_never_makes_another_download_of_the_run_fail(
    tmp_path: Path, stalled: bool
) -> None:
    """The room a copy took is given back before a sibling download would stop at its reserve:
    whether the copy was already kept (a small wheel done first) or is still being written
    (a download stalled half-way). Both runs succeed without a cache; so must they with one."""
    _StallingIndex.slow = os.urandom((14 if stalled else 8) << 20)
    _StallingIndex.fast = os.urandom(32 << 20)
    _StallingIndex.delay = 0.3 if stalled else 1.0
    _StallingIndex.go.clear()
    index = ThreadingHTTPServer(("127.0.0.1", 0), _StallingIndex)
    threading.Thread(target=index.serve_forever, daemon=True).start()
    if stalled:
        threading.Timer(3, _StallingIndex.go.set).start()
    else:
        _StallingIndex.go.set()
    url = f"http://127.0.0.1:{index.server_address[1]}/"
    wheels = [
        vet.Artifact(n, "1.0", f"{n}-1.0-py3-none-any.whl", hashlib.sha256(b).hexdigest(), url + f)
        for n, b, f in (
            ("slow", _StallingIndex.slow, "slow.whl"),
            ("fast", _StallingIndex.fast, "fast.whl"),
        )
    ]
    cache = WheelCache(tmp_path / "cache")
    folder = tmp_path / "wheels"
    folder.mkdir()
    info = os.statvfs(folder)
    room = (len(_StallingIndex.slow) + len(_StallingIndex.fast)) + (4 << 20)
    try:
        problems = vet.download_all(
            wheels,
            folder,
            cafile=None,
            timeout=120,
            advance=lambda n: None,
            cache=cache,
            min_free_bytes=info.f_bavail * info.f_frsize - room,
        )
    finally:
        _StallingIndex.go.set()
        index.shutdown()
        index.server_close()
    assert problems == []
    assert (folder / "fast-1.0-py3-none-any.whl").read_bytes() == _StallingIndex.fast
    assert (folder / "slow-1.0-py3-none-any.whl").read_bytes() == _StallingIndex.slow
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_from_cache_copies_in_parallel_reads_each_copy_and_skips_a_poisoned_entry(
    tmp_path: Path,
) -> None:
    cache = WheelCache(tmp_path / "cache")
    made = [make_wheel(tmp_path / "made", f"p{n}", "1.0") for n in range(12)]
    evil = make_wheel(tmp_path / "made", "evil", "1.0", metadata_name="other")
    for wheel in [*made, evil]:
        cache.store(wheel, sha256_of(wheel))
    poisoned = made[3]
    cache.path(sha256_of(poisoned)).write_bytes(b"not the listed bytes")
    missing = Entry("absent-1.0-py3-none-any.whl", "1" * 64, "absent", "1.0", "wheel", 1)
    entries = [
        Entry(w.name, sha256_of(w), w.name.split("-")[0], "1.0", "wheel", n)
        for n, w in enumerate([*made, evil])
    ]
    reads: vet.Reads = {}
    copied = vet.from_cache([*entries, missing], tmp_path / "wheels", cache, reads=reads)
    expected = {w.name for w in [*made, evil]} - {poisoned.name}
    assert set(copied) == expected == set(reads)
    assert copied[made[0].name] == cache.path(sha256_of(made[0])).as_uri()
    assert {p.name for p in (tmp_path / "wheels").iterdir()} == expected
    assert not cache.has(sha256_of(poisoned)), "a poisoned entry is removed"
    assert all(not isinstance(reads[w.name], Rejection) for w in made if w != poisoned)
    refused = reads[evil.name]
    assert isinstance(refused, Rejection) and refused.code == "metadata-mismatch"


def test_download_all_keeps_each_wheel_and_prunes_the_cache_once_to_its_cap(
    served: Path, server: LoopbackServer, tmp_path: Path
) -> None:
    made = [make_wheel(served, f"p{n}", "1.0", modules={"m.py": "x = 1\n" * 200}) for n in range(4)]
    biggest = max(w.stat().st_size for w in made)
    cache = WheelCache(tmp_path / "cache", max_bytes=biggest)
    artifacts = [
        vet.Artifact(w.name.split("-")[0], "1.0", w.name, sha256_of(w), server.url_for(w.name))
        for w in made
    ]
    folder = tmp_path / "wheels"
    folder.mkdir()
    problems = vet.download_all(
        artifacts, folder, cafile=None, timeout=120, advance=lambda n: None, cache=cache
    )
    assert problems == []
    assert sorted(p.name for p in folder.iterdir()) == sorted(w.name for w in made)
    kept = [w for w in made if cache.has(sha256_of(w))]
    assert len(kept) == 1, "within the cap once the downloads are done"
