"""Sign and verify detached signatures against pinned keys: the only module that uses python-gnupg.

Verification runs in a fresh temporary GNUPGHOME that holds nothing but the configured key files,
with ``--no-autostart`` so that no agent or dirmngr (hence no keyserver) is ever involved. The
user's keyring, ``GNUPGHOME`` and ``gpg.conf`` never count.

Every signature is judged on its own from gpg's machine-readable status lines, never from
python-gnupg's summary ``valid`` flag, which reflects only the last signature gpg reported.
Verification runs gpg itself (:func:`_gpg_command`): each run needs a deadline, which
python-gnupg does not offer, and a python-gnupg handle costs an import and a ``gpg`` run of its
own on every ``verify``. Signing and the publisher's key listing go through python-gnupg.

Key rotation (DESIGN.md §2): a signature by a key that is not pinned (absent from the key files,
or present but not pinned) is *ignored*, as TUF and apt ignore unknown keys, so that a publisher
can co-sign with a new key while clients move their pins; :attr:`Verification.ignored` says which
and why. A signature by a pinned key that is not good (bad, expired, by an expired or revoked key,
weak digest, text mode, or unverifiable because the key files lack that key), a signature that
does not match the list whoever made it (``BADSIG``: the bytes were changed after signing), or
fewer than ``threshold`` good pinned signatures refuses the list. A list signed only by unpinned
keys therefore still fails (THREATS.md A): it has no good pinned signature.

Cost is bounded: identical signature blocks are judged once, more distinct blocks than
:func:`max_signature_blocks` are refused before gpg runs, and all of a list's verifications share
one deadline (:data:`VERIFY_DEADLINE`), after which gpg is killed and the list refused.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from safepip.errors import (
    ConfigError,
    GpgMissingError,
    PublishError,
    SafepipError,
    SignatureError,
)
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
#: Seconds that all the gpg verifications of one list may take together (each takes ~10 ms).
VERIFY_DEADLINE: Final = 30.0
#: A key import names each key it took: ``IMPORT_OK <reason> <fingerprint>``.
_IMPORTED_RE: Final = re.compile(rb"^\[GNUPG:\] IMPORT_OK [0-9]+ [0-9A-F]{40}\r?$", re.MULTILINE)
# Sealed, the in-memory copy gpg reads can no longer change in any way.
_SEALS: Final = (
    getattr(fcntl, "F_SEAL_WRITE", 0)
    | getattr(fcntl, "F_SEAL_SHRINK", 0)
    | getattr(fcntl, "F_SEAL_GROW", 0)
    | getattr(fcntl, "F_SEAL_SEAL", 0)
)
#: gpg's ERRSIG return code for "no public key": a signer absent from the key files.
_NO_PUBKEY_RC: Final = "9"


@dataclass(frozen=True)
class Signature:
    """One good signature: the (sub)key that made it, its primary key, and when."""

    fingerprint: str
    primary: str
    created: datetime
    digest: str


@dataclass(frozen=True)
class Ignored:
    """A signature that did not count: its key (primary fingerprint, or key ID) and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class Verification:
    """The outcome of a successful verification.

    ``signers`` are the distinct pinned primary fingerprints that signed, sorted;
    ``signatures`` the good pinned signatures; ``ignored`` the signatures by keys not pinned.
    """

    signers: tuple[str, ...]
    signatures: tuple[Signature, ...]
    ignored: tuple[Ignored, ...] = ()


def max_signature_blocks(threshold: int, pins: int) -> int:
    """How many distinct signature blocks one list may carry: enough for every pinned key, the
    keys being rotated in, and a margin; few enough that judging them all stays quick."""
    return 2 * max(threshold, pins) + 8


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


