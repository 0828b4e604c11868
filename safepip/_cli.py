"""Command line: argv → Config → dispatch. The only module that prints, reads env or exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from safepip import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safepip",
        description="Install only Python wheels whose sha256 is on a GPG-signed list.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"safepip {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run safepip with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    _parser().parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
