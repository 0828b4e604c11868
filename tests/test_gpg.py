from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from safepip import gpg
from safepip.errors import (
    ConfigError,
    GpgMissingError,
    ListFormatError,
    PublishError,
    SignatureError,
)
from tests.keys import Keyring

DATA = b"# safepip-list: 1\n" + b"a" * 64 + b"  a-1.0-py3-none-any.whl\n"


def key_files(ring: Keyring, *names: str) -> list[Path]:
    return [ring.keys[n].public_file for n in names]


def fpr(ring: Keyring, name: str) -> str:
    return ring.keys[name].fingerprint


def verify(
    ring: Keyring,
    signature: bytes,
    *,
    signers: tuple[str, ...] = ("alice",),
    files: tuple[str, ...] | None = None,
    threshold: int = 1,
    data: bytes = DATA,
) -> gpg.Verification:
    return gpg.verify(
        data,
        signature,
        key_files=key_files(ring, *(files or signers)),
        trusted=[fpr(ring, n) for n in signers],
        threshold=threshold,
        source="sha256sums.txt.asc",
    )


def hanging_gpg(folder: Path, seconds: str) -> Path:
    """A gpg whose --verify sleeps ``seconds`` (an odd duration: no other process's sleep)."""
    slow = folder / "slow-gpg"
    real = shutil.which("gpg")
    slow.write_text(
        f'#!/bin/sh\ncase "$*" in *--verify*) exec sleep {seconds};; esac\nexec {real} "$@"\n'
    )
    slow.chmod(0o755)
    return slow


def refused(ring: Keyring, signature: bytes, **kwargs: object) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        verify(ring, signature, **kwargs)  # type: ignore[arg-type]
    assert "sha256sums.txt.asc" in str(info.value)
    return info.value


def test_good_signature_names_the_pinned_signer(keyring: Keyring) -> None:
    result = verify(keyring, keyring.detach_sign(DATA, fpr(keyring, "alice")))
    assert result.signers == (fpr(keyring, "alice"),)
    assert result.signatures[0].digest in {"SHA256", "SHA512"}


def test_safepip_sign_output_verifies(keyring: Keyring) -> None:
    signature = gpg.sign(DATA, fingerprint=fpr(keyring, "alice"), gnupghome=keyring.home)
    assert verify(keyring, signature).signatures[0].digest == "SHA512"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.replace(b"a" * 64, b"b" + b"a" * 63),  # a flipped nibble
        lambda d: d + b"b" * 64 + b"  evil-1.0-py3-none-any.whl\n",  # an appended line
        lambda d: b"# hi\n" + d,  # a prepended line
        lambda d: d + b"\n",  # trailing bytes
    ],
)
def test_any_change_after_signing_is_refused(keyring: Keyring, tamper) -> None:  # type: ignore[no-untyped-def]
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    error = refused(keyring, signature, data=tamper(DATA))
    assert "does not match" in str(error)


def test_unpinned_signer_in_key_files_is_refused_by_fingerprint(keyring: Keyring) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "stranger"))
    error = refused(keyring, signature, files=("alice", "stranger"))
    assert fpr(keyring, "stranger") in str(error)
    assert "not pinned" in str(error)


def test_signer_only_in_users_keyring_never_counts(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bob's key sits in GNUPGHOME (the user's keyring) but not in the key files.
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    signature = keyring.detach_sign(DATA, fpr(keyring, "bob"))
    error = refused(keyring, signature, signers=("alice", "bob"), files=("alice",))
    assert "cannot be checked" in str(error)


