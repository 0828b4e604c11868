"""A throw-away certificate authority and server certificate for HTTPS tests (real openssl)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["TEST_HOST", "make_tls_files"]

#: A name no resolver knows: only a proxy told to map it reaches the test server by it.
TEST_HOST = "safepip.test"


def make_tls_files(folder: Path, *, names: tuple[str, ...] = (TEST_HOST,)) -> dict[str, Path]:
    """A CA (``ca``) and a certificate (``cert``, ``key``) for IP 127.0.0.1 and ``names``
    (never "localhost"), valid two days. Skips the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=safepip test CA",
        "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    alt_names = ",".join(["IP:127.0.0.1", *(f"DNS:{name}" for name in names)])
    (folder / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName={alt_names}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
    )  # fmt: skip
    return {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
