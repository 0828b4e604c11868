"""A publisher's site for the tests: real wheels, published and signed with real keys."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from safepip import gpg, hashlist
from safepip._cli import main
from tests.keys import Keyring
from tests.server import LoopbackServer
from tests.wheels import make_wheel

#: The default project set: alpha needs beta, gamma stands alone.
DEFAULT_WHEELS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "alpha": ("1.0", ("beta>=2",)),
    "beta": ("2.0", ()),
    "gamma": ("0.1", ()),
}


@dataclass
class Site:
    """A wheel folder, its published output folder, and the client's pins."""

    wheels: Path
    out: Path
    keyring: Keyring
    signer: str = "alice"

    @property
    def list_path(self) -> Path:
        return self.out / "sha256sums.txt"

    @property
    def signature_path(self) -> Path:
        return self.out / "sha256sums.txt.asc"

    def fingerprint(self, name: str | None = None) -> str:
        return self.keyring.keys[name or self.signer].fingerprint

    def pins(self, *names: str) -> list[str]:
        """CLI flags pinning ``names`` (default: the signer) with their key files."""
        flags: list[str] = ["--no-config"]
        for name in names or (self.signer,):
            key = self.keyring.keys[name]
            flags += ["--trusted-key", key.fingerprint, "--key-file", str(key.public_file)]
        return flags

    def write_config(self, folder: Path, list_source: str, **extra: object) -> Path:
        """A client ``safepip.toml`` in ``folder`` pinning the signer."""
        key = self.keyring.keys[self.signer]
        lines = [
            f'list = "{list_source}"',
            f'trusted-keys = ["{key.fingerprint}"]',
            f'key-files = ["{key.public_file}"]',
        ]
        for name, value in extra.items():
            rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
            lines.append(f"{name.replace('_', '-')} = {rendered}")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "safepip.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def sign_raw(self, data: bytes, *, signer: str | None = None) -> None:
        """Write ``data`` as the list with a good signature over it (for hostile lists)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.list_path.write_bytes(data)
        self.signature_path.write_bytes(
            gpg.sign(data, fingerprint=self.fingerprint(signer), gnupghome=self.keyring.home)
        )

    def raw_list(
        self,
        *,
        serial: int,
        issued: datetime | None = None,
        lifetime: timedelta = timedelta(days=30),
        files: Mapping[str, str] | None = None,
    ) -> bytes:
        """A format 1 list of the wheel folder (or ``files``), with any header values."""
        issued = issued or datetime.now(tz=timezone.utc).replace(microsecond=0)
        if files is None:
            files = {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.wheels.glob("*.whl"))
            }
        return hashlist.serialise(files, serial=serial, issued=issued, expires=issued + lifetime)


def make_site(
    root: Path,
    keyring: Keyring,
    wheels: Mapping[str, tuple[str, tuple[str, ...]]] = DEFAULT_WHEELS,
) -> Site:
    """Build the wheels (not yet published) under ``root``."""
    folder = root / "wheels"
    for name, (version, requires) in wheels.items():
        make_wheel(folder, name, version, requires=requires)
    return Site(folder, root / "site", keyring)


@contextmanager
def published_and_served(
    site: Site, monkeypatch: pytest.MonkeyPatch, *publish_flags: str
) -> Iterator[tuple[LoopbackServer, Path, Path]]:
    """Publish ``site.wheels``, serve ``site.out`` on 127.0.0.1, and make a client.

    Yields (server, client folder holding a ``safepip.toml`` for the served list and now the
    working directory, an empty venv without pip beside it).
    """
    assert main(["publish", str(site.wheels), "--out", str(site.out),
                 "--key", site.fingerprint(), *site.pins(), *publish_flags]) == 0  # fmt: skip
    venv = site.out.parent / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    client = site.out.parent / "client"
    with LoopbackServer(site.out) as server:
        site.write_config(client, server.url + "sha256sums.txt")
        monkeypatch.chdir(client)
        yield server, client, venv
