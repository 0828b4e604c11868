"""The frozen configuration of one run: file, then ``SAFEPIP_*`` environment, then flags.

``safepip.toml`` (keys at top level), else ``[tool.safepip]`` in ``pyproject.toml``, is searched
from the current directory upward; a file found that way holds trust roots, so it is used only
when the user (or root) alone could have written it. Relative paths in a file are relative to
that file; relative paths from the environment or flags are relative to the current directory.

Unknown keys are refused rather than ignored: in a security tool, a misspelt ``treshold`` that is
silently dropped is a policy the user believes in and does not have.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from safepip.errors import ConfigError
from safepip.fetch import Proxies
from safepip.files import RegularFile, read_regular
from safepip.gpg import normalise_fingerprint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TyposquatMode = Literal["block", "warn", "off"]
#: What installs the vetted wheels: pip (always there), or uv (the optional extra safepip[uv]).
Installer = Literal["pip", "uv"]
INSTALLERS: Final = ("pip", "uv")

#: 16 MiB: a list of 100,000 wheels is about 9.9 MB, and must fit the defaults (issue #10).
DEFAULT_MAX_LIST_BYTES: Final = 16 * 1024 * 1024
MAX_CONFIG_BYTES: Final = 1024 * 1024  # a pyproject.toml is a few KiB; more is not a config
#: The most ``max-validity-days`` (and ``publish --expires``) may say: 100 years is no expiry
#: worth the name already, and dates much further away overflow ``datetime``.
MAX_VALIDITY_DAYS: Final = 36_500
_LIST_KEYS: Final = ("trusted-keys", "key-files", "allow-names")
_INT_KEYS: Final = (
    "threshold",
    "min-serial",
    "max-list-bytes",
    "max-validity-days",
    "warn-expiry-days",
)
_PATH_KEYS: Final = ("cert", "popular-names")
_KEYS: Final = (
    "list",
    "signature",
    "index-url",
    "trusted-keys",
    "key-files",
    "threshold",
    "min-serial",
    "require-freshness",
    "typosquat",
    "allow-names",
    "max-list-bytes",
    "max-validity-days",
    "cert",
    "popular-names",
    "warn-expiry-days",
    "installer",
)


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know, validated. ``base_dir`` anchors relative list paths."""

    list: str | None = None
    signature: str | None = None
    index_url: str | None = None
    trusted_keys: tuple[str, ...] = ()
    key_files: tuple[Path, ...] = ()
    threshold: int = 1
    min_serial: int = 0
    require_freshness: bool = True
    typosquat: TyposquatMode = "block"
    allow_names: tuple[str, ...] = ()
    max_list_bytes: int = DEFAULT_MAX_LIST_BYTES
    max_validity_days: int = 365
    cert: str | None = None
    popular_names: Path | None = None
    warn_expiry_days: int = 7
    installer: Installer = "pip"
    base_dir: Path = field(default_factory=Path.cwd)
    source: str = "defaults"
    #: https_proxy / no_proxy of the environment, for safepip's own fetches (DESIGN.md §3).
    proxies: Proxies = field(default_factory=Proxies)

    def list_source(self) -> str:
        """The list's URL or path.

        Raises:
            ConfigError: no list is configured.
        """
        if not self.list:
            raise ConfigError(
                "no list configured",
                hint="set `list` in safepip.toml, SAFEPIP_LIST, or pass --list",
            )
        return self.list

    def signature_source(self) -> str:
        """The signature's URL or path: ``signature``, else the list's with ``.asc`` added."""
        return self.signature or f"{self.list_source()}.asc"

    def index(self) -> str:
        """The PEP 503 index URL: ``index-url``, else the list's folder + ``simple/``."""
        if self.index_url:
            return self.index_url.rstrip("/") + "/"
        source = self.list_source()
        if "://" in source:
            return source.rsplit("/", 1)[0] + "/simple/"
        folder = (self.base_dir / source).resolve().parent
        return (folder / "simple").as_uri() + "/"

    def require_trust(self) -> None:
        """Check that the pins needed to verify a list are present.

        Raises:
            ConfigError: no list, no trusted keys, no key files, or a threshold above the pins.
        """
        self.list_source()
        if not self.trusted_keys:
            raise ConfigError(
                "no trusted-keys configured",
                hint="pin the publisher's 40-hex primary fingerprint(s) in trusted-keys",
            )
        if not self.key_files:
            raise ConfigError(
                "no key-files configured",
                hint="key-files lists the armoured public key files holding the pinned keys",
            )
        if self.threshold > len(self.trusted_keys):
            raise ConfigError(
                f"threshold {self.threshold} is above the {len(self.trusted_keys)} pinned key(s)"
            )


