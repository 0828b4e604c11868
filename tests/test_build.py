"""``safepip build``: hashed inputs, a build environment per sdist, offline, reproducible."""

from __future__ import annotations

import json
import shutil
import socket
import zipfile
from pathlib import Path

import pytest

from safepip import sandbox
from safepip._cli import main
from tests.keys import Keyring
from tests.sdists import flit_core_wheel, flit_sdist, make_backend, pinned, toy_sdist
from tests.site import Site
from tests.wheels import make_marker_sdist, make_wheel, sha256_of


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--no-config", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def facts(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as archive:
        found: dict[str, object] = json.loads(archive.read("toy_facts.json"))
    return found


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def build(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    files: Path,
    sdists: list[Path],
    pool: list[Path],
    *extra: str,
) -> tuple[int, str, str, Path]:
    out = tmp_path / "out"
    code, stdout, stderr = run(
        capsys,
        "build",
        "-r",
        str(write(tmp_path / "sdists.txt", pinned(sdists))),
        "--build-requirements",
        str(write(tmp_path / "pool.txt", pinned(pool))),
        "--find-links",
        str(files),
        "--out",
        str(out),
        *extra,
    )
    return code, stdout, stderr, out


def test_flit_sdist_builds_identically_twice(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = flit_sdist(files, "demo")
    flit = flit_core_wheel(files)
    code, stdout, stderr, out = build(capsys, tmp_path, files, [sdist], [flit], "--check")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-1.0-py2.py3-none-any.whl",
        "demo-1.0.tar.gz",
    ]
    wheel = out / "demo-1.0-py2.py3-none-any.whl"
    assert sha256_of(wheel) in stdout
    assert "flit_core.buildapi" in stdout and "yes" in stdout
    assert "identical twice" in stderr
    assert sha256_of(out / "demo-1.0.tar.gz") == sha256_of(sdist)


def test_environment_holds_only_the_pool_and_builds_are_offline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    # A port that answers on this machine: only a network namespace (or nothing) stops it.
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        make_wheel(files, "helper", "1.0")
        sdist = toy_sdist(files, "alpha", dynamic="helper==1.0", probe=port)
        backend = make_backend(files)
        pool = [backend, files / "helper-1.0-py3-none-any.whl"]
        code, _, stderr, out = build(capsys, tmp_path, files, [sdist], pool)
    finally:
        listener.close()
    assert code == 0, stderr
    found = facts(out / "alpha-1.0-py3-none-any.whl")
    # No pip, no setuptools (ensurepip's), only the pool's wheels the sdist asked for.
    assert found["dists"] == ["helper", "toybackend"]
    assert found["epoch"] == "1700000000"
    assert found["umask"] == "0o22"
    assert found["http"] == "blocked"  # the proxy variables point at a closed port
    if sandbox.isolation().offline:
        assert found["tcp"] == "blocked"
        assert "network namespace" in stderr
    else:  # pragma: no cover - a machine without namespaces
        assert "no network namespace" in stderr