def _gpg(binary: str, home: Path | None, log: Callable[[str], None] | None = None) -> gnupg.GPG:
    """A python-gnupg handle on ``binary`` and ``home``; ``log`` sees each gpg command line.

    Raises:
        GpgMissingError: gpg cannot be run.
    """
    import gnupg  # noqa: PLC0415  (lazy: python-gnupg costs tens of milliseconds to import)

    try:
        handle = gnupg.GPG(
            gpgbinary=binary,
            gnupghome=str(home) if home is not None else None,
            env=_environment(home) if home is not None else None,
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


def parse_status(
    status: str, *, source: str, pinned: frozenset[str] | None = None
) -> list[Signature | Ignored]:
    """Judge each signature reported in gpg ``--status-fd`` output (pure).

    ``pinned`` are the pinned primary fingerprints (``None``: every key counts as pinned). Returns
    one :class:`Signature` per good pinned signature and one :class:`Ignored` per signature by a key
    that is not pinned.

    Raises:
        SignatureError: no signature, a signature that does not match the data, any signature by a
            pinned key that is not good, weak or text-mode, or signed data inside the signature
            (an attached message).
    """
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
    return [_judge_one(group, source, pinned) for group in groups]


def _is_pinned(key: str | None, pinned: frozenset[str] | None) -> bool:
    """Whether ``key`` (a fingerprint or a 16-hex key ID) may be a pinned key; unknown: yes."""
    if pinned is None or key is None:
        return True  # fail closed: what cannot be attributed is judged as pinned
    key = key.upper()
    return any(fpr == key or (fpr.endswith(key) and len(key) >= 16) for fpr in pinned)


def _judge_errsig(
    keywords: dict[str, list[str]], source: str, pinned: frozenset[str] | None
) -> Ignored:
    """A signature gpg could not check: ignored when its key is simply unknown and not pinned.

    Raises:
        SignatureError: it was made by a pinned key (missing from the key files), or gpg could not
            check it for another reason (an unsupported algorithm, say).
    """
    err = keywords["ERRSIG"]
    # ERRSIG <keyid> <pkalgo> <hashalgo> <class> <time> <rc> [<issuer fingerprint>]
    issuer = err[6] if len(err) >= 7 and len(err[6]) == 40 else (err[0] if err else None)
    missing = len(err) >= 6 and err[5] == _NO_PUBKEY_RC and "NO_PUBKEY" in keywords
    if missing and not _is_pinned(issuer, pinned):
        return Ignored(issuer or "?", "its key is not in the key files and not pinned")
    if missing:
        raise SignatureError(
            f"{source}: {_BAD_STATUS['ERRSIG']}: pinned key {issuer} is not in the key files",
            hint="add the pinned key's public key file to key-files",
        )
    raise SignatureError(f"{source}: {_BAD_STATUS['ERRSIG']} (key {issuer or '?'})")


def _judge_one(
    group: list[list[str]], source: str, pinned: frozenset[str] | None
) -> Signature | Ignored:
    keywords = {words[0]: words[1:] for words in group}
    valid = keywords.get("VALIDSIG", [])
    considered = keywords.get("KEY_CONSIDERED", [])
    # The primary key of the signer: from VALIDSIG when gpg could check the signature, else
    # from KEY_CONSIDERED (gpg names the primary key it looked at).
    primary = valid[9] if len(valid) >= 10 else (considered[0] if considered else None)
    if "BADSIG" in keywords:
        # Whoever made it, the list is not what was signed: a change after signing.
        key = keywords["BADSIG"][0] if keywords["BADSIG"] else "?"
        raise SignatureError(f"{source}: {_BAD_STATUS['BADSIG']} (key {key})")
    if "ERRSIG" in keywords:
        return _judge_errsig(keywords, source, pinned)
    for keyword, reason in _BAD_STATUS.items():
        if keyword in keywords:
            key = keywords[keyword][0] if keywords[keyword] else "?"
            if not _is_pinned(primary, pinned):
                return Ignored(primary or key, f"not pinned ({reason})")
            raise SignatureError(f"{source}: {reason} (key {key})")
    if "GOODSIG" not in keywords or "VALIDSIG" not in keywords:
        raise SignatureError(f"{source}: a signature was not reported good by gpg")
    if len(valid) < 10:
        raise SignatureError(f"{source}: gpg reported a malformed VALIDSIG line")
    fingerprint, timestamp, digest_id, sig_class = valid[0], valid[2], valid[7], valid[8]
    if not _is_pinned(primary, pinned):
        return Ignored(valid[9], "not pinned")
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
    return Signature(fingerprint, valid[9], created, _STRONG_DIGESTS[digest_id])


def _gpg_command(binary: str, home: Path, *args: str) -> list[str]:
    """A gpg command line on the private ``home``: batch mode, status lines on stderr, no agent
    started, no key fetched, and every key the home holds taken as valid (the pins decide)."""
    return [
        binary,
        "--homedir",
        str(home),
        "--status-fd",
        "2",
        "--no-tty",
        "--no-verbose",
        "--batch",
        "--no-autostart",
        "--trust-model",
        "always",
        "--no-auto-key-retrieve",
        *args,
    ]


def _environment(home: Path) -> dict[str, str]:
    """gpg's whole environment: the C locale (status lines are parsed) and the private home."""
    return {"LC_ALL": "C", "LANG": "C", "GNUPGHOME": str(home)}


def _import_keys(
    binary: str,
    home: Path,
    key_files: Sequence[Path],
    *,
    log: Callable[[str], None] | None,
    end: float,
    deadline: float,
    source: str,
) -> None:
    """Import each key file into ``home``, one gpg run each, killed at ``end``.

    Raises:
        ConfigError: a key file cannot be read or holds no OpenPGP public key.
        GpgMissingError: gpg cannot be run.
        SignatureError: the deadline passed.
    """
    for path in key_files:
        key = read_regular(path, what="key file", max_bytes=_MAX_KEY_FILE_BYTES).data
        command = _gpg_command(binary, home, "--import")
        if log is not None:
            log(shlex.join(command))
        try:
            done = subprocess.run(
                command,
                input=key,
                capture_output=True,
                env=_environment(home),
                timeout=max(end - time.monotonic(), 0.0),
                check=False,
            )
        except OSError as exc:
            raise GpgMissingError(f"cannot run {binary}: {exc}") from exc
        except subprocess.TimeoutExpired:
            raise _too_slow(source, deadline) from None
        if not _IMPORTED_RE.search(done.stderr):
            raise ConfigError(f"key file {path} holds no OpenPGP public key")


def _too_slow(source: str, deadline: float) -> SignatureError:
    return SignatureError(
        f"{source}: verifying the signatures took longer than {deadline:g} s",
        hint="gpg was stopped; try again, and tell the publisher if it persists",
    )


@contextmanager
def _data_file(data: bytes, home: Path) -> Iterator[tuple[str, tuple[int, ...]]]:
    """A path gpg can read ``data`` from, and the descriptors gpg must inherit for it.

    On Linux a sealed in-memory file: nothing can change the bytes once written, and writing
    them costs no disk. Elsewhere, or where memfd or sealing is refused (a seccomp profile), a
    file in the private ``home``.
    """
    fd = _sealed_memfd(data)
    if fd is None:
        path = home / "data"
        path.write_bytes(data)
        yield str(path), ()
        return
    try:
        yield f"/proc/self/fd/{fd}", (fd,)
    finally:
        os.close(fd)


def _sealed_memfd(data: bytes) -> int | None:
    """A descriptor (3 or above) of a sealed in-memory file holding ``data``, or ``None``."""
    try:
        fd = os.memfd_create("safepip-list", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError):
        return None
    try:
        if fd < 3:
            # Started with stdin, stdout or stderr closed, the memfd takes that number: in gpg
            # it would become /dev/null or one of gpg's own pipes.
            above = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            os.close(fd)
            fd = above
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        if Path(f"/proc/self/fd/{fd}").exists():  # else gpg cannot open it by name
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


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
    deadline: float = VERIFY_DEADLINE,
) -> Verification:
    """Verify ``signature`` (one or more detached signatures) over the exact bytes ``data``.

    Signatures by keys that are not pinned are ignored (:attr:`Verification.ignored`); every
    signature by a pinned key must be good, and the distinct pinned primary fingerprints among the
    signers must number at least ``threshold``. Identical blocks are judged once; more distinct
    blocks than :func:`max_signature_blocks` are refused, and all gpg runs together must finish
    within ``deadline`` seconds. ``log`` sees each gpg command line.

    Raises:
        GpgMissingError: gpg cannot be run.
        ConfigError: a key file cannot be read or holds no key.
        SignatureError: a signature does not match the data; a pinned key's signature is bad,
            expired, by an expired or revoked key, weak, text-mode or attached; fewer than
            ``threshold`` pinned keys signed; too many blocks; or the deadline passed.
    """
    with verifying(
        data,
        signature,
        key_files=key_files,
        trusted=trusted,
        threshold=threshold,
        source=source,
        gpg_binary=gpg_binary,
        log=log,
        deadline=deadline,
    ) as pending:
        pass
    return pending.verification


