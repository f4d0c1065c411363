"""The public API is declared on purpose."""

from __future__ import annotations

import cachewise


def test_all_exports_exist() -> None:
    for name in cachewise.__all__:
        assert hasattr(cachewise, name), name


def test_public_names_are_few() -> None:
    assert len(cachewise.__all__) <= 25
