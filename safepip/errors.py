"""The failures that stop a safepip run, each with its exit code and a hint.

Problems found in artifacts or requirement lines are *data* (see :mod:`safepip.policy`), so that a
user sees all of them in one run. The exceptions here are failures to proceed: the run cannot go on,
and the CLI maps each class to its exit code (DESIGN.md §4) and prints ``error:`` / ``hint:``.
"""

from __future__ import annotations


class SafepipError(Exception):
    """Base class: a failure to proceed, with an exit code and a hint for the user.

    ``str(error)`` is the one-line reason; ``hint`` says what to do about it.
    """

    exit_code = 101
    default_hint = "this is a bug in safepip; please report it with the output of -v"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint if hint is not None else self.default_hint


class PolicyError(SafepipError):
    """The request was refused by policy (exit 1)."""

    exit_code = 1
    default_hint = "only wheels on the signed list can be installed"


class UsageError(SafepipError):
    """Bad flags, configuration or unreadable input (exit 2)."""

    exit_code = 2
    default_hint = "see safepip --help"


class ConfigError(UsageError):
    """The configuration is missing a key, or a value is malformed (exit 2)."""

    default_hint = "see the Configuration section of the README"


class RequirementsError(UsageError):
    """A requirements file cannot be read or uses syntax safepip does not accept (exit 2)."""

    default_hint = "safepip accepts name[extras]==version lines, --hash, comments and local -r"


class TrustError(SafepipError):
    """The list is not trustworthy or not available (exit 3)."""

    exit_code = 3
    default_hint = "ask the list's publisher; do not install until `safepip verify` succeeds"


class FetchError(TrustError):
    """The list or signature could not be fetched within the caps (exit 3)."""

    default_hint = "check the `list` URL and the network, then run `safepip verify`"


class NotFoundError(FetchError):
    """The source does not exist: HTTP 404 or 410, or no such file (exit 3)."""


class SignatureError(TrustError):
    """The signature does not prove the list came from the pinned keys (exit 3)."""

    default_hint = (
        "the list may have been tampered with; compare the pinned fingerprints with the publisher's"
    )


class GpgMissingError(TrustError):
    """The ``gpg`` binary cannot be found or run (exit 3)."""

    default_hint = (
        "install GnuPG 2 (for example `apt-get install gnupg`) and make sure gpg is on PATH"
    )


class FreshnessError(TrustError):
    """The list is expired, rolled back, equivocating, or has a bad header (exit 3)."""

    default_hint = "ask the publisher for a fresh list; never lower min-serial to get past this"


class ListFormatError(TrustError):
    """The list is malformed (exit 3). ``line`` is 1-based, or ``None`` for whole-file problems."""

    default_hint = "the list must be format 1 of DESIGN.md §2; ask its publisher to regenerate it"

    def __init__(self, message: str, *, line: int | None = None, hint: str | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message, hint=hint)
        self.line = line


class StateError(TrustError):
    """The stored trust state is corrupt or cannot be written (exit 3)."""

    default_hint = "inspect the state file named above; safepip never resets it on its own"


class PipError(SafepipError):
    """pip failed after vetting (exit 4)."""

    exit_code = 4
    default_hint = "run again with -v to see pip's output"


class PublishError(SafepipError):
    """The publisher refused to write or sign a list (exit 1)."""

    exit_code = 1
    default_hint = "fix the wheel folder or the signing key, then publish again"


class TargetError(PipError):
    """The vetted wheels cannot be merged into the ``--target`` folder (exit 4).

    The message says whether the folder was left unchanged, restored, or half-merged.
    """

    default_hint = "check the --target folder named above, then run again"


class BytecodeError(PipError):
    """Byte-compiling the packages pip just installed failed (exit 4); they stay installed."""

    default_hint = (
        "the packages work without .pyc files (Python compiles them on import); "
        "run again with -v to see why compiling failed"
    )


class BuildError(SafepipError):
    """A build of a vetted sdist failed: unreadable archive, backend error, no wheel (exit 4)."""

    exit_code = 4
    default_hint = "run again with -v to see the build backend's output"


class IrreproducibleError(PolicyError):
    """Two builds of one sdist made different wheels (exit 1); the message names the members."""

    default_hint = (
        "find what the build embeds (time, path, order, randomness) and fix it upstream; "
        "safepip publishes only wheels that rebuild bit for bit"
    )
