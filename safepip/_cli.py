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
    from safepip.destination import Destination
    from safepip.install import Request, Trust
    from safepip.listcache import ListCache
    from safepip.policy import Rejection
    from safepip.state import TrustState
    from safepip.vet import Artifact, TrustedList

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
    group.add_argument("-i", "--index-url", metavar="URL", help="PEP 503 index serving the wheels")
    group = common.add_argument_group("output and configuration")
    group.add_argument("--format", choices=("text", "json"), **_default("text", suppress))
    group.add_argument("-q", "--quiet", action="count", help="only errors and results")
    group.add_argument(
        "-v", "--verbose", action="count", help="show pip's and gpg's command lines and output"
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


class _Refused(argparse.Action):
    """A pip flag safepip refuses: remembered as spelled, refused once the line is parsed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        refused = getattr(namespace, "pip_refused", None) or []
        namespace.pip_refused = [*refused, option_string or self.dest]


def _pip_install_flags(install: argparse.ArgumentParser) -> None:
    """pip's install flags (DESIGN.md §4; README "pip's flags"): honoured, no-op or refused."""
    from safepip import pipflags  # noqa: PLC0415  (small, data only)

    group = install.add_argument_group("pip's install flags that safepip honours")
    group.add_argument(
        "-U", "--upgrade", action="store_true",
        help="the newest vetted versions the request admits (what every run installs)",
    )  # fmt: skip
    group.add_argument(
        "--upgrade-strategy", choices=("only-if-needed", "eager"),
        help="accepted: safepip resolves the whole closure over the list each run",
    )  # fmt: skip
    group.add_argument(
        "--force-reinstall", action="store_true",
        help="reinstall every vetted distribution, also those installed and identical",
    )  # fmt: skip
    group.add_argument("--no-deps", action="store_true", help="install no dependency")
    group.add_argument(
        "--no-cache-dir", action="store_true", help="neither read nor write the wheel cache"
    )
    group.add_argument("--pre", action="store_true", help="admit pre-release versions")
    group.add_argument(
        "-c", "--constraint", action="append", default=[], type=Path, metavar="FILE",
        help="constraints file (the same strict parser as -r); repeatable",
    )  # fmt: skip
    group.add_argument("--user", action="store_true", help="install into the user site")
    group.add_argument("--prefix", type=Path, metavar="DIR", help="install under this prefix")
    group.add_argument("--root", type=Path, metavar="DIR", help="install relative to this root")
    group.add_argument(
        "--break-system-packages", action="store_true", help="passed to pip (PEP 668)"
    )
    group.add_argument("--no-compile", action="store_true", help="write no .pyc files")
    group.add_argument("--compile", action="store_true", help="write .pyc files (the default)")
    group.add_argument(
        "--report", metavar="FILE", help="write pip's installation report (JSON; - for stdout)"
    )
    group.add_argument(
        "--extra-index-url", action="append", default=[], metavar="URL",
        help="another index to fetch listed wheels from (every byte is still vetted)",
    )  # fmt: skip
    group.add_argument(
        "-f", "--find-links", action="append", default=[], metavar="URL",
        help="a folder or page to fetch listed wheels from (every byte is still vetted)",
    )  # fmt: skip
    group.add_argument("--no-index", action="store_true", help="use only -f sources")
    quiet = install.add_argument_group("pip's install flags accepted as no-ops (see README)")
    for flag in pipflags.NO_OPS:
        if flag.metavar is None:
            quiet.add_argument(*flag.names, dest=flag.dest, action="store_true", help=flag.why)
        else:
            quiet.add_argument(
                *flag.names, dest=flag.dest, action="append", metavar=flag.metavar, help=flag.why
            )
    refused = install.add_argument_group("pip's install flags that safepip refuses (exit 1)")
    for flag in pipflags.REFUSED:
        refused.add_argument(
            *flag.names,
            dest=flag.dest,
            action=_Refused,
            nargs=0 if flag.metavar is None else None,
            metavar=flag.metavar,
            help=flag.why,
        )


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
        "install",
        parents=[common],
        help="vet, then install (a drop-in for pip install)",
        description="Install only wheels whose sha256 is on the signed list: a drop-in for "
        "`pip install` that takes pip's flags (see README). It installs into --python PATH, "
        "else with --system into the first python3 on PATH, else into the active virtual "
        "environment (VIRTUAL_ENV), else into a .venv in the current folder or above; --target, "
        "--prefix, --root and --user put the files there. The list and keys come from "
        "safepip.toml, else [tool.safepip] in pyproject.toml (searched from the current folder "
        "upward), then SAFEPIP_* variables, then flags.",
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
    install.add_argument(
        "--python",
        metavar="PATH",
        help="install into this interpreter, or the environment folder holding bin/python",
    )
    install.add_argument(
        "--system", action="store_true", help="install into the first python3 on PATH"
    )
    install.add_argument(
        "-t", "--target", type=Path, metavar="DIR", help="install into this folder"
    )
    install.add_argument("--dry-run", action="store_true", help="vet and report only")
    _pip_install_flags(install)
    _cache_flags(install, no_cache_dir=False)  # --no-cache-dir is among pip's flags above
    install.add_argument(
        "--installer",
        choices=("pip", "uv"),
        help="what installs the vetted wheels (default: the installer setting, else pip)",
    )

    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="is what is installed what was vetted?",
        description="Check every installed distribution against the list and against the "
        "vetted wheel's own files (not the installed RECORD). Exit 1 on any finding: "
        "not-in-list, modified, missing-file, unknown-file.",
    )
    where = audit.add_mutually_exclusive_group()
    where.add_argument(
        "--python",
        metavar="PATH",
        help="audit this interpreter's environment (default: the active VIRTUAL_ENV, else the "
        "Python running safepip)",
    )
    where.add_argument("--path", type=Path, metavar="DIR", help="audit this site-packages folder")
    audit.add_argument(
        "--exclude", action="append", default=[], metavar="NAME", help="leave out; repeatable"
    )
    _cache_flags(audit)

    shim = commands.add_parser(
        "shim",
        parents=[common],
        help="make an environment's pip install go through safepip",
        description="Put a pip (pip, pip3, pip3.X) in that environment whose `install` runs "
        "`safepip install --python` that interpreter and whose other commands run the real "
        "pip. Not caught: `python -m pip`, programs that import pip (see README).",
    )
    shim.add_argument("--python", required=True, metavar="PATH", help="the environment's Python")
    shim.add_argument("--remove", action="store_true", help="remove the shim, restore pip")

    check = commands.add_parser(
        "check",
        parents=[common],
        help="lock-file verdict for CI",
        description="Judge lock files without installing anything: every line pinned with == "
        "and hashed, each hash bound to a listed file of that name and version, no typosquats, "
        "no unsafe option lines. Offline when the list is a local path or cached.",
    )
    check.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="requirements files (pip-compile, uv) or pylock.toml (PEP 751)",
    )

    lock = commands.add_parser("lock", parents=[common], help="write a hashed lock file")
    lock.add_argument("specs", nargs="*", metavar="SPEC")
    lock.add_argument(
        "-r", "--requirement", action="append", default=[], type=Path, metavar="FILE",
        help="requirements file; repeatable",
    )  # fmt: skip
    lock.add_argument(
        "-o",
        "--output",
        type=_output_file,
        required=True,
        metavar="OUT",
        help="lock file to write: pylock.toml or pylock.NAME.toml (PEP 751), else requirements",
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
    publish.add_argument("wheel_dir", type=Path, metavar="WHEEL_DIR", help="the wheels to list")
    publish.add_argument(
        "--out",
        type=_output_folder,
        required=True,
        metavar="DIR",
        help="where the list, its signature, the wheels and simple/ are written",
    )
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
    build = commands.add_parser(
        "build", parents=[common], help="reproducible wheels from hash-pinned sdists"
    )
    build.add_argument(
        "-r", "--requirement", action="append", default=[], type=Path, metavar="SDISTS",
        required=True, help="sdists to build: name==version --hash=sha256:… lines; repeatable",
    )  # fmt: skip
    build.add_argument(
        "--build-requirements", type=Path, required=True, metavar="POOL",
        help="hashed build-dependency wheels (with --lock-build-deps: the file to write)",
    )  # fmt: skip
    build.add_argument("--out", type=_output_folder, metavar="DIR", help="wheels and sdists here")
    build.add_argument("--find-links", type=Path, metavar="DIR", help="take the files from here")
    build.add_argument("--check", action="store_true", help="build twice and compare")
    build.add_argument(
        "--lock-build-deps", action="store_true",
        help="resolve the sdists' build requirements against the index and write POOL",
    )  # fmt: skip
    return parser


def _config(args: argparse.Namespace, environ: dict[str, str]) -> Config:
    flags: dict[str, Any] = {
        "list": args.list,
        "signature": args.signature,
        "trusted-keys": args.trusted_key,
        "key-files": args.key_file,
        # For install and lock, -i / --index-url is a source taking the configured index's
        # place (pip's meaning); the configured index stays the last one tried.
        "index-url": None if args.command in ("install", "lock") else args.index_url,
        "installer": getattr(args, "installer", None),
    }
    return load(
        cwd=Path.cwd(),
        environ=environ,
        flags=flags,
        config_file=args.config,
        use_files=not args.no_config,
    )


def _state(environ: dict[str, str]) -> TrustState:
    from safepip.state import TrustState, default_state_dir  # noqa: PLC0415

    return TrustState(default_state_dir(environ))


def _cache(environ: dict[str, str]) -> ListCache | None:
    """The cache of verified lists, or ``None`` without a place for it (it is only a copy)."""
    from safepip.errors import FetchError  # noqa: PLC0415
    from safepip.listcache import ListCache, default_cache_dir  # noqa: PLC0415

    try:
        return ListCache(default_cache_dir(environ))
    except FetchError:
        return None


def _list_json(trusted: TrustedList) -> dict[str, Any]:
    header = trusted.hashlist.header
    return {
        "url": trusted.url,
        "serial": header.serial,
        "issued": header.issued.isoformat() if header.issued else None,
        "expires": header.expires.isoformat() if header.expires else None,
        "signers": list(trusted.verification.signers),
    }


def _verify(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import vet  # noqa: PLC0415  (not install: verify needs none of its imports)

    if args.min_remaining is not None and not 0 <= args.min_remaining < 1e6:
        raise UsageError(f"--min-remaining {args.min_remaining:g}: give a number of days")
    now = datetime.now(tz=timezone.utc)
    environ = dict(os.environ)
    trusted = vet.load_trusted_list(
        cfg, now=now, state=_state(environ), log=out.debug, cache=_cache(environ)
    )
    vet.announce(trusted, out)
    if args.min_remaining is not None:
        vet.judge_remaining(trusted, now=now, min_days=args.min_remaining)
    parsed = trusted.hashlist
    header = parsed.header
    wheels = parsed.wheel_count
    vet.commit(trusted, out)  # recorded before the verdict is shown: one verdict, one document
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

    def check_names(names: Iterable[str]) -> list[Rejection]:
        # A publisher about to sign a lookalike into the list is the last place to stop it.
        rejections, warnings = vet.judge_names([(n, None) for n in names], cfg, None)
        for warning in warnings:
            out.warn(warning)
        return rejections

    fingerprint = gpg.normalise_fingerprint(args.key)
    if fingerprint not in cfg.trusted_keys:
        # A usage error: the command line (or safepip.toml) lacks the pin, nothing was judged.
        raise UsageError(
            f"--key {fingerprint} is not pinned in trusted-keys",
            hint="users verify against trusted-keys: pass --trusted-key with that fingerprint "
            "(or add it to trusted-keys in safepip.toml)",
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
        f"published {result.entries} wheels"
        + (f" and {result.sdists} sdists" if result.sdists else "")
        + f" of {result.projects} projects, serial "
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


def _report(out: Output, rejections: Sequence[Rejection]) -> None:
    """Every rejection, one line each: ``file:line: code: message`` (or ``subject: code: …``)."""
    for rejection in rejections:
        where = rejection.location or rejection.subject
        out.result(f"{where}: {rejection.code}: {rejection.message}")


def _vet_document(
    trusted: TrustedList | None,
    artifacts: Sequence[Artifact],
    rejections: Sequence[Rejection],
    code: int,
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
#: What to do about a refusal, by rejection code (most specific first); one hint per kind of
#: problem present, so that an unpinned line is not only told about a typo elsewhere.
_HINTS = (
    ("typosquat", "check the spelling; if the name is genuinely meant, add it to allow-names"),
    ("hash-mismatch", "the index served bytes the list does not vouch for: tell its operator"),
    ("metadata-mismatch", "a wheel's METADATA contradicts its filename: tell the publisher"),
    ("unsupported", "remove the option or requirement form safepip refuses (see README)"),
    ("not-pinned", "pin every line with == and its hashes: `safepip lock` writes such a file"),
    ("no-hash", "pin every line with == and its hashes: `safepip lock` writes such a file"),
)
_LIST_HINT = "only wheels whose sha256 is on the signed list can be installed; ask the publisher"


def _refuse(
    out: Output,
    trusted: TrustedList,
    rejections: Sequence[Rejection],
    artifacts: Sequence[Artifact] = (),
    *,
    outcome: str = ", nothing was installed",
) -> int:
    """Report every rejection, then one error line and a hint for each kind of problem."""
    _report(out, rejections)
    codes = {r.code for r in rejections}
    hints = list(dict.fromkeys(text for code, text in _HINTS if code in codes))
    if codes - {code for code, _ in _HINTS}:
        hints.append(_LIST_HINT)
    out.error(f"refused: {len(rejections)} problem(s){outcome}", hints[0])
    for hint in hints[1:]:
        out.hint(hint)
    out.emit_json(_vet_document(trusted, artifacts, rejections, 1))
    return 1


def _trust(environ: dict[str, str], args: argparse.Namespace | None = None) -> Trust:
    """The stores a run judges and records with; ``args`` of a command that downloads wheels
    (install, lock) add the wheel cache its flags allow."""
    from safepip.install import Trust  # noqa: PLC0415

    wheels = _wheel_cache(args) if args is not None else None
    return Trust(_state(environ), _cache(environ), datetime.now(tz=timezone.utc), wheels)


def _request(args: argparse.Namespace, python: str | None = None) -> Request:
    """The Request of ``install`` or ``lock`` (``lock`` has no install flags: their defaults)."""
    from safepip.install import Request  # noqa: PLC0415

    def flag(name: str, default: Any = None) -> Any:
        return getattr(args, name, default)

    return Request(
        specs=tuple(args.specs),
        files=tuple(args.requirement),
        python=python,
        target=flag("target"),
        timeout=args.timeout,
        dry_run=flag("dry_run", False),
        index_url=flag("index_url"),
        extra_index_urls=tuple(flag("extra_index_url", ())),
        find_links=tuple(_place(link) for link in flag("find_links", ())),
        no_index=flag("no_index", False),
        constraints=tuple(flag("constraint", ())),
        pre=flag("pre", False),
        no_deps=flag("no_deps", False),
        upgrade=flag("upgrade", False),
        force_reinstall=flag("force_reinstall", False),
        user=flag("user", False),
        prefix=flag("prefix"),
        root=flag("root"),
        break_system_packages=flag("break_system_packages", False),
        compile=not flag("no_compile", False),
    )


def _place(link: str) -> str:
    """A ``-f`` place: a URL as given, a local path made absolute (it is relative to the cwd)."""
    return link if "://" in link else str(Path(link).absolute())


def _destination(args: argparse.Namespace, environ: dict[str, str]) -> Destination:
    import shutil  # noqa: PLC0415

    from safepip import destination  # noqa: PLC0415

    where = destination.Where(
        python=args.python,
        system=args.system,
        target=args.target,
        prefix=args.prefix,
        root=args.root,
        user=args.user,
        dry_run=args.dry_run,
    )
    return destination.choose(where, environ=environ, cwd=Path.cwd(), which=shutil.which)


def _wheel_cache(args: argparse.Namespace) -> Any:
    """The wheel cache (:mod:`safepip.cache`) this run may use, or ``None``."""
    from safepip import cache  # noqa: PLC0415

    return cache.configured(
        dict(os.environ),
        disabled=getattr(args, "no_cache_dir", False),
        max_mb=getattr(args, "cache_max_mb", None),
    )


def _cache_flags(parser: argparse.ArgumentParser, *, no_cache_dir: bool = True) -> None:
    if no_cache_dir:
        parser.add_argument(
            "--no-cache-dir", action="store_true", help="neither read nor write the wheel cache"
        )
    parser.add_argument(
        "--cache-max-mb",
        type=_mebibytes,
        metavar="MB",
        help="size cap of the wheel cache, least recently used pruned first (default 2048; "
        "SAFEPIP_CACHE_MAX_MB)",
    )


def _mebibytes(text: str) -> float:
    from safepip.cache import MAX_MB  # noqa: PLC0415

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MiB") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_MB):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of MiB from 0 to {MAX_MB}")
    return value


def _pip_flags(args: argparse.Namespace, out: Output) -> None:
    """Refuse the pip flags safepip refuses (exit 1, naming the flag); note the no-ops."""
    from safepip import pipflags  # noqa: PLC0415
    from safepip.errors import PolicyError  # noqa: PLC0415

    refused = getattr(args, "pip_refused", None)
    if refused:
        why = next(f.why for f in pipflags.REFUSED if refused[0] in f.names)
        raise PolicyError(f"{refused[0]}: refused: {why}", hint=pipflags.REFUSED_HINT)
    for flag in pipflags.NO_OPS:
        if getattr(args, flag.dest, None):
            out.debug(f"{flag.names[-1]}: accepted, nothing to do: {flag.why}")


def _install(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import install  # noqa: PLC0415

    _pip_flags(args, out)
    environ = dict(os.environ)
    place = _destination(args, environ)
    out.debug(f"installing for {place.python or sys.executable} (chosen by {place.how})")
    request = _request(args, place.python)
    outcome = install.install(request, cfg, out, _trust(environ, args), environ)
    if outcome.refused:
        return _refuse(out, outcome.trusted, outcome.rejections, outcome.artifacts)
    artifacts = outcome.artifacts
    if args.report == "-":
        import json  # noqa: PLC0415

        from safepip import interpreter  # noqa: PLC0415

        markers = interpreter.describe(place.python).markers
        out.result(json.dumps(install.report_document(outcome, markers), indent=2))
    elif args.report is not None:
        install.write_report(Path(args.report), outcome, place.python)
    installed = [a for a in artifacts if a.filename not in outcome.kept]
    if args.dry_run:
        for a in artifacts:
            out.result(f"would install {a.name} {a.version} ({a.filename})")
    else:
        for _, findings in outcome.reinstalled:
            first = findings[0]
            more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
            out.result(
                f"reinstalled {first.name} {first.version}: differed from the vetted wheel: "
                f"{first.code} {first.path or ''}{more}".rstrip()
            )
        where = place.describe(args.target or args.prefix or args.root)
        user = " --user" if args.user else ""
        if installed:
            kept = f"; {len(outcome.kept)} already installed and identical" if outcome.kept else ""
            out.result(
                f"installed {len(installed)} vetted package(s): "
                + ", ".join(f"{a.name}=={a.version}" for a in installed)
                + f"{kept} {where}{user}"
            )
        else:
            out.result(
                f"nothing to install: all {len(artifacts)} vetted package(s) are installed and "
                f"byte-identical to their vetted wheels {where}{user}"
            )
    document = _vet_document(outcome.trusted, artifacts, [], 0)
    if not args.dry_run:
        document["installed"] = [a.filename for a in installed]
        document["kept"] = sorted(outcome.kept)
        document["reinstalled"] = [
            {"filename": name, "findings": [f.to_json() for f in findings]}
            for name, findings in outcome.reinstalled
        ]
    out.emit_json(document)
    return 0


def _audit(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from safepip import audit, install, installed, vet  # noqa: PLC0415

    environ = dict(os.environ)
    if args.path is not None:
        env = installed.folder(args.path)
    else:
        env = installed.environment(args.python or _active_python(environ), environ=environ)
    trusted = install.trusted_list(cfg, out, _trust(environ), fallback=True)
    staging = Path(tempfile.mkdtemp(prefix="safepip-"))  # mkdtemp makes it 0700
    try:
        dists = installed.distributions(env.sites, exclude=args.exclude)
        plan = audit.match(dists, trusted.hashlist)
        entries = list({e.filename: e for _, found in plan.pairs for e in found}.values())
        cache = _wheel_cache(args)
        manifests = installed.cached_manifests(entries, cache)  # read in place, re-hashed
        missing = [e for e in entries if e.filename not in manifests]
        with out.progress_bar("fetching vetted wheels", len(missing)) as advance:
            problems = vet.fetch_vetted(
                missing,
                staging / "wheels",
                cfg=cfg,
                cache=cache,
                timeout=args.timeout,
                advance=advance,
                log=out.debug,
            )
        if problems:
            return _refuse(out, trusted, problems)
        for e in missing:
            manifests[e.filename] = installed.manifest(staging / "wheels" / e.filename)
        findings = [*plan.findings, *installed.judge_plan(plan, manifests, env)]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    findings.sort(key=lambda f: (f.name, f.path or "", f.code))
    for finding in findings:
        out.result(finding.line())
    code = 1 if findings else 0
    where = ", ".join(env.sites)
    if findings:
        touched = len({(f.name, f.version) for f in findings})
        out.error(
            f"audit: {len(findings)} finding(s) in {touched} of {len(dists)} distribution(s) "
            f"in {where}",
            "reinstall with `safepip install` (it restores what differs from the vetted wheel);"
            " a distribution not on the list must be removed or listed by the publisher",
        )
    else:
        vet.commit(trusted, out)
        out.result(
            f"ok: {len(dists)} distribution(s) in {where} are byte-identical to vetted wheels"
        )
    out.emit_json(
        {
            "version": 1,
            "list": _list_json(trusted),
            "sites": list(env.sites),
            "distributions": [{"name": d.name, "version": d.version} for d in dists],
            "rejected": [
                {**f.to_json(), "subject": f"{f.name} {f.version}", "location": f.path}
                for f in findings
            ],
            "exit_code": code,
        }
    )
    return code


def _shim(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import shim  # noqa: PLC0415

    environ = dict(os.environ)
    if args.remove:
        done = shim.remove(args.python, environ=environ)
        message = (
            f"removed the safepip shim ({', '.join(done.names)}) from {done.folder}"
            if done.names
            else f"no safepip shim in {done.folder}: nothing to remove"
        )
    else:
        done = shim.install(args.python, safepip_python=sys.executable, environ=environ)
        message = (
            f"{', '.join(done.names)} in {done.folder}: `install` now runs safepip install "
            f"--python {args.python}; other commands run the real pip. Not caught: "
            "`python -m pip` (see README)"
        )
    out.result(message)
    out.emit_json(
        {
            "version": 1,
            "folder": str(done.folder),
            "names": list(done.names),
            "removed": args.remove,
            "exit_code": 0,
        }
    )
    return 0


def _active_python(environ: dict[str, str]) -> str:
    """The interpreter of the active virtual environment, else the one running safepip."""
    venv = environ.get("VIRTUAL_ENV", "")
    if venv and (Path(venv) / "bin" / "python").is_file():
        return str(Path(venv) / "bin" / "python")
    return sys.executable


def _check(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import install  # noqa: PLC0415

    outcome = install.check(args.files, cfg, out, _trust(dict(os.environ)))
    if outcome.refused:
        return _refuse(out, outcome.trusted, outcome.rejections, outcome="")
    out.result(f"ok: {outcome.lines} requirement(s) in {len(args.files)} file(s) vetted")
    out.emit_json(_vet_document(outcome.trusted, [], [], 0))
    return 0


def _lock(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    from safepip import install  # noqa: PLC0415

    outcome = install.lock(_request(args), args.output, cfg, out, _trust(dict(os.environ), args))
    if outcome.refused:
        return _refuse(
            out,
            outcome.trusted,
            outcome.rejections,
            outcome.artifacts,
            outcome=f", {args.output} was not written",
        )
    out.result(f"wrote {args.output}: {len(outcome.artifacts)} pinned and hashed requirement(s)")
    out.emit_json(_vet_document(outcome.trusted, outcome.artifacts, [], 0))
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


def _build(args: argparse.Namespace, cfg: Config, out: Output) -> int:
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from safepip import build, interpreter, requirements  # noqa: PLC0415

    if args.find_links is not None and not args.find_links.is_dir():
        raise UsageError(f"--find-links {args.find_links}: not a folder")
    if args.find_links is None and not cfg.index_url and not cfg.list:
        raise UsageError(
            "no source for the sdists", hint="pass --find-links DIR or --index-url URL"
        )
    if not args.lock_build_deps and args.out is None:
        raise UsageError("--out DIR is required", hint="name the folder for wheels and sdists")
    parsed = requirements.parse_files(args.requirement)
    if parsed.rejections:
        first = parsed.rejections[0]
        raise UsageError(f"{first.location}: {first.message}")
    sdists = build.wanted(parsed.lines, "SDISTS")
    source = build.Source(
        find_links=args.find_links,
        index_url=None if args.find_links is not None else cfg.index(),
        base_dir=cfg.base_dir,
        cafile=cfg.cert,
        proxies=cfg.proxies,
        timeout=args.timeout,
    )
    target = interpreter.running()
    work = Path(tempfile.mkdtemp(prefix="safepip-build-"))
    try:
        if args.lock_build_deps:
            from safepip import buildlock  # noqa: PLC0415

            pool_text, count = buildlock.lock(
                sdists, source, work_dir=work, target=target, environ=dict(os.environ),
                progress=out.info, log=out.debug,
            )  # fmt: skip
            try:
                args.build_requirements.write_text(pool_text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {args.build_requirements}: {exc}") from exc
            out.result(f"wrote {args.build_requirements}: {count} hashed build dependencies")
            out.emit_json({"version": 1, "pool": str(args.build_requirements), "exit_code": 0})
            return 0
        pool_parsed = requirements.parse_files([args.build_requirements])
        if pool_parsed.rejections:
            first = pool_parsed.rejections[0]
            raise UsageError(f"{first.location}: {first.message}")
        (work / "pool").mkdir()
        pool = build.fetch_pool(
            source, build.wanted(pool_parsed.lines, "POOL"), work / "pool", target
        )
        out.info(f"pool: {len(pool.listed.entries)} build-dependency wheels, sha256 checked")
        built = build.build_all(
            sdists, source, pool, out_dir=args.out, work_dir=work, target=target,
            check=args.check, environ=dict(os.environ), progress=out.info, log=out.debug,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [("project", "version", "backend", "seconds", "identical", "wheel sha256")]
    for b in built:
        same = "-" if b.identical is None else "yes" if b.identical else "no"
        rows.append((b.name, b.version, b.backend, f"{b.seconds:.1f}", same, b.wheel_sha256))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out.result(
        "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        )
        + f"\nwheels and sdists in {args.out}: publish them with `safepip publish {args.out}`"
    )
    out.emit_json(
        {
            "version": 1,
            "built": [
                {
                    "name": b.name,
                    "version": b.version,
                    "sdist": b.sdist,
                    "sdist_sha256": b.sdist_sha256,
                    "wheel": b.wheel,
                    "wheel_sha256": b.wheel_sha256,
                    "backend": b.backend,
                    "seconds": round(b.seconds, 2),
                    "identical": b.identical,
                }
                for b in built
            ],
            "exit_code": 0,
        }
    )
    return 0


HANDLERS: dict[str, Handler] = {
    "verify": _verify,
    "publish": _publish,
    "install": _install,
    "check": _check,
    "lock": _lock,
    "names": _names,
    "build": _build,
    "audit": _audit,
    "shim": _shim,
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
        args, unknown = build_parser().parse_known_args(argv)
        if unknown and args.command and argv.index(args.command) > 0:
            # pip takes its options before the command too (`pip --no-cache-dir install …`);
            # every flag is accepted after the command, so move the command first.
            where = argv.index(args.command)
            argv = [args.command, *argv[:where], *argv[where + 1 :]]
            args, unknown = build_parser().parse_known_args(argv)
        if unknown:
            command = f" {args.command}" if args.command else ""
            # The hint names the command's own help: the top level lists no install flags.
            raise UsageError(
                f"unrecognized arguments: {' '.join(unknown)}",
                hint=f"see `safepip{command} --help`",
            )
        if args.command is None:
            build_parser().print_help(sys.stderr)
            raise UsageError("no command given", hint="see `safepip --help`")
        out.format = args.format
        out.quiet = bool(args.quiet)
        out.verbose = bool(args.verbose)
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
