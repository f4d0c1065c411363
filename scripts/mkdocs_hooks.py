"""MkDocs hooks: figures pulled from the files that hold them, not copied into the docs.

- `<!-- include: PATH -->` is replaced by the file at PATH (from the repository's root), and
  `<!-- include: PATH#NAME -->` by its section NAME, less the section's own heading (the page
  gives it one): from a `<!-- section: NAME -->` marker (as bench/results.md has) to the next
  marker, or from a heading whose text is NAME to the next heading of the same level or higher.
  An include that finds nothing fails the build.
- A nav entry whose value is a folder (`reference/commands/`) lists that folder's pages, so a
  generated page for a new command is in the nav without editing mkdocs.yml.
- A link from a page to a repository file the site publishes under another name
  (`../bench/results.md`) points to that page instead.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
INCLUDE = re.compile(r"^<!-- include: (?P<path>[^#\s]+)(?:#(?P<part>[^>]+?))? -->$", re.MULTILINE)
SECTION = re.compile(r"^<!-- section: (\w+) -->$", re.MULTILINE)
# Repository files published as a page of the site: their path from the root, and the page.
PUBLISHED = {"bench/results.md": "benchmarks.md", "CHANGELOG.md": "changelog.md"}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    docs = Path(config.docs_dir)
    config.nav = _expand(config.nav or [], docs)
    return config


def _expand(nav: list[Any], docs: Path) -> list[Any]:
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), *_ = item.items()
            if isinstance(value, list):
                value = _expand(value, docs)
            elif isinstance(value, str) and value.endswith("/"):
                pages = sorted((docs / value).glob("*.md"))
                if not pages:
                    raise PluginError(f"nav entry {title!r}: no pages in docs/{value}")
                value = [f"{value}{p.name}" for p in pages]
            out.append({title: value})
        else:
            out.append(item)
    return out


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    where = page.file.src_uri
    markdown = INCLUDE.sub(lambda m: _include(m["path"], m["part"], where), markdown)
    return _relink(markdown, where, config)


def _include(path: str, part: str | None, where: str) -> str:
    source = ROOT / path
    if not source.is_file():
        raise PluginError(f"{where}: include of {path}, which does not exist")
    text = source.read_text(encoding="utf-8")
    if part is None:
        return text
    found = _marked(text, part) or _headed(text, part)
    if found is None:
        raise PluginError(f"{where}: {path} has no section or heading {part!r}")
    # The including page titles the section itself, at its own level.
    first, _, rest = found.partition("\n")
    return rest.strip() + "\n" if first.startswith("#") else found


def _marked(text: str, name: str) -> str | None:
    marks = list(SECTION.finditer(text))
    for i, mark in enumerate(marks):
        if mark[1] == name:
            end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
            return text[mark.end() : end].strip() + "\n"
    return None


def _headed(text: str, heading: str) -> str | None:
    lines = text.splitlines()
    levels = _heading_levels(lines)
    for i, level in levels.items():
        if lines[i][level:].strip() == heading:
            end = next((j for j, d in levels.items() if j > i and d <= level), len(lines))
            return "\n".join(lines[i:end]).strip() + "\n"
    return None


def _heading_levels(lines: list[str]) -> dict[int, int]:
    """Line index -> level of each Markdown heading, outside fenced code (a `# comment` in a
    shell example is not a heading)."""
    levels: dict[int, int] = {}
    fenced = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"(#+) ", line)):
            levels[i] = len(m[1])
    return levels


def _relink(markdown: str, where: str, config: MkDocsConfig) -> str:
    """Links from this page to repository files that the site publishes as a page."""
    here = posixpath.dirname(where)
    docs = Path(config.docs_dir).resolve().relative_to(ROOT).as_posix()
    for source, page in PUBLISHED.items():
        # The link as a page in docs/<here>/ writes it, relative to that folder.
        written = posixpath.relpath(source, posixpath.join(docs, here) if here else docs)
        target = posixpath.relpath(page, here) if here else page
        markdown = markdown.replace(f"]({written})", f"]({target})")
        markdown = markdown.replace(f"]({written}#", f"]({target}#")
    return markdown
