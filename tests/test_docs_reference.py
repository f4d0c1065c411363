"""The reference cannot drift from the code: the generated pages are current, every command and
option has help and a page, every public name is on the API page, every page is in the site."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest

import cachewise
from cachewise.cli import main
from cachewise.ledger import Ledger

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "scripts"))

import docs_reference  # noqa: E402


def test_the_generated_reference_is_what_the_code_makes_now() -> None:
    stale = [str(p.relative_to(ROOT)) for p in docs_reference.stale()]
    assert not stale, f"stale: {', '.join(stale)}; run python scripts/docs_reference.py"


@pytest.mark.parametrize("name", [n for n, _ in docs_reference.commands()])
def test_every_command_and_its_every_option_and_argument_has_help(name: str) -> None:
    command = dict(docs_reference.commands())[name]
    assert command.help and command.help.strip(), f"cachewise {name} has no help"
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        text = param.help if isinstance(param, click.Option | click.Argument) else None
        assert text and text.strip(), f"cachewise {name}: {param.name} has no help"


@pytest.mark.parametrize("name", [n for n, _ in docs_reference.commands()])
def test_every_command_has_a_page_in_the_reference(name: str) -> None:
    page = DOCS / "reference" / "commands" / f"{name.replace(' ', '-')}.md"
    assert page.is_file(), f"no page for cachewise {name}; run python scripts/docs_reference.py"
    assert f"# cachewise {name}\n" in page.read_text()
    assert f"(commands/{page.name})" in (DOCS / "reference" / "cli.md").read_text()


def test_the_commands_are_found_however_they_are_registered() -> None:
    @main.command("zz-probe", help="A command registered late, as a plugin would.")
    @click.option("--level", help="How loud.")
    def probe(level: str | None) -> None: ...

    try:
        assert "zz-probe" in dict(docs_reference.commands())
        assert "--level TEXT  How loud." in docs_reference.help_text("zz-probe")
        assert "zz-probe" in [p.stem for p in docs_reference.stale()]
    finally:
        del main.commands["zz-probe"]


def test_every_public_name_is_on_the_api_page() -> None:
    text = (DOCS / "reference" / "api.md").read_text()
    for name in cachewise.__all__:
        if name.startswith("__"):
            continue
        # `cost`, `lint`, `plan` and `explain` share their module's name: the page names the
        # function in it, or mkdocstrings would render the module.
        pattern = rf"^::: cachewise\.{name}(\.{name})?$"
        assert re.search(pattern, text, re.MULTILINE), f"cachewise.{name} is not on the API page"


def test_every_ledger_column_has_a_meaning(tmp_path: Path) -> None:
    text = (DOCS / "ledger.md").read_text()
    with Ledger(tmp_path / "ledger.db") as ledger:
        columns = ledger.columns()
    assert "prefix_hash" in columns
    missing = [c for c in columns if f"`{c}`" not in text]
    assert not missing, f"docs/ledger.md does not say what these columns mean: {missing}"


def test_every_page_is_in_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    entries = re.findall(r"^\s*- (?:[^:\n]+: )?(\S+\.md|\S+/)$", config, re.MULTILINE)
    folders = [e for e in entries if e.endswith("/")]
    pages = set(entries) - set(folders)
    assert "reference/commands/" in folders
    for page in DOCS.rglob("*.md"):
        name = page.relative_to(DOCS).as_posix()
        in_folder = any(name.startswith(f) and "/" not in name[len(f) :] for f in folders)
        assert name in pages or in_folder, f"docs/{name} is not in mkdocs.yml's nav"
