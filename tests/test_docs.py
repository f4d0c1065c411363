"""The docs cannot drift from the code: every rule, cause and command is documented."""

from __future__ import annotations

from pathlib import Path

import click

from cachewise.cli import main
from cachewise.explain import CAUSES
from cachewise.lint import RULES

DOCS = Path(__file__).parent.parent / "docs"
README = Path(__file__).parent.parent / "README.md"


def test_every_lint_rule_is_in_the_rule_table() -> None:
    text = (DOCS / "lint.md").read_text()
    for code, (severity, title, fix) in RULES.items():
        assert f"| {code} | {severity} | {title} | {fix} |" in text, code


def test_every_explain_cause_is_documented() -> None:
    text = (DOCS / "explain.md").read_text()
    for cause in CAUSES:
        assert f"`{cause}`" in text, cause


def test_every_command_has_help_and_a_page_or_a_readme_section() -> None:
    everything = README.read_text() + "".join(p.read_text() for p in DOCS.glob("*.md"))
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert command.help, name
        assert f"cachewise {name}" in everything, name
