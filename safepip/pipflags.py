"""pip's ``install`` flags that safepip takes as they are, so that existing lines only change
``pip`` to ``safepip`` (DESIGN.md §4). Pure data: the CLI builds its parser from it, the README's
table is checked against it.

Three kinds, besides the flags safepip honours with its own code (defined in the CLI):

- ``no-op``: safepip already does what the flag asks (wheels only, hashes always required,
  no cache of pip's, no build, no version check …), or the flag only tunes pip's own output or
  network retries, which safepip does not use. Accepted and ignored (``-v`` says so).
- ``refused``: it would install what the signed list cannot vouch for (an editable or source
  build). Refused with the flag named, exit 1, before anything is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True)
class PipFlag:
    """One pip flag: its spellings, whether it takes a value, what safepip does with it."""

    names: tuple[str, ...]
    kind: Literal["no-op", "refused"]
    why: str
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return "pip_" + self.names[-1].lstrip("-").replace("-", "_")


_WHEELS = "safepip installs wheels only"
_HASHES = "safepip always requires every file's hash (from the signed list)"
_NO_BUILD = "safepip never builds: build options have nothing to act on"
_PIP_UI = "only tunes pip's own output; safepip runs pip quietly and reports itself"
_NET = "safepip's downloads have their own total deadline (--timeout) and no retries"

NO_OPS: Final = (
    PipFlag(("--require-hashes",), "no-op", _HASHES),
    PipFlag(("--only-binary",), "no-op", _WHEELS, "FORMATS"),
    PipFlag(("--prefer-binary",), "no-op", _WHEELS),
    PipFlag(("--cache-dir",), "no-op", "safepip gives pip no cache", "DIR"),
    PipFlag(("--no-build-isolation",), "no-op", _NO_BUILD),
    PipFlag(("--use-pep517",), "no-op", _NO_BUILD),
    PipFlag(("--no-use-pep517",), "no-op", _NO_BUILD),
    PipFlag(("--check-build-dependencies",), "no-op", _NO_BUILD),
    PipFlag(("-C", "--config-settings"), "no-op", _NO_BUILD, "SETTING"),
    PipFlag(("--global-option",), "no-op", _NO_BUILD, "OPTION"),
    PipFlag(("--no-clean",), "no-op", _NO_BUILD),
    PipFlag(("--disable-pip-version-check",), "no-op", "safepip's pip never checks its version"),
    PipFlag(("--no-python-version-warning",), "no-op", _PIP_UI),
    PipFlag(("--no-warn-script-location",), "no-op", _PIP_UI),
    PipFlag(("--no-warn-conflicts",), "no-op", _PIP_UI),
    PipFlag(("--root-user-action",), "no-op", _PIP_UI, "ACTION"),
    PipFlag(("--progress-bar",), "no-op", _PIP_UI + " (--no-progress is safepip's)", "MODE"),
    PipFlag(("--no-color",), "no-op", _PIP_UI + " (--color never is safepip's)"),
    PipFlag(("--no-input",), "no-op", "safepip never prompts"),
    PipFlag(("--isolated",), "no-op", "safepip always runs pip isolated from pip's config"),
    PipFlag(("--exists-action",), "no-op", "safepip never prompts", "ACTION"),
    PipFlag(("-I", "--ignore-installed"), "no-op", "safepip reinstalls from the vetted wheels"),
    PipFlag(("--trusted-host",), "no-op", "every byte is hash-checked against the list", "HOST"),
    PipFlag(("--retries",), "no-op", _NET, "N"),
    PipFlag(("--default-timeout",), "no-op", _NET, "SECONDS"),
    PipFlag(("--use-deprecated",), "no-op", "safepip resolves with its own resolver", "FEATURE"),
    PipFlag(("--use-feature",), "no-op", "safepip resolves with its own resolver", "FEATURE"),
)

REFUSED: Final = (
    PipFlag(
        ("-e", "--editable"),
        "refused",
        "an editable install builds from source, which no list vouches for",
        "PATH",
    ),
    PipFlag(
        ("--no-binary",),
        "refused",
        "asks for source builds; safepip installs only listed wheels",
        "FORMATS",
    ),
    PipFlag(
        ("--no-require-hashes",),
        "refused",
        "would turn off hash checking; safepip installs only files whose hash the list names",
    ),
    PipFlag(
        ("--src",),
        "refused",
        "is where editable checkouts go; safepip installs no editable",
        "DIR",
    ),
)

#: What to do instead, for a refused flag.
REFUSED_HINT: Final = (
    "safepip installs only wheels whose sha256 is on the signed list: remove the flag, and "
    "have the publisher list a wheel of what you need"
)
