"""The example application, a stand-in for yours: it uses what safepip installed."""

from __future__ import annotations

import re
import sys
from importlib import metadata

import requests

VETTED = ("certifi", "charset-normalizer", "idna", "requests", "urllib3")


def main(argv: list[str]) -> int:
    for name in VETTED:
        print(f"{name} {metadata.version(name)}")
    if "--self-test" in argv:
        # The image's Python must see exactly the vetted distributions: nothing of safepip's own.
        installed = sorted(
            re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower() for d in metadata.distributions()
        )
        if installed != sorted(VETTED):
            print(f"unexpected distributions: {installed}", file=sys.stderr)
            return 1
        print(f"requests from {requests.__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