@dataclass(frozen=True)
class Owner:
    """The user a config file found by the search must belong to (or root), and their group."""

    uid: int
    gid: int

    @staticmethod
    def current() -> Owner | None:
        """This process's effective user and group; ``None`` where the OS has no uids."""
        if not hasattr(os, "geteuid"):  # pragma: no cover - Windows
            return None
        return Owner(os.geteuid(), os.getegid())


def distrust(*, uid: int, gid: int, mode: int, user: Owner) -> str | None:
    """Why a file of this owner, group and mode is not one only ``user`` (or root) could have
    written, or ``None`` when it is. Pure: the caller hands in ``fstat``'s values.

    Owned by the user or root, and writable by neither others nor a group other than the
    user's own: the rule git applies to a repository's owner, plus the mode bits, since a
    world-writable file is anyone's file whoever owns it.
    """
    if uid not in (user.uid, 0):
        return f"is owned by uid {uid}, neither you (uid {user.uid}) nor root"
    if mode & stat.S_IWOTH:
        return f"is writable by others (mode {stat.S_IMODE(mode):04o})"
    if mode & stat.S_IWGRP and gid != user.gid:
        return f"is writable by group {gid}, not your own (mode {stat.S_IMODE(mode):04o})"
    return None


@dataclass(frozen=True)
class ConfigFile:
    """A config file as read: its path, its table (``""`` or ``"tool.safepip"``), its TOML."""

    path: Path
    table: str
    document: dict[str, Any]


def find_config_file(start: Path, *, user: Owner | None) -> ConfigFile | None:
    """The nearest ``safepip.toml``, else ``pyproject.toml`` with ``[tool.safepip]``, upward.

    A config file holds trust roots, so the one found must be a file ``user`` could have
    written alone (:func:`distrust`); ``user=None`` (no uids on this OS) skips that check. A
    ``pyproject.toml`` that is not the user's is read only to learn whether it declares
    ``[tool.safepip]``: when it cannot be read, is not valid TOML or has no such table, it is
    not a safepip config file and the search goes on, so that a broken ``/tmp/pyproject.toml``
    someone else left does not break every run below ``/tmp``. A folder or FIFO carrying one
    of the names is not a config file either (and is never opened).

    Raises:
        ConfigError: the file found is not the user's (owner or mode), or is the user's and
            cannot be read or is not valid TOML.
    """
    for folder in (start, *start.parents):
        for name, table in (("safepip.toml", ""), ("pyproject.toml", "tool.safepip")):
            found = _candidate(folder / name, table, user)
            if found is not None:
                return found
    return None


