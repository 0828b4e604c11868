"""Where text goes: results on stdout, diagnostics on stderr, JSON when asked.

rich is imported only when a terminal will show colour or progress, so that ``safepip check`` in
a pre-commit hook does not pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Literal

ColorMode = Literal["auto", "always", "never"]


@dataclass
class Output:
    """The run's output settings; the CLI owns the one instance."""

    format: Literal["text", "json"] = "text"
    quiet: bool = False
    verbose: bool = False
    color: ColorMode = "auto"
    progress: bool = True
    no_color_env: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)

    def _styled(self) -> bool:
        if self.color == "always":
            return True
        if self.color == "never" or self.no_color_env:
            return False
        return self.stderr.isatty()

    def _say(self, label: str, style: str, message: str) -> None:
        if self._styled():
            colour = {"red": "31", "yellow": "33", "cyan": "36", "green": "32"}[style]
            label = f"\x1b[1;{colour}m{label}\x1b[0m"
        print(f"{label}{message}", file=self.stderr)

    def error(self, message: str, hint: str | None) -> None:
        """``error: …`` and ``hint: …`` on stderr (shown even with -q)."""
        self._say("error: ", "red", message)
        if hint:
            self._say("hint: ", "cyan", hint)

    def hint(self, message: str) -> None:
        """Another ``hint: …`` line on stderr, after :meth:`error` (shown even with -q)."""
        self._say("hint: ", "cyan", message)

    def warn(self, message: str) -> None:
        """``warning: …`` on stderr (shown even with -q: warnings are about trust)."""
        self._say("warning: ", "yellow", message)

    def info(self, message: str) -> None:
        """Progress and context on stderr, silenced by -q."""
        if not self.quiet:
            print(message, file=self.stderr)

    def debug(self, message: str) -> None:
        """Command lines and subprocess output, only with -v."""
        if self.verbose:
            print(message, file=self.stderr)

    def result(self, text: str) -> None:
        """A text result on stdout (nothing in JSON mode: the JSON object is the result)."""
        if self.format == "text" and text:
            print(text, file=self.stdout)

    def emit_json(self, document: Mapping[str, Any]) -> None:
        """The one JSON object of a ``--format json`` run, on stdout."""
        if self.format == "json":
            json.dump(document, self.stdout, indent=2, sort_keys=False)
            self.stdout.write("\n")

    @contextmanager
    def progress_bar(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A rich progress bar on a terminal; a no-op advancer elsewhere.

        Yields a callable ``advance(n)``.
        """
        if not (self.progress and not self.quiet and self.stderr.isatty()):
            yield lambda _n: None
            return
        from rich.console import Console  # noqa: PLC0415  (lazy: rich costs ~30 ms to import)
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        console = Console(file=self.stderr, no_color=not self._styled())
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)
