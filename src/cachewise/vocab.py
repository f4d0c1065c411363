"""ctok's vocabularies, loaded from a snapshot a previous process left, when there is one.

ctok builds each tokenizer family from its JSON vocabulary the first time a process counts with
it: about half a second, more than everything else a small `cachewise lint` does. A pre-commit
hook lints a prompt that has just been edited, so its texts are new and the count cache cannot
answer; this snapshot can. The built vocabulary is pickled once into the cachewise home, keyed by
ctok's version and the Python that pickled it, and a later process loads it in a fifth of the
time. Anything unexpected (a missing or damaged file, a ctok whose insides have moved, a home
that cannot be written) falls back to ctok's own loading: the snapshot only ever saves time.

The first build on a machine is sped up too: two thirds of it is ctok parsing its vocabulary's
notation piece by piece with a general codec, where nearly every piece is plain text and named
markers that `str.replace` turns into the same string (`fast_parse`; a piece with anything else
goes to ctok's own parser).

The file is read back with pickle, so it lives in the user's own cachewise home (mode 0700),
which is trusted as much as the user's site-packages are.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import pickle
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["install"]

_installed = False
_building = threading.Lock()  # one build at a time: it swaps a function in ctok's module


def install(folder: Path | None = None) -> None:
    """Make ctok build each family at most once per machine (per ctok and Python version)."""
    global _installed
    if _installed:
        return
    _installed = True
    try:
        import ctok.main as ctok_main

        original: Callable[[str], Any] = ctok_main._model
        version = metadata.version("ctok")
    except (ImportError, AttributeError, metadata.PackageNotFoundError):
        return  # a ctok without the hook this relies on: its own loading, as before
    tag = f"ctok-{version}-py{sys.version_info.major}{sys.version_info.minor}"

    def build(family: str) -> Any:
        with _building, _fast_parse(ctok_main):
            return original(family)

    @functools.cache
    def model(family: str) -> Any:
        return _load(folder, tag, family, build)

    ctok_main._model = model


@functools.cache
def _atoms() -> tuple[str, tuple[tuple[str, str], ...]]:
    from ctok.constants import ATOM_TO_GLYPH, L

    return L, tuple(ATOM_TO_GLYPH.items())


def fast_parse(public: str, parse: Callable[[str], str]) -> str:
    """ctok's `parse_marked(public)`, by `str.replace` when the piece holds nothing but text and
    the named markers: those atoms cannot overlap (each holds its bracket only at its start), so
    replacing them left to right is what the codec's scan does. A bracket left over (a byte
    escape, an atom a later ctok added) means the piece is not that simple: `parse` reads it."""
    bracket, atoms = _atoms()
    if bracket not in public:
        return public
    out = public
    for atom, glyph in atoms:
        out = out.replace(atom, glyph)
    return parse(public) if bracket in out else out


@contextlib.contextmanager
def _fast_parse(ctok_main: Any) -> Iterator[None]:
    parse = getattr(ctok_main, "parse_marked", None)
    if parse is None:  # a ctok built differently: nothing to speed up
        yield
        return
    ctok_main.parse_marked = lambda public: fast_parse(public, parse)
    try:
        yield
    finally:
        ctok_main.parse_marked = parse


def _load(folder: Path | None, tag: str, family: str, build: Callable[[str], Any]) -> Any:
    from .home import default_home

    path = (folder or default_home() / "vocab") / f"{tag}-{family}.pickle"
    with _no_collection():
        try:
            with path.open("rb") as f:
                return pickle.load(f)
        except Exception:  # absent or unreadable: build it, and try to leave it for the next one
            pass
        built = build(family)
    _save(path, built)
    return built


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic collector paused: a vocabulary is a hundred thousand new objects, none of them
    garbage, and the collections their allocation sets off took half of a load's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _save(path: Path, value: Any) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # whole or not at all: a reader never sees half a file
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # a full disk, a read-only home: the next process builds it again
        return