def test_each_sdist_gets_its_own_environment_from_conflicting_pool_versions(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    old = make_backend(files / "v1", "1.0")
    new = make_backend(files / "v2", "2.0")
    for wheel in (old, new):
        wheel.rename(files / wheel.name)
    first = toy_sdist(files, "alpha", requires="toybackend>=1,<2")
    second = toy_sdist(files, "beta", requires="toybackend>=2,<3")
    pool = [files / old.name, files / new.name]
    code, _, stderr, out = build(capsys, tmp_path, files, [first, second], pool)
    assert code == 0, stderr
    assert facts(out / "alpha-1.0-py3-none-any.whl")["backend"] == "1.0"
    assert facts(out / "beta-1.0-py3-none-any.whl")["backend"] == "2.0"
    assert "[1/2] alpha-1.0.tar.gz" in stderr and "[2/2] beta-1.0.tar.gz" in stderr


def test_world_writable_sdist_files_are_extracted_without_shared_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = toy_sdist(files, "alpha", mode=0o666)
    code, _, stderr, _ = build(capsys, tmp_path, files, [sdist], [make_backend(files)], "--check")
    assert code == 0, stderr


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@needs_gcc
def test_c_extension_rebuilds_identically_with_the_prefix_map(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = toy_sdist(files, "alpha", cext="mapped")
    code, _, stderr, out = build(capsys, tmp_path, files, [sdist], [make_backend(files)], "--check")
    assert code == 0, stderr
    with zipfile.ZipFile(out / "alpha-1.0-py3-none-any.whl") as archive:
        shared = archive.read("alpha/ext.so")
    assert str(tmp_path).encode() not in shared
    assert sandbox.NEUTRAL_ROOT.encode() in shared


@needs_gcc
def test_c_extension_without_the_prefix_map_differs_and_the_build_id_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = toy_sdist(files, "alpha", cext="unmapped")
    code, _, stderr, out = build(capsys, tmp_path, files, [sdist], [make_backend(files)], "--check")
    assert code == 1
    assert "alpha/ext.so: contents differ" in stderr
    assert "ELF build-id" in stderr and "(different)" in stderr
    assert not out.exists()


def test_without_a_namespace_the_proxies_still_point_at_a_closed_port(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sandbox, "isolation", lambda: sandbox.Isolation((), "none (test)"))
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        sdist = toy_sdist(files, "alpha", probe=listener.getsockname()[1])
        code, _, stderr, out = build(capsys, tmp_path, files, [sdist], [make_backend(files)])
    finally:
        listener.close()
    assert code == 0, stderr
    assert "builds run offline: none (test)" in stderr
    found = facts(out / "alpha-1.0-py3-none-any.whl")
    assert found["http"] == "blocked"
    assert found["tcp"] == "connected"  # best effort: a direct connection is not stopped


def test_check_refuses_a_wheel_whose_builds_differ_naming_the_member(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = toy_sdist(files, "alpha", stamp=True)
    code, stdout, stderr, out = build(
        capsys, tmp_path, files, [sdist], [make_backend(files)], "--check"
    )
    assert code == 1
    assert "two builds of alpha-1.0.tar.gz differ" in stderr
    assert "toy_facts.json: contents differ" in stderr
    assert "RECORD: contents differ" in stderr
    assert not out.exists()
    assert stdout == ""


def test_sdist_with_other_bytes_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    marker = tmp_path / "backend-ran"
    sdist = make_marker_sdist(files, "alpha", "1.0", marker)
    pool = write(tmp_path / "pool.txt", "")
    argv = ["--build-requirements", str(pool), "--find-links", str(files)]
    argv += ["--out", str(tmp_path / "out")]
    sdists = write(tmp_path / "sdists.txt", f"alpha==1.0 --hash=sha256:{'0' * 64}\n")
    code, _, stderr = run(capsys, "build", "-r", str(sdists), *argv)
    assert code == 1
    assert "hash-mismatch: alpha-1.0.tar.gz has sha256" in stderr
    assert "nothing of it ran" in stderr
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert sdist.exists()  # the source's file is left alone; only safepip's copy is deleted
    # The control: with its own hash the same sdist's backend does run (and fails on purpose).
    write(tmp_path / "sdists.txt", pinned([sdist]))
    code, _, stderr = run(capsys, "build", "-r", str(sdists), *argv)
    assert code == 4, stderr
    assert marker.exists()


def test_pool_wheel_with_other_bytes_is_refused_before_any_build(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    marker = tmp_path / "backend-ran"
    sdist = make_marker_sdist(files, "alpha", "1.0", marker)
    backend = make_backend(files)
    pool = write(tmp_path / "pool.txt", f"toybackend==1.0 --hash=sha256:{'1' * 64}\n")
    sdists = write(tmp_path / "sdists.txt", pinned([sdist]))
    code, _, stderr = run(
        capsys, "build", "-r", str(sdists), "--build-requirements", str(pool),
        "--find-links", str(files), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 1
    assert f"hash-mismatch: {backend.name} has sha256" in stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_build_requirement_missing_from_the_pool_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = toy_sdist(files, "alpha", dynamic="helper>=2")
    code, _, stderr, out = build(capsys, tmp_path, files, [sdist], [make_backend(files)])
    assert code == 1
    assert (
        "alpha-1.0.tar.gz [build-system] + get_requires_for_build_wheel: the pool cannot satisfy"
        in stderr
    )
    assert "helper" in stderr
    assert not out.exists()


def test_unpinned_or_unhashed_sdist_lines_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    pool = write(tmp_path / "pool.txt", "")
    for text, why in (("alpha>=1\n", "is not pinned with =="), ("alpha==1.0\n", "has no --hash")):
        sdists = write(tmp_path / "sdists.txt", text)
        code, _, stderr = run(
            capsys, "build", "-r", str(sdists), "--build-requirements", str(pool),
            "--find-links", str(files), "--out", str(tmp_path / "out"),
        )  # fmt: skip
        assert code == 1, stderr
        assert why in stderr


def test_backend_failure_is_exit_4_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    sdist = flit_sdist(files, "demo")  # needs flit_core; the pool offers toybackend
    broken = make_wheel(files, "flit_core", "3.9", modules={"flit_core/buildapi.py": "1/0\n"})
    code, _, stderr, out = build(capsys, tmp_path, files, [sdist], [broken])
    assert code == 4
    assert "get_requires_for_build_wheel failed" in stderr
    assert "ZeroDivisionError" in stderr
    assert not out.exists()


def test_lock_build_deps_writes_a_pool_that_then_builds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, files: Path
) -> None:
    make_wheel(files, "helper", "1.0")
    for version in ("1.0", "2.0"):
        wheel = make_backend(files / version, version)
        wheel.rename(files / wheel.name)
    sdist = toy_sdist(files, "alpha", requires="toybackend<2", dynamic="helper")
    sdists = write(tmp_path / "sdists.txt", pinned([sdist]))
    pool = tmp_path / "pool.txt"
    argv = ["-r", str(sdists), "--build-requirements", str(pool), "--find-links", str(files)]
    code, stdout, stderr = run(capsys, "build", "--lock-build-deps", *argv)
    assert code == 0, stderr
    assert "2 hashed build dependencies" in stdout
    lines = [line for line in pool.read_text().splitlines() if not line.startswith("#")]
    assert lines == [
        f"helper==1.0 --hash=sha256:{sha256_of(files / 'helper-1.0-py3-none-any.whl')}",
        f"toybackend==1.0 --hash=sha256:{sha256_of(files / 'toybackend-1.0-py3-none-any.whl')}",
    ]
    code, _, stderr = run(capsys, "build", *argv, "--out", str(tmp_path / "out"))
    assert code == 0, stderr
    assert facts(tmp_path / "out" / "alpha-1.0-py3-none-any.whl")["dists"] == [
        "helper",
        "toybackend",
    ]


def test_third_party_rebuilds_a_published_wheel_from_the_listed_sdist_and_pool(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    files: Path,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    site = Site(tmp_path / "unused", tmp_path / "site", keyring)
    sdist = flit_sdist(files, "demo")
    flit = flit_core_wheel(files)
    code, _, stderr, built = build(capsys, tmp_path, files, [sdist], [flit], "--check")
    assert code == 0, stderr
    shutil.copy(flit, built)  # the pool is published too, so anyone can fetch it
    code, stdout, stderr = run(
        capsys, "publish", str(built), "--out", str(site.out), "--key", site.fingerprint(),
        *site.pins(),
    )  # fmt: skip
    assert code == 0, stderr
    assert "published 2 wheels and 1 sdists of 2 projects" in stdout
    page = (site.out / "simple" / "demo" / "index.html").read_text()
    assert 'href="../../demo-1.0.tar.gz#sha256=' in page

    # The third party: only the published list (verified) and the index beside it.
    code, _, stderr = run(capsys, "verify", "--list", str(site.list_path), *site.pins())
    assert code == 0, stderr
    listed = {
        name: digest
        for digest, name in (
            line.split("  ") for line in site.list_path.read_text().splitlines() if line[:1] != "#"
        )
    }
    wheel = "demo-1.0-py2.py3-none-any.whl"
    sdists = write(
        tmp_path / "their-sdists.txt", f"demo==1.0 --hash=sha256:{listed['demo-1.0.tar.gz']}\n"
    )
    pool = write(
        tmp_path / "their-pool.txt", f"flit_core==4.2.0 --hash=sha256:{listed[flit.name]}\n"
    )
    theirs = tmp_path / "theirs"
    code, stdout, stderr = run(
        capsys, "build", "-r", str(sdists), "--build-requirements", str(pool),
        "--index-url", (site.out / "simple").as_uri(), "--out", str(theirs),
    )  # fmt: skip
    assert code == 0, stderr
    assert sha256_of(theirs / wheel) == listed[wheel]