def _candidate(path: Path, table: str, user: Owner | None) -> ConfigFile | None:
    """The config file at ``path``, ``None`` when there is none (see :func:`find_config_file`).

    Raises:
        ConfigError: as :func:`find_config_file`.
    """
    try:
        link = path.lstat()
        target = path.stat()
    except OSError:
        return None  # nothing there, a dangling link, or a link we may not follow
    if not stat.S_ISREG(target.st_mode):
        return None
    # A symlink's own mode means nothing, but whoever owns it chose what it points at.
    reason = (
        distrust(uid=link.st_uid, gid=user.gid, mode=0, user=user)
        if user is not None and stat.S_ISLNK(link.st_mode)
        else None
    )
    try:
        opened = read_regular(path, what="config file", max_bytes=MAX_CONFIG_BYTES)
    except ConfigError:
        # Judged on ownership first: a file we would not trust anyway is refused (or, for a
        # pyproject.toml, passed over) for that, not for being unreadable.
        reason = reason or (_distrust(target, user) if user is not None else None)
        if reason is None:
            raise
        _not_trusted(path, table, None, reason)
        return None
    if reason is None and user is not None:
        reason = _distrust(opened.status, user)  # what was read, not what was stat'ed before
    if reason is not None:
        _not_trusted(path, table, opened, reason)
        return None
    document = _parse_toml(opened)
    if table and not _declares_safepip(document):
        return None
    return ConfigFile(path, table, document)


def _not_trusted(path: Path, table: str, opened: RegularFile | None, reason: str) -> None:
    """Refuse a config file the user could not have written alone, unless it is a
    ``pyproject.toml`` that is no safepip config file at all.

    Raises:
        ConfigError: a ``safepip.toml``, or a ``pyproject.toml`` declaring ``[tool.safepip]``.
    """
    if table:
        # Everyone has a pyproject.toml: someone else's is a safepip config file only if it
        # declares [tool.safepip] (then it is refused); otherwise it is none of our business.
        try:
            if opened is None or not _declares_safepip(_parse_toml(opened)):
                return None
        except ConfigError:
            return None
    hint = (
        f"if the file is yours, `chmod go-w {path}`"
        if "writable" in reason
        else f"if the file is yours, `chown $(id -u) {path}`; if not, remove it"
    )
    raise ConfigError(
        f"config file {path} {reason}: refusing to trust it",
        hint=f"{hint}; or name a config file with --config FILE, or pass --no-config",
    )


def _distrust(status: os.stat_result, user: Owner) -> str | None:
    return distrust(uid=status.st_uid, gid=status.st_gid, mode=status.st_mode, user=user)


def _declares_safepip(document: Mapping[str, Any]) -> bool:
    tool = document.get("tool")
    return isinstance(tool, dict) and "safepip" in tool


def _parse_toml(file: RegularFile) -> dict[str, Any]:
    """The TOML document in ``file``.

    Raises:
        ConfigError: it is not UTF-8 or not valid TOML (nesting too deep or a number too long
            for Python included).
    """
    try:
        document: dict[str, Any] = tomllib.loads(file.data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file.path} is not UTF-8: {exc}") from exc
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{file.path} is not valid TOML: {exc}") from exc
    return document


def _file_values(found: ConfigFile) -> dict[str, Any]:
    data: object = found.document
    if found.table:
        tool = found.document.get("tool", {})
        data = tool.get("safepip", {}) if isinstance(tool, dict) else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{found.path}: [{found.table}] must be a table")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{found.path}: unknown key(s) {', '.join(unknown)}",
            hint=f"known keys: {', '.join(_KEYS)}",
        )
    return dict(data)


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _KEYS:
        raw = environ.get("SAFEPIP_" + key.upper().replace("-", "_"), "")
        if raw:  # set but empty counts as unset, as pip does with PIP_* variables
            values[key] = (
                [p for p in raw.replace(",", " ").split() if p] if key in _LIST_KEYS else raw
            )
    return values


