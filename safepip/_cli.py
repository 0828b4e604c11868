"""Command line: argv → Config → dispatch. The only module that prints, reads env or exits."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from safepip import __version__
from safepip._output import Output
from safepip.config import Config, load
from safepip.errors import SafepipError, UsageError

if TYPE_CHECKING:
    from safepip.policy import Rejection

Handler = Callable[[argparse.Namespace, Config, Output], int]


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as safepip does: one line, a hint, exit 2."""

    def error(self, message: str) -> Any:
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def _common(*, suppress: bool) -> _Parser:
    """The common flags. On subcommands they default to SUPPRESS so that a flag given before
    the command (``safepip -q check``) is not overwritten by the subcommand's default."""
    common = _Parser(add_help=False, argument_default=argparse.SUPPRESS if suppress else None)
    group = common.add_argument_group("list and keys")
    group.add_argument("--list", metavar="URL", help="URL or path of the signed list")
    group.add_argument("--signature", metavar="URL", help="URL or path of its signature")
    group.add_argument(
        "--trusted-key", action="append", metavar="FPR", help="pinned 40-hex fingerprint"
    )
    group.add_argument(
        "--key-file", action="append", metavar="FILE", help="armoured public key file"
    )
    group.add_argument("--index-url", metavar="URL", help="PEP 503 index serving the wheels")
    group = common.add_argument_group("output and configuration")
    group.add_argument("--format", choices=("text", "json"), **_default("text", suppress))
    group.add_argument("-q", "--quiet", action="store_true", help="only errors and results")
    group.add_argument(
        "-v", "--verbose", action="store_true", help="show pip and gpg command lines"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--color", choices=("auto", "always", "never"), **_default("auto", suppress))
    group.add_argument("--config", metavar="FILE", type=Path, help="use this config file")
    group.add_argument(
        "--timeout",
        type=_seconds,
        **_default(900.0, suppress),
        metavar="SECONDS",
        help="total deadline for the downloads of one run (default 900)",
    )
    group.add_argument("--no-config", action="store_true", help="read no config file")
    return common


def _default(value: object, suppress: bool) -> dict[str, Any]:
    return {"default": argparse.SUPPRESS} if suppress else {"default": value}


#: The longest ``--timeout``: a week is already no deadline; far larger numbers (``inf``,
#: ``1e300``) overflow the clocks and sockets they are handed to.
MAX_TIMEOUT = 7 * 24 * 3600.0


# argparse type functions: bad values are usage errors here, at the edge, never an overflow
# deep inside a run (argparse turns ArgumentTypeError into "argument --x: <message>").


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of seconds above 0 and at most {MAX_TIMEOUT:.0f}"
        )
    return value


def _duration(text: str) -> Any:
    from safepip.publish import parse_duration  # noqa: PLC0415  (lazy: publish only)

    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: name the file to write")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {path.parent} does not exist")
    return path


