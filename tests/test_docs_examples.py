"""The examples in the README, the getting-started page and the cookbook run, and say what they
print; every `cachewise ...` line in any page's shell examples is a command that parses.

Python blocks of a page run in order in one namespace (as a reader pastes them), in a folder with
the docs' example files, against an emulator that ANTHROPIC_BASE_URL points at. A block followed
by an output block must print exactly that. Blocks that define `test_*` functions get them run,
with the `cachewise_emulator` fixture when they ask for it. A shell block holding one `cachewise`
command and followed by an output block is run, and must print that too.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cachewise.cli import main
from cachewise.testing import Emulator

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
RUN = [ROOT / "README.md", DOCS / "getting-started.md", *sorted((DOCS / "cookbook").glob("*.md"))]
# Frameworks a cookbook page shows through the proxy; not installed with cachewise.
FRAMEWORKS = {"langchain_anthropic", "litellm", "pydantic_ai"}
FENCE = re.compile(
    r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL
)
# Where a shell line's command ends: a comment, a pipe, a redirection, a background job.
SHELL_END = {"&", "|", ">", ">>", "2>", "&&", ";", "<"}

HANDBOOK = "\n".join(
    f"Policy {n}: a refund for order type {n} is issued within {n % 9 + 1} days."
    for n in range(200)
)


@dataclass
class Block:
    lang: str
    code: str
    line: int
    output: str | None  # the plain block right after it, if any


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = list(FENCE.finditer(text))
    out = []
    for i, match in enumerate(found):
        after = found[i + 1] if i + 1 < len(found) else None
        between = text[match.end() : after.start()] if after else ""
        output = after["code"] if after and not after["lang"] and not between.strip() else None
        line = text.count("\n", 0, match.start()) + 1
        out.append(Block(match["lang"], match["code"], line, output))
    return out


def command_lines(code: str, *, prompted: bool = False) -> list[list[str]]:
    """The arguments of each `cachewise` command in a shell block; with `prompted`, only the
    lines of a transcript that start with `$ ` (the rest is output, or a usage synopsis)."""
    commands = []
    for raw in code.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if prompted and not line.startswith("$ "):
            continue
        line = line.removeprefix("$ ")
        if not line.startswith("cachewise "):
            continue
        args = []
        for token in shlex.split(line, comments=True)[1:]:
            if token in SHELL_END:
                break
            args.append(token)
        commands.append(args)
    return commands


def parse(args: list[str]) -> None:
    """Resolve the command and parse its options as click would, without running it."""
    command: click.Command = main
    ctx = click.Context(main, info_name="cachewise")
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    with contextlib.suppress(click.exceptions.Exit):  # --help, --version: parsed, then exit
        command.parse_args(ctx, rest)


def shell_commands() -> list[Any]:
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    cases = []
    for page in pages:
        for block in blocks(page):
            shell = block.lang in ("sh", "bash", "console")
            for args in command_lines(block.code, prompted=not shell):
                where = f"{page.relative_to(ROOT)}:{block.line}"
                cases.append(pytest.param(args, id=f"{where} {' '.join(args[:2])}"))
    return cases


@pytest.mark.parametrize("args", shell_commands())
def test_every_command_line_in_the_docs_parses(args: list[str]) -> None:
    try:
        parse(args)
    except click.ClickException as exc:
        pytest.fail(f"cachewise {' '.join(args)}: {exc.format_message()}")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A folder with the docs' example files and a valid `request.json`, and an emulator that
    the SDK's environment variables point at."""
    work = tmp_path / "work"
    shutil.copytree(DOCS / "examples", work / "docs" / "examples")
    for name in ("trace.jsonl", "conversation.json"):
        shutil.copy(DOCS / "examples" / name, work / name)
    request = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 300,
        "system": [{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "How long does a refund take?"}],
    }
    (work / "request.json").write_text(json.dumps(request))
    monkeypatch.chdir(work)
    with Emulator() as emu:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", emu.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-docs-example")
        yield emu


def reader_names() -> dict[str, Any]:
    """What the README leaves to its reader: a long prompt, a question, an agent's step."""

    def my_agent_step(client: Any) -> Any:
        return client.messages.create(
            model="claude-sonnet-4-6",
            max_tokens=100,
            system=[{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": "What is policy 7?"}],
        )

    return {"HANDBOOK": HANDBOOK, "question": "What is policy 7?", "my_agent_step": my_agent_step}


@pytest.mark.parametrize("page", RUN, ids=[str(p.relative_to(ROOT)) for p in RUN])
def test_the_examples_run_and_print_what_the_page_shows(page: Path, folder: Emulator) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_example", **reader_names()}
    ran, missing = 0, set()
    for block in blocks(page):
        where = f"{page.relative_to(ROOT)}:{block.line}"
        if block.lang == "python":
            try:
                printed = _run_python(block.code, namespace, where, folder)
            except ModuleNotFoundError as exc:
                if exc.name not in FRAMEWORKS:
                    raise
                missing.add(exc.name)
                continue
        elif block.lang == "sh" and block.output is not None:
            commands = [line for line in block.code.splitlines() if line.strip()]
            if len(commands) != 1 or not commands[0].startswith("cachewise "):
                continue
            # The width a pipe gets (`cli.main.console`), whatever the session's COLUMNS.
            result = CliRunner().invoke(main, command_lines(block.code)[0], env={"COLUMNS": "160"})
            printed = result.output
        else:
            continue
        ran += 1
        if block.output is not None:
            assert _lines(printed) == _lines(block.output), where
    if missing and not ran:
        pytest.skip(f"needs {', '.join(sorted(missing))}, not installed here")


def _run_python(code: str, namespace: dict[str, Any], where: str, emu: Emulator) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, where, "exec"), namespace)
        tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
        for test in tests:
            emu.reset()
            wanted = inspect.signature(test).parameters
            test(**({"cachewise_emulator": emu} if "cachewise_emulator" in wanted else {}))
            del namespace[test.__name__]
    return out.getvalue()


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def test_every_extra_is_named_in_the_readme() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    readme = (ROOT / "README.md").read_text()
    for name in set(extras) - {"dev", "docs"}:
        assert f"| `{name}` |" in readme, f"the {name} extra is not in the README's table"


def test_the_changelog_has_a_section_for_what_is_next_or_this_version() -> None:
    from cachewise import __version__

    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), "not a semantic version"
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text or f"## [{__version__}] - " in text