@pytest.mark.parametrize(
    ("signer", "extra", "reason"),
    [
        ("expired", ("--faked-system-time", "20200101T120000"), "expired key"),
        ("revoked", (), "revoked key"),
        (
            "old",
            ("--faked-system-time", "20200102T000000", "--default-sig-expire", "1d"),
            "signature has expired",
        ),
        ("alice", ("--digest-algo", "SHA1"), "weak digest SHA1"),
        ("alice", ("--textmode",), "not a binary-mode signature"),
    ],
)
def test_bad_keys_and_signature_kinds_are_refused(
    keyring: Keyring, signer: str, extra: tuple[str, ...], reason: str
) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, signer), *extra)
    error = refused(keyring, signature, signers=(signer,))
    assert reason in str(error)


def test_attached_and_clearsigned_messages_are_refused(keyring: Keyring) -> None:
    attached = keyring.gpg("--armor", "--sign", "--local-user", fpr(keyring, "alice"), data=DATA)
    assert "attached" in str(refused(keyring, attached))
    clear = keyring.gpg("--clearsign", "--local-user", fpr(keyring, "alice"), data=DATA)
    assert "clear-signed" in str(refused(keyring, clear))


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (b"", "empty"),
        (b"<html><body>404 Not Found</body></html>", "not an ASCII-armoured"),
        (b"\x88\x75\x04\x00\x16", "not an ASCII-armoured"),
        (
            b"-----BEGIN PGP SIGNATURE-----\n\nZm9v\n-----END PGP SIGNATURE-----\n",
            "not a valid OpenPGP signature",
        ),
    ],
)
def test_garbage_signatures_are_refused(keyring: Keyring, signature: bytes, reason: str) -> None:
    assert reason in str(refused(keyring, signature))


