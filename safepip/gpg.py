"""Sign and verify detached signatures against pinned keys: the only module that uses python-gnupg.

Verification runs in a fresh temporary GNUPGHOME that holds nothing but the configured key files,
with ``--no-autostart`` so that no agent or dirmngr (hence no keyserver) is ever involved. The
user's keyring, ``GNUPGHOME`` and ``gpg.conf`` never count.

Every signature is judged on its own from gpg's machine-readable status lines, never from
python-gnupg's summary ``valid`` flag, which reflects only the last signature gpg reported.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from safepip.errors import ConfigError, GpgMissingError, PublishError, SignatureError
from safepip.files import read_regular

if TYPE_CHECKING:
    import gnupg

_FINGERPRINT_RE: Final = re.compile(r"[0-9A-F]{40}")
_ARMOR_BLOCK_RE: Final = re.compile(
    rb"-----BEGIN PGP SIGNATURE-----\r?\n.*?-----END PGP SIGNATURE-----", re.DOTALL
)
#: OpenPGP hash algorithm ids (RFC 4880 §9.4) that safepip accepts: SHA-256, -384, -512, -224.
_STRONG_DIGESTS: Final = {"8": "SHA256", "9": "SHA384", "10": "SHA512", "11": "SHA224"}
_WEAK_DIGESTS: Final = {"1": "MD5", "2": "SHA1", "3": "RIPEMD160"}
#: Per-signature status keywords that refuse the whole list, and why.
_BAD_STATUS: Final = {
    "BADSIG": "a signature does not match the list (the list was changed after signing)",
    "EXPSIG": "a signature has expired",
    "EXPKEYSIG": "a signature was made by an expired key",
    "REVKEYSIG": "a signature was made by a revoked key",
    "ERRSIG": "a signature cannot be checked (unknown key or unsupported algorithm)",
}
_MAX_KEY_FILE_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class Signature:
    """One good signature: the (sub)key that made it, its primary key, and when."""

    fingerprint: str
    primary: str
    created: datetime
    digest: str


@dataclass(frozen=True)
class Verification:
    """The outcome of a successful verification.

    ``signers`` are the distinct pinned primary fingerprints that signed, sorted.
    """

    signers: tuple[str, ...]
    signatures: tuple[Signature, ...]


def normalise_fingerprint(text: str) -> str:
    """Return a full 40-hex fingerprint in upper case, without spaces.

    Raises:
        ConfigError: ``text`` is a short or long key ID, or not a fingerprint at all.
    """
    compact = re.sub(r"\s+", "", text).upper().removeprefix("0X")
    if _FINGERPRINT_RE.fullmatch(compact):
        return compact
    if re.fullmatch(r"[0-9A-F]{8}|[0-9A-F]{16}", compact):
        raise ConfigError(
            f"{text!r} is a key ID, not a fingerprint: key IDs can be forged",
            hint="pin the full 40-hex fingerprint (gpg --fingerprint --with-colons shows it)",
        )
    raise ConfigError(f"{text!r} is not a 40-hex OpenPGP fingerprint")


def _gpg_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise GpgMissingError(f"cannot find the gpg program {name!r}")
    return path


def _gpg(
    binary: str,
    home: Path | None,
    options: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> gnupg.GPG:
    """A python-gnupg handle on ``binary`` and ``home``; ``log`` sees each gpg command line.

    Raises:
        GpgMissingError: gpg cannot be run.
    """
    import gnupg  # noqa: PLC0415  (lazy: python-gnupg costs tens of milliseconds to import)

    env = {"LC_ALL": "C", "LANG": "C"}
    if home is not None:
        env["GNUPGHOME"] = str(home)
    try:
        handle = gnupg.GPG(
            gpgbinary=binary,
            gnupghome=str(home) if home is not None else None,
            options=list(options),
            env=env if home is not None else None,
        )
    except (OSError, ValueError) as exc:
        raise GpgMissingError(f"cannot run {binary}: {exc}") from exc
    if log is not None:
        # make_args builds every gpg command line python-gnupg runs (`-v` shows them); this
        # handle's own method is wrapped, nothing global changes.
        make_args = handle.make_args

        def logged(args: list[str], passphrase: bool) -> list[str]:
            command: list[str] = make_args(args, passphrase)
            log(shlex.join(command))
            return command

        handle.make_args = logged
    return handle


@contextmanager
def _temporary_home(binary: str) -> Iterator[Path]:
    """A private GNUPGHOME that is removed, and its agent stopped, on exit."""
    home = Path(tempfile.mkdtemp(prefix="safepip-gnupg-"))
    try:
        yield home
    finally:
        if any(home.glob("S.*")):
            # Something started an agent despite --no-autostart: stop it, leave no process behind.
            gpgconf = shutil.which("gpgconf", path=str(Path(binary).parent)) or "gpgconf"
            subprocess.run(
                [gpgconf, "--homedir", str(home), "--kill", "all"],
                check=False,
                capture_output=True,
                timeout=10,
            )
        shutil.rmtree(home, ignore_errors=True)


def split_armor(signature: bytes, *, source: str) -> list[bytes]:
    """The ASCII-armoured detached signature blocks in ``signature``.

    Raises:
        SignatureError: empty, binary, HTML, clear-signed or attached-signature data, or anything
            besides signature blocks and whitespace.
    """
    if b"-----BEGIN PGP SIGNED MESSAGE-----" in signature:
        raise SignatureError(f"{source} is a clear-signed message, not a detached signature")
    if b"-----BEGIN PGP MESSAGE-----" in signature:
        raise SignatureError(f"{source} is an attached signature, not a detached signature")
    blocks = _ARMOR_BLOCK_RE.findall(signature)
    rest = _ARMOR_BLOCK_RE.sub(b"", signature)
    if not blocks:
        what = "empty" if not signature.strip() else "not an ASCII-armoured PGP signature"
        raise SignatureError(f"{source} is {what}")
    if rest.strip():
        raise SignatureError(f"{source} holds data besides its signature blocks")
    return [bytes(block) + b"\n" for block in blocks]


def parse_status(status: str, *, source: str) -> list[Signature]:
    """Judge each signature reported in gpg ``--status-fd`` output (pure).

    Raises:
        SignatureError: no signature, any signature not good, a weak digest, a text-mode
            signature, or signed data inside the signature (an attached message).
    """
    signatures: list[Signature] = []
    current: list[list[str]] | None = None
    groups: list[list[list[str]]] = []
    for raw in status.splitlines():
        if not raw.startswith("[GNUPG:] "):
            continue
        words = raw[len("[GNUPG:] ") :].split()
        if not words:
            continue
        if words[0] == "PLAINTEXT":
            raise SignatureError(f"{source} carries signed data: not a detached signature")
        if words[0] in ("NODATA", "BADARMOR", "UNEXPECTED"):
            raise SignatureError(f"{source} is not a valid OpenPGP signature ({words[0]})")
        if words[0] == "NEWSIG":
            current = []
            groups.append(current)
        elif current is not None:
            current.append(words)
    if not groups:
        raise SignatureError(f"{source} holds no signature gpg could read")
    for group in groups:
        signatures.append(_judge_one(group, source))
    return signatures


def _judge_one(group: list[list[str]], source: str) -> Signature:
    keywords = {words[0]: words[1:] for words in group}
    for keyword, reason in _BAD_STATUS.items():
        if keyword in keywords:
            key = keywords[keyword][0] if keywords[keyword] else "?"
            raise SignatureError(f"{source}: {reason} (key {key})")
    if "GOODSIG" not in keywords or "VALIDSIG" not in keywords:
        raise SignatureError(f"{source}: a signature was not reported good by gpg")
    valid = keywords["VALIDSIG"]
    if len(valid) < 10:
        raise SignatureError(f"{source}: gpg reported a malformed VALIDSIG line")
    fingerprint, timestamp, digest_id, sig_class, primary = (
        valid[0],
        valid[2],
        valid[7],
        valid[8],
        valid[9],
    )
    if digest_id in _WEAK_DIGESTS:
        raise SignatureError(
            f"{source}: signature by {primary} uses the weak digest {_WEAK_DIGESTS[digest_id]}",
            hint="the publisher must sign with SHA-256 or stronger (gpg --digest-algo SHA512)",
        )
    if digest_id not in _STRONG_DIGESTS:
        raise SignatureError(f"{source}: signature by {primary} uses unknown digest {digest_id}")
    if sig_class != "00":
        raise SignatureError(
            f"{source}: signature by {primary} is not a binary-mode signature (class {sig_class})",
            hint="the publisher must sign with `gpg --armor --detach-sign` (no --textmode)",
        )
    created = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    return Signature(fingerprint, primary, created, _STRONG_DIGESTS[digest_id])


def _import_keys(gpg: gnupg.GPG, key_files: Sequence[Path]) -> None:
    for path in key_files:
        data = read_regular(path, what="key file", max_bytes=_MAX_KEY_FILE_BYTES).data
        result: Any = gpg.import_keys(data)
        if not result.fingerprints:
            raise ConfigError(f"key file {path} holds no OpenPGP public key")


def verify(
    data: bytes,
    signature: bytes,
    *,
    key_files: Sequence[Path],
    trusted: Sequence[str],
    threshold: int,
    source: str = "the signature",
    gpg_binary: str = "gpg",
    log: Callable[[str], None] | None = None,
) -> Verification:
    """Verify ``signature`` (one or more detached signatures) over the exact bytes ``data``.

    Every signature must be good; the distinct pinned primary fingerprints among the signers
    must number at least ``threshold``. ``log`` sees each gpg command line.

    Raises:
        GpgMissingError: gpg cannot be run.
        ConfigError: a key file cannot be read or holds no key.
        SignatureError: any signature is bad, expired, by an expired or revoked key, weak,
            text-mode or attached; or fewer than ``threshold`` pinned keys signed.
    """
    pinned = {normalise_fingerprint(fpr) for fpr in trusted}
    blocks = split_armor(signature, source=source)
    binary = _gpg_binary(gpg_binary)
    options = ["--no-autostart", "--trust-model", "always", "--no-auto-key-retrieve"]
    signatures: list[Signature] = []
    with _temporary_home(binary) as home:
        gpg = _gpg(binary, home, options, log)
        _import_keys(gpg, key_files)
        for number, block in enumerate(blocks):
            sig_path = home / f"signature-{number}.asc"
            sig_path.write_bytes(block)
            result: Any = gpg.verify_data(str(sig_path), data)
            signatures.extend(parse_status(result.stderr or "", source=source))
    signers = sorted({s.primary for s in signatures} & pinned)
    if len(signers) < threshold:
        others = sorted({s.primary for s in signatures} - pinned)
        found = f"signed by {', '.join(others)}, not pinned; " if others else ""
        raise SignatureError(
            f"{source}: {found}{len(signers)} of the required {threshold} pinned key(s) signed",
            hint=f"pinned: {', '.join(sorted(pinned))}; check trusted-keys and key-files",
        )
    return Verification(signers=tuple(signers), signatures=tuple(signatures))


def sign(
    data: bytes,
    *,
    fingerprint: str,
    gnupghome: Path | None = None,
    gpg_binary: str = "gpg",
    log: Callable[[str], None] | None = None,
) -> bytes:
    """An ASCII-armoured detached binary-mode SHA-512 signature of ``data``.

    Uses the publisher's own GnuPG home (``gnupghome``, else gpg's default: ``GNUPGHOME`` or
    ``~/.gnupg``), the one place where a user keyring is used. ``log`` sees each gpg command line.

    Raises:
        GpgMissingError: gpg cannot be run.
        PublishError: no such secret key, the key is expired or revoked, or signing failed.
    """
    fpr = normalise_fingerprint(fingerprint)
    gpg = _gpg(_gpg_binary(gpg_binary), gnupghome, log=log)
    keys: Any = gpg.list_keys(keys=[fpr])
    key = next((k for k in keys if k.get("fingerprint") == fpr), None)
    if key is None:
        raise PublishError(
            f"no public key with fingerprint {fpr} in the GnuPG home",
            hint="--key takes the full fingerprint of a primary key in GNUPGHOME (or ~/.gnupg)",
        )
    validity = key.get("trust", "")
    expires = key.get("expires") or ""
    now = datetime.now(tz=timezone.utc).timestamp()
    if validity == "r":
        raise PublishError(f"key {fpr} is revoked", hint="sign with a key that is not revoked")
    if validity == "e" or (expires and int(expires) <= now):
        raise PublishError(f"key {fpr} has expired", hint="extend the key's expiry or use another")
    secret: Any = gpg.list_keys(secret=True, keys=[fpr])
    if not any(k.get("fingerprint") == fpr for k in secret):
        raise PublishError(f"no secret key for {fpr} in the GnuPG home")
    result: Any = gpg.sign(
        data, keyid=fpr, detach=True, binary=False, extra_args=["--digest-algo", "SHA512"]
    )
    signed: bytes = result.data or b""
    if not signed.startswith(b"-----BEGIN PGP SIGNATURE-----"):
        detail = (result.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise PublishError(f"gpg could not sign with {fpr}: {detail[0]}")
    return signed