class PendingVerification:
    """What :func:`verifying` yields: :attr:`verification` once its block has ended well."""

    def __init__(self) -> None:
        self._verification: Verification | None = None

    @property
    def verification(self) -> Verification:
        """The signatures' verdict.

        Raises:
            RuntimeError: read inside the ``with`` block, before gpg's verdict is in.
        """
        if self._verification is None:
            raise RuntimeError("the verification is read before its with-block ended")
        return self._verification


@contextmanager
def verifying(
    data: bytes,
    signature: bytes,
    *,
    key_files: Sequence[Path],
    trusted: Sequence[str],
    threshold: int,
    source: str = "the signature",
    gpg_binary: str = "gpg",
    log: Callable[[str], None] | None = None,
    deadline: float = VERIFY_DEADLINE,
) -> Iterator[PendingVerification]:
    """:func:`verify`, with gpg running while the ``with`` block runs.

    gpg reads ``data`` from a file in the private GNUPGHOME, so the caller's block (parsing a
    100,000-entry list takes longer than gpg) runs on the other core meanwhile. The verdict is
    judged when the block ends, and it comes first: a block that raises a
    :class:`~safepip.errors.SafepipError` (say, a malformed list) still waits for gpg, and a bad
    signature is what is raised. Any other exception (Ctrl-C) stops gpg at once.

    Raises:
        The errors of :func:`verify`, when the block is entered or when it ends.
    """
    pinned = frozenset(normalise_fingerprint(fpr) for fpr in trusted)
    # Duplicates count once: a block repeated thousands of times costs one gpg run, not thousands.
    blocks = list(dict.fromkeys(split_armor(signature, source=source)))
    limit = max_signature_blocks(threshold, len(pinned))
    if len(blocks) > limit:
        raise SignatureError(
            f"{source} holds {len(blocks)} distinct signature blocks; at most {limit} are judged "
            f"for {len(pinned)} pinned key(s) and threshold {threshold}",
            hint="a publisher signs once per key; this many blocks is a denial-of-service attempt "
            "or a broken signature file: tell the publisher",
        )
    binary = _gpg_binary(gpg_binary)
    end = time.monotonic() + deadline
    pending = PendingVerification()
    with _temporary_home(binary) as home:
        _import_keys(binary, home, key_files, log=log, end=end, deadline=deadline, source=source)
        running: list[subprocess.Popen[bytes]] = []
        with _data_file(data, home) as (data_path, pass_fds):
            try:
                for number, block in enumerate(blocks):
                    sig_path = home / f"signature-{number}.asc"
                    sig_path.write_bytes(block)
                    command = _gpg_command(binary, home, "--verify", str(sig_path), data_path)
                    running.append(_start_verify(command, home, pass_fds, log))
                try:
                    yield pending
                except SafepipError:
                    # The caller's own refusal waits for gpg: a bad signature is the first reason.
                    _judge(running, pinned, threshold, end=end, deadline=deadline, source=source)
                    raise
                pending._verification = _judge(
                    running, pinned, threshold, end=end, deadline=deadline, source=source
                )
            finally:
                for process in running:
                    if process.poll() is None:
                        process.kill()
                    process.wait()


