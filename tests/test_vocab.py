"""The tokenizer's snapshot: a second process loads what the first built, and counts the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT = """
import sys
from cachewise.tokens import CtokTokenizer
print(CtokTokenizer().count(sys.argv[1], "3.0", "system"))
"""
TEXT = "Invoice INV-2026-0113 for account 88213 was paid on 2026-11-03 ($1,284.50)."


def _count(home: Path) -> int:
    env = {**os.environ, "CACHEWISE_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", COUNT, TEXT], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_snapshot_is_left_and_a_later_process_counts_the_same_with_it(tmp_path: Path) -> None:
    first = _count(tmp_path)
    snapshots = list((tmp_path / "vocab").glob("ctok-*-v3.pickle"))
    assert len(snapshots) == 1 and snapshots[0].stat().st_size > 100_000
    assert oct(snapshots[0].stat().st_mode & 0o777) == "0o600"
    written = snapshots[0].stat().st_mtime_ns
    assert _count(tmp_path) == first
    assert snapshots[0].stat().st_mtime_ns == written  # read, not built and written again


def test_a_damaged_snapshot_is_rebuilt_and_the_count_is_unchanged(tmp_path: Path) -> None:
    first = _count(tmp_path)
    (snapshot,) = (tmp_path / "vocab").glob("*.pickle")
    snapshot.write_bytes(b"\x80\x05 not a pickle")
    assert _count(tmp_path) == first
    assert snapshot.stat().st_size > 100_000  # written again, whole


def test_a_home_that_cannot_be_written_only_costs_the_snapshot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.write_text("a file where the folder should be")
    assert _count(home) == _count(tmp_path)


def test_the_fast_parse_reads_every_piece_of_every_family_as_ctok_does() -> None:
    import ctok.main as ctok_main
    from ctok.notation import parse_marked

    from cachewise.vocab import fast_parse

    pieces = {
        piece
        for family in ctok_main.FAMILIES.values()
        if family.pieces
        for group in ctok_main._document(family.pieces)["tokens"].values()
        for piece in group
    }
    assert len(pieces) > 40_000  # v3 and v4.7, which share most of theirs
    assert [fast_parse(p, parse_marked) for p in pieces] == [parse_marked(p) for p in pieces]


def test_a_piece_with_more_than_named_markers_is_read_by_ctok() -> None:
    from ctok.notation import parse_marked

    from cachewise.vocab import fast_parse

    read_by_ctok = []

    def parse(public: str) -> str:
        read_by_ctok.append(public)
        return parse_marked(public)

    escaped = "⟨bow⟩⟨0xE2⟩⟨0x9F⟩⟨0xA8⟩x⟨eow⟩"  # a literal bracket, byte-escaped
    unnamed = "⟨pad⟩⟨bow⟩a"  # an atom with no glyph
    for piece in (escaped, unnamed, "⟨shift⟩⟨bow⟩the⟨eow⟩", "plain"):
        assert fast_parse(piece, parse) == parse_marked(piece)
    assert read_by_ctok == [escaped, unnamed]