def test_truncated_signature_is_refused(keyring: Keyring) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    truncated = signature[: len(signature) // 2] + b"\n-----END PGP SIGNATURE-----\n"
    refused(keyring, truncated)


def test_threshold_counts_distinct_pinned_primary_keys(keyring: Keyring) -> None:
    alice = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    bob = keyring.detach_sign(DATA, fpr(keyring, "bob"))
    both = verify(keyring, alice + bob, signers=("alice", "bob"), threshold=2)
    assert both.signers == tuple(sorted([fpr(keyring, "alice"), fpr(keyring, "bob")]))
    error = refused(keyring, alice + alice, signers=("alice", "bob"), threshold=2)
    assert "1 of the required 2" in str(error)


def test_two_subkeys_of_one_key_count_once(keyring: Keyring) -> None:
    out = keyring.gpg("--with-colons", "--list-keys", fpr(keyring, "twosub")).decode()
    subkeys = [ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:")][1:]
    assert len(subkeys) == 2
    signature = b"".join(keyring.detach_sign(DATA, f"{sub}!") for sub in subkeys)
    result = verify(keyring, signature, signers=("twosub",))
    assert {s.fingerprint for s in result.signatures} == set(subkeys)
    assert result.signers == (fpr(keyring, "twosub"),)
    error = refused(keyring, signature, signers=("twosub", "alice"), threshold=2)
    assert "1 of the required 2" in str(error)


def test_one_bad_signature_among_good_ones_refuses(keyring: Keyring) -> None:
    good = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    bad = keyring.detach_sign(DATA + b"x", fpr(keyring, "bob"))
    refused(keyring, good + bad, signers=("alice", "bob"), threshold=1)


@pytest.mark.parametrize("pin", ["ABCD1234", "0123456789ABCDEF", "0xABCD1234", "not-a-key"])
def test_key_ids_and_junk_are_refused_as_pins(pin: str) -> None:
    with pytest.raises(ConfigError, match="fingerprint"):
        gpg.normalise_fingerprint(pin)


def test_fingerprints_compare_case_and_space_insensitively(keyring: Keyring) -> None:
    alice = fpr(keyring, "alice")
    spaced = " ".join(alice[i : i + 4] for i in range(0, 40, 4)).lower()
    assert gpg.normalise_fingerprint(spaced) == alice
    result = gpg.verify(
        DATA,
        keyring.detach_sign(DATA, alice),
        key_files=key_files(keyring, "alice"),
        trusted=[spaced],
        threshold=1,
    )
    assert result.signers == (alice,)


def test_missing_gpg_is_a_clear_error(keyring: Keyring) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    with pytest.raises(GpgMissingError, match="no-such-gpg"):
        gpg.verify(DATA, signature, key_files=[], trusted=[], threshold=1, gpg_binary="no-such-gpg")


@pytest.mark.timeout(20)  # a regression blocks in open(): fail, do not hang
def test_key_file_fifo_is_refused_without_blocking(keyring: Keyring, tmp_path: Path) -> None:
    """A FIFO named as a key file (a config file can name one) must not hang the run."""
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    start = time.monotonic()
    with pytest.raises(ConfigError, match="not a regular file") as info:
        gpg.verify(DATA, signature, key_files=[fifo], trusted=[fpr(keyring, "alice")], threshold=1)
    assert time.monotonic() - start < 10
    assert f"key file {fifo}" in str(info.value)
    assert info.value.exit_code == 2


def test_verify_leaves_no_temporary_home(keyring: Keyring) -> None:
    def homes() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("safepip-gnupg-*"))

    before = homes()
    verify(keyring, keyring.detach_sign(DATA, fpr(keyring, "alice")))
    refused(keyring, b"garbage")
    assert homes() == before


def test_sign_refuses_expired_key(keyring: Keyring) -> None:
    with pytest.raises(PublishError, match="expired"):
        gpg.sign(DATA, fingerprint=fpr(keyring, "expired"), gnupghome=keyring.home)


def test_sign_refuses_revoked_key(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "publisher")
    try:
        key = ring.generate("gone")
        ring.gpg("--import", data=ring.revocation(key))
        with pytest.raises(PublishError, match="revoked"):
            gpg.sign(DATA, fingerprint=key.fingerprint, gnupghome=ring.home)
    finally:
        ring.close()


def test_sign_refuses_unknown_key(keyring: Keyring) -> None:
    with pytest.raises(PublishError, match="no public key"):
        gpg.sign(DATA, fingerprint="0" * 40, gnupghome=keyring.home)


# -- key rotation: signatures by keys that are not pinned are ignored (DESIGN.md §2) ----------


def test_cosignature_by_an_unpinned_key_in_the_key_files_is_ignored(keyring: Keyring) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice")) + keyring.detach_sign(
        DATA, fpr(keyring, "stranger")
    )
    result = verify(keyring, signature, files=("alice", "stranger"))
    assert result.signers == (fpr(keyring, "alice"),)
    assert [s.primary for s in result.signatures] == [fpr(keyring, "alice")]
    assert result.ignored == (gpg.Ignored(fpr(keyring, "stranger"), "not pinned"),)


def test_cosignature_by_a_key_absent_from_the_key_files_is_ignored(keyring: Keyring) -> None:
    # The publisher's new key, which this client has neither pinned nor been given yet.
    signature = keyring.detach_sign(DATA, fpr(keyring, "bob")) + keyring.detach_sign(
        DATA, fpr(keyring, "alice")
    )
    result = verify(keyring, signature)
    assert result.signers == (fpr(keyring, "alice"),)
    (ignored,) = result.ignored
    assert ignored.key == fpr(keyring, "bob")
    assert "not in the key files" in ignored.reason


@pytest.mark.parametrize(
    ("signer", "extra"),
    [("expired", ("--faked-system-time", "20200101T120000")), ("revoked", ())],
)
def test_cosignature_by_an_unpinned_expired_or_revoked_key_is_ignored(
    keyring: Keyring, signer: str, extra: tuple[str, ...]
) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice")) + keyring.detach_sign(
        DATA, fpr(keyring, signer), *extra
    )
    result = verify(keyring, signature, files=("alice", signer))
    assert result.signers == (fpr(keyring, "alice"),)
    assert [i.key for i in result.ignored] == [fpr(keyring, signer)]


