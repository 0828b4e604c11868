"""Problems found while vetting, as data: every one is reported, and any one refuses (exit 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The stable ``code`` values of DESIGN.md §4, shown in text output and in JSON ``rejected``.
REJECTION_CODES: Final = frozenset(
    {
        "not-in-list",
        "hash-not-in-list",
        "hash-binding",
        "hash-mismatch",
        "metadata-mismatch",
        "not-pinned",
        "no-hash",
        "unsupported",
        "typosquat",
        "dependency-missing",
        "sdist",
    }
)


@dataclass(frozen=True)
class Rejection:
    """One reason to refuse.

    ``subject`` names what is refused (an artifact filename or a project name); ``location`` is
    ``file:line`` when the problem comes from a requirements file, else ``None``.
    """

    code: str
    subject: str
    message: str
    location: str | None = None

    def __post_init__(self) -> None:
        if self.code not in REJECTION_CODES:
            raise ValueError(f"unknown rejection code {self.code!r}")
