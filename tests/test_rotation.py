"""A publisher's key rotation end to end (DESIGN.md §2), with real keys and the real CLI.

old key only → old + new co-signing (clients pin old, then old + new) → new key only (clients
pin new). At every stage the rollback ratchet holds: a list of an earlier stage, replayed, is
refused, whatever the client pins at that moment.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safepip._cli import main
from tests.keys import Keyring
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


def publish(site: Site, capsys: pytest.CaptureFixture[str], key: str, serial: int) -> None:
    code, _, err = run(
        capsys, "publish", str(site.wheels), "--out", str(site.out),
        "--key", site.fingerprint(key), *site.pins(key), "--serial", str(serial),
    )  # fmt: skip
    assert code == 0, err


def cosign(site: Site, key: str) -> None:
    """Append a detached signature by ``key`` to the published signature file."""
    extra = site.keyring.detach_sign(site.list_path.read_bytes(), site.fingerprint(key))
    site.signature_path.write_bytes(site.signature_path.read_bytes() + extra)


def snapshot(site: Site) -> tuple[bytes, bytes]:
    return site.list_path.read_bytes(), site.signature_path.read_bytes()


def serve(site: Site, published: tuple[bytes, bytes]) -> None:
    site.list_path.write_bytes(published[0])
    site.signature_path.write_bytes(published[1])


def verify(site: Site, capsys: pytest.CaptureFixture[str], *pins: str) -> tuple[int, str, str]:
    return run(capsys, "verify", "-v", "--list", str(site.list_path), *site.pins(*pins))


def state_files(tmp_path: Path) -> dict[str, bytes]:
    root = tmp_path / "state"
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}


def assert_rollback(
    site: Site, capsys: pytest.CaptureFixture[str], tmp_path: Path, *pins: str
) -> None:
    before = state_files(tmp_path)
    code, _, err = verify(site, capsys, *pins)
    assert code == 3, err
    assert "rollback" in err or "pinned key(s) signed" in err, err
    assert state_files(tmp_path) == before


def test_full_rotation_keeps_the_ratchet(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = site.fingerprint("alice"), site.fingerprint("bob")

    # Stage 1: the old key alone.
    publish(site, capsys, "alice", 1)
    stage1 = snapshot(site)
    code, out, err = verify(site, capsys, "alice")
    assert code == 0, err
    assert "serial:   1" in out

    # Stage 2: the publisher co-signs with the new key; clients still pin only the old one.
    publish(site, capsys, "alice", 2)
    cosign(site, "bob")
    stage2 = snapshot(site)
    code, out, err = verify(site, capsys, "alice")
    assert code == 0, err
    assert f"signers:  {alice}\n" in out
    assert f"ignored a signature by {bob}" in err  # shown with -v
    serve(site, stage1)
    assert_rollback(site, capsys, tmp_path, "alice")

    # Clients move their pins to old + new: the history is the same list's, not a fresh one.
    assert_rollback(site, capsys, tmp_path, "alice", "bob")
    serve(site, stage2)
    code, out, err = verify(site, capsys, "alice", "bob")
    assert code == 0, err
    assert f"signers:  {', '.join(sorted([alice, bob]))}" in out
    monkeypatch.setenv("SAFEPIP_THRESHOLD", "2")
    assert verify(site, capsys, "alice", "bob")[0] == 0
    serve(site, stage1)
    assert_rollback(site, capsys, tmp_path, "alice", "bob")
    monkeypatch.delenv("SAFEPIP_THRESHOLD")

    # Stage 3: the new key alone; clients pin the new key only.
    serve(site, stage2)
    publish(site, capsys, "bob", 3)
    stage3 = snapshot(site)
    code, out, err = verify(site, capsys, "alice")
    assert code == 3  # a client that never moved its pins is refused: nothing it pins signed
    assert "0 of the required 1" in err
    code, out, err = verify(site, capsys, "bob")
    assert code == 0, err
    assert "serial:   3" in out
    assert f"signers:  {bob}\n" in out
    for old in (stage2, stage1):
        serve(site, old)
        assert_rollback(site, capsys, tmp_path, "bob")
        assert_rollback(site, capsys, tmp_path, "alice", "bob")
    serve(site, stage3)
    assert verify(site, capsys, "bob")[0] == 0
    serve(site, stage2)
    code, _, err = verify(site, capsys, "alice", "bob")
    assert code == 3
    assert "serial 2 is lower than serial 3" in err