def test_only_unpinned_signatures_are_still_refused(keyring: Keyring) -> None:
    # THREATS.md A: ignoring unpinned keys leaves zero good pinned signatures.
    signature = keyring.detach_sign(DATA, fpr(keyring, "stranger")) + keyring.detach_sign(
        DATA, fpr(keyring, "bob")
    )
    error = refused(keyring, signature, files=("alice", "stranger"))
    assert "0 of the required 1" in str(error)
    assert fpr(keyring, "stranger") in str(error)


def test_a_bad_signature_by_an_unpinned_key_still_refuses(keyring: Keyring) -> None:
    # The list is not what that key signed: a change after signing, whoever signed.
    good = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    bad = keyring.detach_sign(DATA + b"x", fpr(keyring, "stranger"))
    assert "does not match" in str(refused(keyring, good + bad, files=("alice", "stranger")))


def test_a_pinned_key_missing_from_the_key_files_is_not_ignored(keyring: Keyring) -> None:
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice")) + keyring.detach_sign(
        DATA, fpr(keyring, "bob")
    )
    error = refused(keyring, signature, signers=("alice", "bob"), files=("alice",))
    assert f"pinned key {fpr(keyring, 'bob')} is not in the key files" in str(error)


def test_a_bad_cosignature_by_a_pinned_key_refuses_even_above_threshold(keyring: Keyring) -> None:
    good = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    expired = keyring.detach_sign(
        DATA, fpr(keyring, "expired"), "--faked-system-time", "20200101T120000"
    )
    error = refused(keyring, good + expired, signers=("alice", "expired"), threshold=1)
    assert "expired key" in str(error)


# -- signature-block amplification (review finding f_sig_blocks) ---------------------------


def test_duplicate_blocks_are_judged_once(keyring: Keyring) -> None:
    commands: list[str] = []
    block = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    result = gpg.verify(
        DATA,
        block * 5000,
        key_files=key_files(keyring, "alice"),
        trusted=[fpr(keyring, "alice")],
        threshold=1,
        log=commands.append,
    )
    assert result.signers == (fpr(keyring, "alice"),)
    assert sum("--verify" in c for c in commands) == 1


def test_too_many_distinct_blocks_are_refused_before_gpg_runs(keyring: Keyring) -> None:
    # Armour comments make each copy of one signature a distinct block, as an attacker would.
    limit = gpg.max_signature_blocks(1, 1)
    assert limit == 10
    blocks = [
        keyring.detach_sign(DATA, fpr(keyring, "alice"), "--comment", f"copy {i}")
        for i in range(limit + 1)
    ]
    assert verify(keyring, b"".join(blocks[:limit])).signers == (fpr(keyring, "alice"),)
    commands: list[str] = []
    with pytest.raises(SignatureError, match=f"holds {limit + 1} distinct signature blocks"):
        gpg.verify(
            DATA,
            b"".join(blocks),
            key_files=key_files(keyring, "alice"),
            trusted=[fpr(keyring, "alice")],
            threshold=1,
            source="sha256sums.txt.asc",
            log=commands.append,
        )
    assert commands == []


def test_verification_has_a_deadline(keyring: Keyring, tmp_path: Path) -> None:
    # A gpg that hangs while verifying (as one fed a hostile signature could) is stopped.
    slow = hanging_gpg(tmp_path, "59.25")
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    start = time.monotonic()
    with pytest.raises(SignatureError, match=r"took longer than 0\.5 s"):
        gpg.verify(
            DATA,
            signature,
            key_files=key_files(keyring, "alice"),
            trusted=[fpr(keyring, "alice")],
            threshold=1,
            gpg_binary=str(slow),
            deadline=0.5,
        )
    assert time.monotonic() - start < 10
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert "sleep 59.25" not in ps.stdout  # an odd duration: no other process's sleep