def _as_int(key: str, value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer, not {value!r}")
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be an integer, not {value!r}") from None
    lowest = 1 if key in ("threshold", "max-list-bytes", "max-validity-days") else 0
    if number < lowest:
        raise ConfigError(f"{where}: {key} must be at least {lowest}, not {number}")
    if key == "max-validity-days" and number > MAX_VALIDITY_DAYS:
        raise ConfigError(f"{where}: {key} must be at most {MAX_VALIDITY_DAYS}, not {number}")
    return number


def _as_bool(key: str, value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")


def _as_list(key: str, value: object, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{where}: {key} must be a list of strings")


def _convert(key: str, value: object, where: str, base: Path) -> object:
    """One validated value from one source.

    Raises:
        ConfigError: the value has the wrong type or is out of range.
    """
    if key in _INT_KEYS:
        return _as_int(key, value, where)
    if key == "require-freshness":
        return _as_bool(key, value, where)
    if key in _LIST_KEYS:
        items = _as_list(key, value, where)
        if key == "key-files":
            return tuple(base / item for item in items)
        if key == "trusted-keys":
            return tuple(normalise_fingerprint(item) for item in items)
        return tuple(items)
    if key == "typosquat" and value not in ("block", "warn", "off"):
        raise ConfigError(f"{where}: typosquat must be block, warn or off, not {value!r}")
    if key == "installer" and value not in INSTALLERS:
        raise ConfigError(
            f"{where}: installer must be pip or uv, not {value!r}",
            hint="installer = \"uv\" needs the optional extra: pip install 'safepip[uv]'",
        )
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    if key in _PATH_KEYS:
        return base / value
    return value


def _apply(merged: dict[str, Any], values: Mapping[str, Any], where: str, base: Path) -> None:
    """Validate ``values`` from one source and lay them over ``merged``."""
    for key, value in values.items():
        if value is None:
            continue
        merged[key] = _convert(key, value, where, base)
        if key == "list":
            merged["base_dir"] = base  # a relative list path is relative to where it was set


def load(
    *,
    cwd: Path,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    config_file: Path | None = None,
    use_files: bool = True,
    user: Owner | None = None,
) -> Config:
    """Build the run's Config: file < environment < flags.

    ``flags`` maps config keys (``"trusted-keys"``, ``"threshold"``, …) to values; ``None`` means
    "not given". ``cert`` falls back to ``SSL_CERT_FILE``, ``PIP_CERT``, then
    ``REQUESTS_CA_BUNDLE``, so scrubbing pip's environment never loses a CA bundle the user
    relies on.

    ``config_file`` (``--config``) is used whoever owns it; a file found by the search must be
    ``user``'s (default: this process's effective user) or root's and writable by no one else
    (:func:`find_config_file`). Either is opened as a regular file only.

    Raises:
        ConfigError: unreadable, non-regular or untrusted file, unknown key, malformed value, or
            a key ID as a pin.
    """
    merged: dict[str, Any] = {"base_dir": cwd}
    source = "defaults"
    found: ConfigFile | None = None
    if config_file is not None:
        # Named by the user, so used whoever owns it; still opened as a regular file only.
        path = (cwd / config_file).resolve()
        opened = read_regular(path, what="config file", max_bytes=MAX_CONFIG_BYTES)
        table = "tool.safepip" if path.name == "pyproject.toml" else ""
        found = ConfigFile(path, table, _parse_toml(opened))
    elif use_files:
        found = find_config_file(cwd, user=user if user is not None else Owner.current())
    if found is not None:
        path = found.path.resolve()
        _apply(merged, _file_values(found), str(path), path.parent)
        source = str(path)
    _apply(merged, _environment_values(environ), "environment", cwd)
    _apply(merged, flags, "command line", cwd)
    if "cert" not in merged:
        fallback = (
            environ.get("SSL_CERT_FILE")
            or environ.get("PIP_CERT")
            or environ.get("REQUESTS_CA_BUNDLE")
        )
        if fallback:
            merged["cert"] = fallback
    if merged.get("cert") is not None:
        merged["cert"] = str(merged["cert"])
    fields = {key.replace("-", "_"): value for key, value in merged.items()}
    return Config(source=source, proxies=Proxies.from_environ(environ), **fields)