def _output_folder(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def build_parser() -> argparse.ArgumentParser:
    """The whole argparse tree (DESIGN.md §4); common flags go before or after the command."""
    common = _common(suppress=True)
    parser = _Parser(
        parents=[_common(suppress=False)],
        prog="safepip",
        description="Install only Python wheels whose sha256 is on a GPG-signed list.",
        epilog="exit codes: 0 ok, 1 refused by policy, 2 usage, 3 list not trustworthy, "
        "4 pip failed, 101 internal error, 130 interrupted",
    )
    parser.add_argument("-V", "--version", action="version", version=f"safepip {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    install = commands.add_parser(
        "install", parents=[common], help="vet, then install (a drop-in for pip install)"
    )
    install.add_argument("specs", nargs="*", metavar="SPEC", help="requirement, e.g. idna==3.10")
    install.add_argument(
        "-r",
        "--requirement",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="requirements file (strict subset of pip's syntax); repeatable",
    )
    install.add_argument("--python", metavar="PATH", help="install into this interpreter")
    install.add_argument("--target", type=Path, metavar="DIR", help="install into this folder")
    install.add_argument("--dry-run", action="store_true", help="vet and report only")
    install.add_argument(
        "--installer",
        choices=("pip", "uv"),
        help="what installs the vetted wheels (default: the installer setting, else pip)",
    )
    install.add_argument(
        "--no-compile", action="store_true", help="do not byte-compile what was installed"
    )

    check = commands.add_parser("check", parents=[common], help="lock-file verdict for CI")
    check.add_argument("files", nargs="*", type=Path, metavar="FILE")

    lock = commands.add_parser("lock", parents=[common], help="write a hashed lock file")
    lock.add_argument("specs", nargs="*", metavar="SPEC")
    lock.add_argument(
        "-r", "--requirement", action="append", default=[], type=Path, metavar="FILE",
        help="requirements file; repeatable",
    )  # fmt: skip
    lock.add_argument(
        "-o", "--output", type=_output_file, required=True, metavar="OUT", help="lock file to write"
    )

    names = commands.add_parser("names", parents=[common], help="typosquat verdict for names")
    names.add_argument("names", nargs="+", metavar="NAME", help="names, or - to read stdin")

    verify = commands.add_parser("verify", parents=[common], help="fetch and verify the list")
    verify.add_argument(
        "--min-remaining",
        type=float,
        metavar="DAYS",
        help="exit 3 when the list expires sooner than this (for monitoring)",
    )

    publish = commands.add_parser(
        "publish", parents=[common], help="hash wheels, write and sign the list and index"
    )
    publish.add_argument("wheel_dir", type=Path, metavar="WHEEL_DIR")
    publish.add_argument("--out", type=_output_folder, required=True, metavar="DIR")
    publish.add_argument("--key", required=True, metavar="FPR", help="signing key fingerprint")
    publish.add_argument(
        "--expires", default="30d", type=_duration, help="validity, e.g. 30d or 12h"
    )
    publish.add_argument(
        "--serial", type=int, help="serial (default: one above the served list's, or the clock)"
    )
    publish.add_argument(
        "--from",
        dest="served_from",
        metavar="URL",
        help="the list now served, for the next serial (default: the configured list)",
    )
    return parser


def _config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    flags: dict[str, Any] = {
        "list": args.list,
        "signature": args.signature,
        "trusted-keys": args.trusted_key,
        "key-files": args.key_file,
        "index-url": args.index_url,
        "installer": getattr(args, "installer", None),
    }
    return load(
        cwd=Path.cwd(),
        environ=environ,
        flags=flags,
        config_file=args.config,
        use_files=not args.no_config,
    )


def _state(environ: dict[str, str]) -> Any:
    from safepip.state import TrustState, default_state_dir  # noqa: PLC0415

    return TrustState(default_state_dir(environ))


def _cache(environ: dict[str, str]) -> Any:
    """The cache of verified lists, or ``None`` without a place for it (it is only a copy)."""
    from safepip.errors import FetchError  # noqa: PLC0415
    from safepip.listcache import ListCache, default_cache_dir  # noqa: PLC0415

    try:
        return ListCache(default_cache_dir(environ))
    except FetchError:
        return None


def _announce(trusted: Any, out: Output) -> None:
    """The list's warnings, and (with -v) the signatures that were ignored and why."""
    for warning in trusted.warnings:
        out.warn(warning)
    for ignored in trusted.verification.ignored:
        out.debug(f"ignored a signature by {ignored.key}: {ignored.reason}")


def _commit(trusted: Any, out: Output) -> None:
    """The command succeeded: record the list's serial (and cache it). A refusal never gets here."""
    for warning in trusted.commit():
        out.warn(warning)


def _list_json(trusted: Any) -> dict[str, Any]:
    header = trusted.hashlist.header
    return {
        "url": trusted.url,
        "serial": header.serial,
        "issued": header.issued.isoformat() if header.issued else None,
        "expires": header.expires.isoformat() if header.expires else None,
        "signers": list(trusted.verification.signers),
    }


def _verify(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import vet  # noqa: PLC0415

    if args.min_remaining is not None and not 0 <= args.min_remaining < 1e6:
        raise UsageError(f"--min-remaining {args.min_remaining:g}: give a number of days")
    now = datetime.now(tz=timezone.utc)
    environ = dict(os.environ)
    trusted = vet.load_trusted_list(
        cfg, now=now, state=_state(environ), log=out.debug, cache=_cache(environ)
    )
    _announce(trusted, out)
    if args.min_remaining is not None:
        vet.judge_remaining(trusted, now=now, min_days=args.min_remaining)
    parsed = trusted.hashlist
    header = parsed.header
    wheels = parsed.wheel_count
    _commit(trusted, out)  # recorded before the verdict is shown: one verdict, one document
    out.result(
        "\n".join(
            [
                f"list:     {trusted.url}",
                f"serial:   {header.serial if header.serial is not None else '(legacy list)'}",
                f"issued:   {header.issued.isoformat() if header.issued else '-'}",
                f"expires:  {header.expires.isoformat() if header.expires else '-'}",
                f"signers:  {', '.join(trusted.verification.signers)}",
                f"entries:  {parsed.count} ({wheels} wheels, {parsed.count - wheels} sdists)",
            ]
        )
    )
    out.emit_json(
        {
            "version": 1,
            "list": _list_json(trusted),
            "entries": parsed.count,
            "wheels": wheels,
            "exit_code": 0,
        }
    )
    return 0


def _publish(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import gpg, publish, vet  # noqa: PLC0415
    from safepip.errors import PublishError  # noqa: PLC0415

    def check_names(names: Iterable[str]) -> list[Rejection]:
        # A publisher about to sign a lookalike into the list is the last place to stop it.
        rejections, warnings = vet.judge_names([(n, None) for n in names], cfg, None)
        for warning in warnings:
            out.warn(warning)
        return rejections

    fingerprint = gpg.normalise_fingerprint(args.key)
    if fingerprint not in cfg.trusted_keys:
        raise PublishError(
            f"key {fingerprint} is not pinned in trusted-keys",
            hint="users verify against trusted-keys: add the key there (or pass --trusted-key)",
        )
    if args.out.is_dir() and publish.finish_interrupted(args.out):
        out.warn(f"completed the list and signature an interrupted publish left in {args.out}")
    served = _served(args, cfg, out)
    now = datetime.now(tz=timezone.utc).replace(microsecond=0)
    result = publish.publish(
        args.wheel_dir,
        args.out,
        fingerprint=fingerprint,
        now=now,
        expires_in=args.expires,
        max_validity_days=cfg.max_validity_days,
        serial=args.serial,
        served=served,
        check_names=check_names,
        log=out.debug,
    )
    if cfg.key_files:
        # Prove that what we wrote verifies with the key files users are given.
        gpg.verify(
            result.list_path.read_bytes(),
            result.signature_path.read_bytes(),
            key_files=cfg.key_files,
            trusted=[fingerprint],
            threshold=1,
            source=str(result.signature_path),
            log=out.debug,
        )
    out.result(
        f"published {result.entries} wheels of {result.projects} projects, serial "
        f"{result.serial}, expires {result.expires.isoformat()}\n"
        f"list:  {result.list_path}\nindex: {result.list_path.parent / 'simple'}/"
    )
    out.emit_json(
        {
            "version": 1,
            "list": str(result.list_path),
            "signature": str(result.signature_path),
            "serial": result.serial,
            "expires": result.expires.isoformat(),
            "entries": result.entries,
            "exit_code": 0,
        }
    )
    return 0


def _served(args: argparse.Namespace, cfg: Config, out: Output) -> Any:
    """The list served now (``--from``, else the configured list), for the next serial."""
    from safepip import publish  # noqa: PLC0415
    from safepip.errors import ConfigError  # noqa: PLC0415

    source = args.served_from or cfg.list
    if not source:
        out.info("no served list (--from or list) to continue from: the serial is the UTC time")
        return None
    if not cfg.key_files or not cfg.trusted_keys:
        raise ConfigError(
            f"cannot check the list served at {source}: no key-files or trusted-keys",
            hint="the next serial comes from the served list; pass --key-file and --trusted-key",
        )
    served = publish.read_served(
        source,
        f"{source}.asc" if args.served_from else cfg.signature_source(),
        base_dir=None if args.served_from else cfg.base_dir,
        key_files=cfg.key_files,
        trusted=cfg.trusted_keys,
        max_bytes=cfg.max_list_bytes,
        cafile=cfg.cert,
        log=out.debug,
    )
    if served is None:
        out.info(f"nothing is served at {source} yet: the serial is the UTC time")
    else:
        serial = "a legacy list" if served.serial is None else f"serial {served.serial}"
        out.info(f"served now: {source} ({serial})")
    return served


def _report(out: Output, rejections: Sequence[Any]) -> None:
    """Every rejection, one line each: ``file:line: code: message`` (or ``subject: code: …``)."""
    for rejection in rejections:
        where = rejection.location or rejection.subject
        out.result(f"{where}: {rejection.code}: {rejection.message}")


def _vet_document(
    trusted: Any, artifacts: Sequence[Any], rejections: Sequence[Any], code: int
) -> dict[str, Any]:
    return {
        "version": 1,
        "list": _list_json(trusted) if trusted is not None else None,
        "artifacts": [a.to_json() for a in artifacts],
        "rejected": [
            {"code": r.code, "subject": r.subject, "message": r.message, "location": r.location}
            for r in rejections
        ],
        "exit_code": code,
    }


#: What to do about a refusal, by the first rejection code present (most specific first).
_HINTS = (
    ("typosquat", "check the spelling; if the name is genuinely meant, add it to allow-names"),
    ("hash-mismatch", "the index served bytes the list does not vouch for: tell its operator"),
    ("metadata-mismatch", "a wheel's METADATA contradicts its filename: tell the publisher"),
    ("unsupported", "remove the option or requirement form safepip refuses (see README)"),
    ("not-pinned", "pin every line with == and its hashes: `safepip lock` writes such a file"),
    ("no-hash", "pin every line with == and its hashes: `safepip lock` writes such a file"),
)


def _refuse(
    out: Output, trusted: Any, rejections: Sequence[Any], artifacts: Sequence[Any] = ()
) -> int:
    _report(out, rejections)
    codes = {r.code for r in rejections}
    hint = next(
        (text for code, text in _HINTS if code in codes),
        "only wheels whose sha256 is on the signed list can be installed; ask the publisher",
    )
    out.error(f"refused: {len(rejections)} problem(s), nothing was installed", hint)
    out.emit_json(_vet_document(trusted, artifacts, rejections, 1))
    return 1


def _requirements(args: argparse.Namespace) -> Any:
    from safepip import requirements  # noqa: PLC0415
    from safepip.requirements import ParsedRequirements  # noqa: PLC0415

    files = requirements.parse_files(args.requirement) if args.requirement else None
    specs = requirements.parse_specs(args.specs) if args.specs else None
    parts = [p for p in (files, specs) if p is not None]
    if not parts:
        raise UsageError("nothing to do: give requirement specs or -r FILE")
    return ParsedRequirements(
        lines=tuple(line for p in parts for line in p.lines),
        rejections=tuple(r for p in parts for r in p.rejections),
    )


def _trusted(cfg: Config, out: Output, *, fallback: bool = False) -> Any:
    """The verified list; ``fallback``: from the cache when its server cannot be reached."""
    from safepip import vet  # noqa: PLC0415

    environ = dict(os.environ)
    trusted = vet.load_trusted_list(
        cfg,
        now=datetime.now(tz=timezone.utc),
        state=_state(environ),
        log=out.debug,
        cache=_cache(environ),
        fallback=fallback,
    )
    _announce(trusted, out)
    out.info(f"list: {trusted.describe()}")
    return trusted


def _resolve(
    args: argparse.Namespace,
    cfg: Config,
    out: Output,
    lines: Sequence[Any],
    *,
    trusted: Any,
    staging: Path,
) -> tuple[list[Any], list[Any], bool]:
    """The artifacts to install and the rejections: locked fast path, else the in-process
    resolver over vetted metadata. Returns (artifacts, rejections, locked); for the resolver
    path the wheels are already downloaded and hash-checked into ``staging / "wheels"``."""
    from safepip import interpreter, resolve, vet  # noqa: PLC0415
    from safepip.wheelstore import WheelStore  # noqa: PLC0415

    listed = trusted.hashlist
    target = interpreter.describe(getattr(args, "python", None))
    if vet.is_locked(lines):
        planned, rejections = vet.plan_locked(lines, listed, target)
        if rejections:
            return [], rejections, True
        urls = vet.locate(
            [e for e, _ in planned],
            index_url=cfg.index(),
            cafile=cfg.cert,
            base_dir=cfg.base_dir,
            proxies=cfg.proxies,
            log=out.debug,
        )
        artifacts = [
            vet.Artifact(e.name, e.version, e.filename, e.sha256, urls[e.filename], extras)
            for e, extras in planned
        ]
        return artifacts, [], True
    wheels = staging / "wheels"
    wheels.mkdir(mode=0o700)
    out.info(f"resolving {len(lines)} requirement(s) against the list's wheels")
    with WheelStore(
        wheels,
        index_url=cfg.index(),
        cafile=cfg.cert,
        base_dir=cfg.base_dir,
        timeout=args.timeout,
        proxies=cfg.proxies,
        on_download=lambda entry: out.debug(f"fetched and hash-checked {entry.filename}"),
        log=out.debug,
    ) as store:
        try:
            resolution, rejections = resolve.resolve(
                resolve.requested(lines, target),
                listed,
                target,
                metadata=store.metadata,
                prefetch=store.prefetch,
            )
        except resolve.Refused as refused:
            return [], [refused.rejection], False
        if resolution is None:
            return [], rejections, False
        artifacts = [
            vet.Artifact(e.name, e.version, e.filename, e.sha256, store.url(e), extras)
            for e, extras in resolution.chosen
        ]
    store.discard_except([e for e, _ in resolution.chosen])  # after every download stopped
    return artifacts, [], False


def _vet(
    args: argparse.Namespace, cfg: Config, out: Output, staging: Path
) -> tuple[Any, list[Any], list[Any]]:
    """Steps 1-6 of DESIGN.md §5; returns (trusted list, artifacts, rejections)."""
    from safepip import interpreter, policy, vet  # noqa: PLC0415

    parsed = _requirements(args)
    trusted = _trusted(cfg, out)
    rejections = list(parsed.rejections)
    names = [(line.name, line.location) for line in parsed.lines]
    typos, warnings = vet.judge_names(names, cfg, trusted.hashlist)
    for warning in warnings:
        out.warn(warning)
    rejections.extend(typos)
    # A lookalike name is reported as that, not also as "not on the list".
    flagged = {r.subject for r in typos}
    unflagged = [line for line in parsed.lines if line.name not in flagged]
    rejections.extend(
        policy.judge_request(unflagged, trusted.hashlist, locked=vet.is_locked(parsed.lines))
    )
    if rejections:  # before any request reaches the index
        return trusted, [], rejections
    artifacts, problems, locked = _resolve(
        args, cfg, out, parsed.lines, trusted=trusted, staging=staging
    )
    if problems:
        return trusted, artifacts, _lookalikes_named(problems, cfg, trusted, out)
    if not locked:  # the resolver fetched, hash-checked and read every wheel it chose
        return trusted, artifacts, []
    wheels = staging / "wheels"
    wheels.mkdir(mode=0o700)
    with out.progress_bar("downloading", len(artifacts)) as advance:
        problems = vet.download_all(
            artifacts,
            wheels,
            cafile=cfg.cert,
            timeout=args.timeout,
            advance=advance,
            proxies=cfg.proxies,
        )
    # A refused download leaves a hole in the closure; judging it would only add noise.
    target = interpreter.describe(getattr(args, "python", None))
    problems += vet.check_wheels(
        artifacts, wheels, closure=not problems, environment=target.markers
    )
    return trusted, artifacts, _lookalikes_named(problems, cfg, trusted, out)


def _lookalikes_named(problems: list[Any], cfg: Config, trusted: Any, out: Output) -> list[Any]:
    """Transitive names, judged after resolution: a missing lookalike is called a typosquat."""
    from safepip import vet  # noqa: PLC0415

    relabelled, warnings = vet.name_lookalikes(problems, cfg, trusted.hashlist)
    for warning in warnings:
        out.warn(warning)
    return relabelled


def _install(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from safepip import bytecode, target, vet  # noqa: PLC0415

    install_wheels = _installer(cfg)  # a missing uv is a usage error before anything is fetched
    staging = Path(tempfile.mkdtemp(prefix="safepip-"))  # mkdtemp makes it 0700
    try:
        trusted, artifacts, rejections = _vet(args, cfg, out, staging)
        if rejections:
            return _refuse(out, trusted, rejections, artifacts)
        if args.dry_run:
            _commit(trusted, out)
            for a in artifacts:
                out.result(f"would install {a.name} {a.version} ({a.filename})")
            out.emit_json(_vet_document(trusted, artifacts, [], 0))
            return 0
        generated = staging / "vetted.txt"
        generated.write_text(vet.requirements_text(artifacts), encoding="utf-8")
        out.info(
            f"all {len(artifacts)} wheel(s) vetted; {cfg.installer} installs them "
            "with --require-hashes"
        )
        # Asked before pip installs: the compile step then runs without `site`, so that no .pth
        # file or sitecustomize of the packages installed runs (pip never runs them either).
        layout = bytecode.target_layout(
            args.python, args.target, environ=dict(os.environ), log=out.debug
        )
        if args.target is None:
            install_wheels(
                staging / "wheels",
                generated,
                python_target=args.python,
                target_dir=None,
                environ=dict(os.environ),
                log=out.debug,
            )
        else:
            # pip installs into an empty folder inside the target, then safepip merges it in.
            with target.staging(args.target) as place:
                install_wheels(
                    staging / "wheels",
                    generated,
                    python_target=args.python,
                    target_dir=place.pip_dir,
                    environ=dict(os.environ),
                    log=out.debug,
                )
                merged = target.merge(place)
            for warning in merged.warnings:
                out.warn(warning)
            for old in merged.old_versions:
                out.info(f"removed {old} and the files its RECORD names from {args.target}")
        if not args.no_compile:
            compiled = bytecode.compile_installed(
                [staging / "wheels" / a.filename for a in artifacts],
                layout,
                environ=dict(os.environ),
                log=out.debug,
            )
            out.debug(f"byte-compiled {compiled.compiled} of {compiled.sources} .py file(s)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _commit(trusted, out)
    out.result(
        f"installed {len(artifacts)} vetted package(s): "
        + ", ".join(f"{a.name}=={a.version}" for a in artifacts)
    )
    out.emit_json(_vet_document(trusted, artifacts, [], 0))
    return 0


def _installer(cfg: Config) -> Callable[..., None]:
    """``pip.install`` or ``uv.install`` (same signature), as ``installer`` says.

    Raises:
        UsageError: installer is uv and the optional extra safepip[uv] is not installed.
    """
    if cfg.installer == "uv":
        import functools  # noqa: PLC0415

        from safepip import uv  # noqa: PLC0415

        return functools.partial(uv.install, uv_binary=uv.find_uv())
    from safepip import pip  # noqa: PLC0415

    return pip.install


def _check(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import policy, requirements, vet  # noqa: PLC0415

    if not args.files:
        raise UsageError("no requirements file given", hint="safepip check requirements.txt")
    parsed = requirements.parse_files(args.files)
    trusted = _trusted(cfg, out, fallback=True)
    rejections = list(parsed.rejections)
    typos, warnings = vet.judge_names(
        [(line.name, line.location) for line in parsed.lines], cfg, trusted.hashlist
    )
    for warning in warnings:
        out.warn(warning)
    rejections.extend(typos)
    # A lookalike line is reported as that, not also as not on the list (as install does).
    flagged = {(r.subject, r.location) for r in typos}
    for line in parsed.lines:
        if (line.name, line.location) not in flagged:
            rejections.extend(policy.judge_lock_line(line, trusted.hashlist))
    rejections.sort(key=lambda r: _location_key(r.location))
    if rejections:
        return _refuse(out, trusted, rejections)
    _commit(trusted, out)
    out.result(f"ok: {len(parsed.lines)} requirement(s) in {len(args.files)} file(s) vetted")
    out.emit_json(_vet_document(trusted, [], [], 0))
    return 0


def _location_key(location: str | None) -> tuple[str, int]:
    if not location or ":" not in location:
        return (location or "", 0)
    path, _, line = location.rpartition(":")
    return (path, int(line) if line.isdigit() else 0)


def _lock(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from safepip import policy, vet  # noqa: PLC0415

    staging = Path(tempfile.mkdtemp(prefix="safepip-"))
    try:
        parsed = _requirements(args)
        trusted = _trusted(cfg, out)
        rejections = list(parsed.rejections)
        typos, warnings = vet.judge_names(
            [(line.name, line.location) for line in parsed.lines], cfg, trusted.hashlist
        )
        for warning in warnings:
            out.warn(warning)
        rejections.extend(typos)
        flagged = {r.subject for r in typos}
        unflagged = [line for line in parsed.lines if line.name not in flagged]
        rejections.extend(
            policy.judge_request(unflagged, trusted.hashlist, locked=vet.is_locked(parsed.lines))
        )
        if rejections:
            return _refuse(out, trusted, rejections)
        artifacts, rejections, _ = _resolve(
            args, cfg, out, parsed.lines, trusted=trusted, staging=staging
        )
        rejections = _lookalikes_named(rejections, cfg, trusted, out)
        if rejections:
            return _refuse(out, trusted, rejections, artifacts)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    lines = [
        f"# generated by safepip lock from {trusted.url} (serial {trusted.hashlist.header.serial})"
    ]
    for artifact in sorted(artifacts, key=lambda a: a.name):
        # Every listed wheel of that exact version: the lock file then works on every platform
        # the list covers. The hashes come from the list, never from the index.
        hashes = sorted(
            e.sha256
            for e in trusted.hashlist.for_project(artifact.name)
            if e.kind == "wheel" and e.version == artifact.version
        )
        options = "".join(f" \\\n    --hash=sha256:{h}" for h in hashes)
        lines.append(f"{artifact.name}=={artifact.version}{options}")
    try:
        args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:  # checked when parsed, but permissions or a full disk remain
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    _commit(trusted, out)
    out.result(f"wrote {args.output}: {len(artifacts)} pinned and hashed requirement(s)")
    out.emit_json(_vet_document(trusted, artifacts, [], 0))
    return 0


def _names(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    from safepip.typosquat import TyposquatIndex  # noqa: PLC0415

    raw = sys.stdin.read().split() if args.names == ["-"] else list(args.names)
    reference = (
        TyposquatIndex.from_file(cfg.popular_names)
        if cfg.popular_names is not None
        else TyposquatIndex.bundled()
    )
    verdicts = []
    for name in raw:
        if not name.isascii():
            raise UsageError(f"{name!r} is not an ASCII project name", hint="PyPI names are ASCII")
        verdicts.append(reference.check(canonicalize_name(name), known=cfg.allow_names))
    suspicious = [v for v in verdicts if v.verdict == "typosquat"]
    for v in verdicts:
        out.result(
            f"{v.name}: typosquat of {v.similar_to} ({v.reason})"
            if v.verdict == "typosquat"
            else f"{v.name}: ok"
        )
    code = 1 if suspicious else 0
    out.emit_json({"version": 1, "names": [v.to_json() for v in verdicts], "exit_code": code})
    return code


HANDLERS: dict[str, Handler] = {
    "verify": _verify,
    "publish": _publish,
    "install": _install,
    "check": _check,
    "lock": _lock,
    "names": _names,
}


def _format_in(argv: Sequence[str]) -> Literal["text", "json"]:
    """The ``--format`` that ``argv`` asks for (the last one wins, as in argparse), read
    without argparse: ``--format json``, ``--format=json`` or an abbreviation (``--form``)."""
    found: Literal["text", "json"] = "text"
    words = iter(argv)
    for word in words:
        if word == "--":
            break
        name, equals, value = word.partition("=")
        if len(name) < 3 or not "--format".startswith(name):
            continue
        value = value if equals else next(words, "")
        if value == "json":
            found = "json"
        elif value == "text":
            found = "text"
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run safepip with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    with _first_interrupt_only():
        return _main(argv)


@contextlib.contextmanager
def _first_interrupt_only() -> Iterator[None]:
    """Ctrl-C raises ``KeyboardInterrupt`` once; later ones are ignored while the run cleans up.

    The first interrupt starts the clean-up (downloads cancelled, partial files and the staging
    folder removed, pip's session stopped); a second, impatient one would cut it short and print
    a traceback. The clean-up is bounded (a few seconds at most), so nothing waits on it for long.
    After an interrupt SIGINT stays ignored: the process is ending, and Python's finalisation
    would otherwise restore the default action and let a late Ctrl-C kill it half-way. Only in
    the main thread, and only where Python's own handler is in place.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    interrupted = False

    def on_interrupt(signum: int, frame: object) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN if interrupted else signal.default_int_handler)


def _main(argv: Sequence[str] | None) -> int:
    environ = dict(os.environ)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Known before argparse runs, so that a usage error of a JSON run is a JSON document too.
    out = Output(format=_format_in(argv), no_color_env="NO_COLOR" in environ)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            raise UsageError("no command given", hint="see `safepip --help`")
        out.format = args.format
        out.quiet = args.quiet
        out.verbose = args.verbose
        out.color = args.color
        out.progress = not args.no_progress
        cfg = _config(args, environ)
        return HANDLERS[args.command](args, cfg, out)
    except SafepipError as exc:
        out.error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.hint)
        if out.verbose and exc.__cause__ is not None:
            out.debug(f"cause: {exc.__cause__!r}")
        out.emit_json(
            {
                "version": 1,
                "error": {"message": str(exc), "hint": exc.hint, "kind": type(exc).__name__},
                "exit_code": exc.exit_code,
            }
        )
        return exc.exit_code
    except KeyboardInterrupt:
        out.error("interrupted", None)
        return 130
    except Exception as exc:  # a bug: say so in one line, never a bare traceback for users
        out.error(f"internal error: {exc!r}", "this is a bug in safepip; report it with -v output")
        if out.verbose:
            import traceback  # noqa: PLC0415

            traceback.print_exc(file=sys.stderr)
        return 101


if __name__ == "__main__":
    sys.exit(main())