def test_verifying_judges_the_signature_before_the_blocks_own_refusal(keyring: Keyring) -> None:
    # vet parses the list while gpg checks it: a list both malformed and tampered with is refused
    # for its signature, the first reason, whatever the parser found meanwhile.
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    with (
        pytest.raises(SignatureError, match="does not match") as info,
        gpg.verifying(
            DATA + b"x",
            signature,
            key_files=key_files(keyring, "alice"),
            trusted=[fpr(keyring, "alice")],
            threshold=1,
        ),
    ):
        raise ListFormatError("expected a hash", line=2)
    assert isinstance(info.value.__context__, ListFormatError)
    # A good signature lets the block's own refusal through.
    with (
        pytest.raises(ListFormatError, match="expected a hash"),
        gpg.verifying(
            DATA,
            signature,
            key_files=key_files(keyring, "alice"),
            trusted=[fpr(keyring, "alice")],
            threshold=1,
        ) as pending,
    ):
        with pytest.raises(RuntimeError):
            pending.verification  # noqa: B018 (the verdict is not in before the block ends)
        raise ListFormatError("expected a hash", line=2)


def test_gpg_reads_a_sealed_copy_of_the_data(tmp_path: Path) -> None:
    # What gpg reads is what was parsed: on Linux no one can change it once written.
    with gpg._data_file(DATA, tmp_path) as (path, fds):
        assert Path(path).read_bytes() == DATA
        assert fds, "an in-memory file on Linux"
        with pytest.raises(PermissionError):
            os.write(fds[0], b"x")
    assert not list(tmp_path.iterdir())


def test_verify_falls_back_to_a_file_where_memfd_is_refused(
    keyring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A seccomp profile may refuse memfd_create: the data goes to the private home instead.
    def refuse(*args: object) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(gpg.os, "memfd_create", refuse)
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    assert verify(keyring, signature).signers == (fpr(keyring, "alice"),)
    error = refused(keyring, signature, data=DATA + b"x")
    assert "does not match" in str(error)


@pytest.mark.parametrize("closed", [0, 2])
def test_verify_works_with_a_standard_stream_closed(keyring: Keyring, closed: int) -> None:
    # Started with stdin (or stderr) closed, the in-memory copy would take that descriptor
    # number, which in gpg is /dev/null or its own pipe: a good list refused, or a hang.
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    saved = os.dup(closed)
    os.close(closed)
    try:
        result = verify(keyring, signature)
    finally:
        os.dup2(saved, closed)
        os.close(saved)
    assert result.signers == (fpr(keyring, "alice"),)


def test_verify_falls_back_to_a_file_where_sealing_is_refused(
    keyring: Keyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpg, "_SEALS", 1 << 20)  # no such seal: the kernel refuses (EINVAL)
    with gpg._data_file(DATA, tmp_path) as (path, fds):
        assert fds == () and Path(path).read_bytes() == DATA
    signature = keyring.detach_sign(DATA, fpr(keyring, "alice"))
    assert verify(keyring, signature).signers == (fpr(keyring, "alice"),)


def test_verifying_stops_gpg_at_once_on_ctrl_c(keyring: Keyring, tmp_path: Path) -> None:
    slow = hanging_gpg(tmp_path, "58.75")
    homes = set(Path(tempfile.gettempdir()).glob("safepip-gnupg-*"))
    start = time.monotonic()
    with (
        pytest.raises(KeyboardInterrupt),
        gpg.verifying(
            DATA,
            keyring.detach_sign(DATA, fpr(keyring, "alice")),
            key_files=key_files(keyring, "alice"),
            trusted=[fpr(keyring, "alice")],
            threshold=1,
            gpg_binary=str(slow),
        ),
    ):
        raise KeyboardInterrupt
    assert time.monotonic() - start < 10
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert "sleep 58.75" not in ps.stdout
    assert set(Path(tempfile.gettempdir()).glob("safepip-gnupg-*")) == homes
