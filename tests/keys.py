"""Real OpenPGP keys for the tests, generated per run with the real gpg in a temporary home.

Nothing here is committed key material: every key is made fresh, in a home that is removed (and
its gpg-agent stopped) when the test session ends.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Key:
    """A generated key: its primary fingerprint and an armoured public key file."""

    name: str
    fingerprint: str
    public_file: Path


class Keyring:
    """A GnuPG home holding the publisher's secret keys, driven with the gpg command line."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.keys: dict[str, Key] = {}

    def gpg(self, *args: str, data: bytes | None = None) -> bytes:
        """Run gpg in this home and return its stdout; fail the test on error."""
        result = subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", "--passphrase", "", *args],
            input=data,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {result.stderr.decode()}")
        return result.stdout

    def _fingerprints(self) -> list[str]:
        out = self.gpg("--with-colons", "--list-keys").decode()
        return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]

    def generate(self, name: str, *, expire: str = "0", faked_time: str | None = None) -> Key:
        """Generate an ed25519 signing key (``faked_time`` makes it in the past)."""
        before = set(self._fingerprints())
        extra = ["--faked-system-time", faked_time] if faked_time else []
        self.gpg(
            *extra, "--quick-gen-key", f"{name} <{name}@example.test>", "ed25519", "sign", expire
        )
        (fingerprint,) = [f for f in self._fingerprints() if f not in before]
        return self._export(name, fingerprint)

    def add_signing_subkey(self, key: Key) -> str:
        """Add a signing subkey to ``key`` and return the subkey's fingerprint."""
        before = set(self._fingerprints())
        self.gpg("--quick-add-key", key.fingerprint, "ed25519", "sign", "0")
        (sub,) = [f for f in self._fingerprints() if f not in before]
        self._export(key.name, key.fingerprint)
        return sub

    def revoke(self, key: Key) -> None:
        """Publish ``key`` as revoked: its public key file carries gpg's revocation certificate.

        The signing home keeps the unrevoked secret key, as a publisher's compromised key would
        still sign: the signature was made before the revocation became known.
        """
        scratch = Keyring(self.home.parent / f"revoke-{key.name}")
        try:
            scratch.gpg("--import", str(key.public_file))
            scratch.gpg("--import", data=self.revocation(key))
            key.public_file.write_bytes(scratch.gpg("--armor", "--export", key.fingerprint))
        finally:
            scratch.close()

    def revocation(self, key: Key) -> bytes:
        """gpg's stored revocation certificate for ``key``, ready to import."""
        cert = (self.home / "openpgp-revocs.d" / f"{key.fingerprint}.rev").read_text()
        # gpg stores the certificate with a ':' before the armour so it cannot be imported by
        # accident; removing it is the documented way to use it.
        return cert.replace(":-----BEGIN", "-----BEGIN").encode()

    def _export(self, name: str, fingerprint: str) -> Key:
        public = self.home.parent / f"{name}.asc"
        public.write_bytes(self.gpg("--armor", "--export", fingerprint))
        key = Key(name, fingerprint, public)
        self.keys[name] = key
        return key

    def detach_sign(self, data: bytes, signer: str, *extra: str) -> bytes:
        """An armoured detached signature made by gpg itself (``extra`` makes hostile variants)."""
        return self.gpg("--armor", "--detach-sign", "--local-user", signer, *extra, data=data)

    def close(self) -> None:
        """Stop the agent this home started and remove the home."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=30,
        )
        shutil.rmtree(self.home, ignore_errors=True)


def make_keyring(root: Path, names: Sequence[str] = ("alice", "bob")) -> Keyring:
    """A keyring with good keys ``names``, an expired key, a revoked key, and one with subkeys."""
    ring = Keyring(root / "gnupg")
    for name in names:
        ring.generate(name)
    ring.generate("expired", expire="1d", faked_time="20200101T000000")
    revoked = ring.generate("revoked")
    ring.revoke(revoked)
    twosub = ring.generate("twosub")
    ring.add_signing_subkey(twosub)
    ring.add_signing_subkey(twosub)
    ring.generate("stranger")
    # Made in 2020 without expiry, so that it can make a signature that expired long ago.
    ring.generate("old", faked_time="20200101T000000")
    return ring
