"""The README's help text and configuration table follow the real CLI and config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safepip import config
from safepip._cli import build_parser

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_help_block_matches_safepip_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    block = README.split("<!-- help:start -->", 1)[1].split("<!-- help:end -->", 1)[0]
    shown = block.strip().removeprefix("```text").removesuffix("```").strip()
    real = build_parser().format_help().strip()
    assert " ".join(shown.split()) == " ".join(real.split())


def test_readme_configuration_table_lists_every_key() -> None:
    table = README.split("## Configuration", 1)[1].split("## The list", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", table, flags=re.MULTILINE))
    assert documented == set(config._KEYS)


def test_readme_names_every_subcommand() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name in subparsers.choices:  # type: ignore[union-attr]
        assert f"`safepip {name}" in README