def _start_verify(
    command: list[str],
    home: Path,
    pass_fds: tuple[int, ...],
    log: Callable[[str], None] | None,
) -> subprocess.Popen[bytes]:
    """gpg checking one detached signature, started (its verdict is read by :func:`_judge`).

    Raises:
        GpgMissingError: gpg cannot be started.
    """
    if log is not None:
        log(shlex.join(command))
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_environment(home),
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise GpgMissingError(f"cannot run {command[0]}: {exc}") from exc


def _judge(
    running: Sequence[subprocess.Popen[bytes]],
    pinned: frozenset[str],
    threshold: int,
    *,
    end: float,
    deadline: float,
    source: str,
) -> Verification:
    """Wait for every gpg run (killed at ``end``) and judge their status lines together.

    Raises:
        SignatureError: the deadline passed, a pinned key's signature is not good, or fewer than
            ``threshold`` pinned keys signed.
    """
    judged: list[Signature | Ignored] = []
    for process in running:
        try:
            _, stderr = process.communicate(timeout=max(end - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            raise _too_slow(source, deadline) from None
        judged.extend(
            parse_status(stderr.decode("utf-8", errors="replace"), source=source, pinned=pinned)
        )
    signatures = [j for j in judged if isinstance(j, Signature)]
    ignored = [j for j in judged if isinstance(j, Ignored)]
    signers = sorted({s.primary for s in signatures} & pinned)
    if len(signers) < threshold:
        others = sorted({i.key for i in ignored})
        found = f"signed by {', '.join(others)}, not pinned; " if others else ""
        raise SignatureError(
            f"{source}: {found}{len(signers)} of the required {threshold} pinned key(s) signed",
            hint=f"pinned: {', '.join(sorted(pinned))}; check trusted-keys and key-files",
        )
    return Verification(
        signers=tuple(signers), signatures=tuple(signatures), ignored=tuple(ignored)
    )


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
