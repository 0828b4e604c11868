"""The frozen configuration of one run: file, then ``SAFEPIP_*`` environment, then flags.

``safepip.toml`` (keys at top level), else ``[tool.safepip]`` in ``pyproject.toml``, is searched
from the current directory upward. Relative paths in a file are relative to that file; relative
paths from the environment or flags are relative to the current directory.

Unknown keys are refused rather than ignored: in a security tool, a misspelt ``treshold`` that is
silently dropped is a policy the user believes in and does not have.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from safepip.errors import ConfigError
from safepip.fetch import Proxies
from safepip.gpg import normalise_fingerprint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TyposquatMode = Literal["block", "warn", "off"]

DEFAULT_MAX_LIST_BYTES: Final = 8 * 1024 * 1024
_LIST_KEYS: Final = ("trusted-keys", "key-files", "allow-names")
_INT_KEYS: Final = ("threshold", "min-serial", "max-list-bytes", "max-validity-days")
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


def find_config_file(start: Path) -> tuple[Path, str] | None:
    """The nearest ``safepip.toml``, else ``pyproject.toml`` with ``[tool.safepip]``, upward.

    Returns the path and the table name (``""`` for top level, ``"tool.safepip"``).

    Raises:
        ConfigError: a ``pyproject.toml`` on the way is not valid TOML.
    """
    for folder in (start, *start.parents):
        candidate = folder / "safepip.toml"
        if candidate.is_file():
            return candidate, ""
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "safepip" in _read_toml(pyproject).get("tool", {}):
            return pyproject, "tool.safepip"
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _file_values(path: Path, table: str) -> dict[str, Any]:
    data = _read_toml(path)
    if table:
        data = data.get("tool", {}).get("safepip", {})
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{table}] must be a table")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}",
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
) -> Config:
    """Build the run's Config: file < environment < flags.

    ``flags`` maps config keys (``"trusted-keys"``, ``"threshold"``, …) to values; ``None`` means
    "not given". ``cert`` falls back to ``SSL_CERT_FILE``, ``PIP_CERT``, then
    ``REQUESTS_CA_BUNDLE``, so scrubbing pip's environment never loses a CA bundle the user
    relies on.

    Raises:
        ConfigError: unreadable file, unknown key, malformed value, or a key ID as a pin.
    """
    merged: dict[str, Any] = {"base_dir": cwd}
    source = "defaults"
    found = (config_file, "") if config_file is not None else None
    if found is None and use_files:
        found = find_config_file(cwd)
    if found is not None:
        path, table = found
        if table == "" and path.name == "pyproject.toml":
            table = "tool.safepip"
        path = (cwd / path).resolve()
        _apply(merged, _file_values(path, table), str(path), path.parent)
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
