"""The public API is declared on purpose."""

from __future__ import annotations

import cachewise


def test_all_exports_exist() -> None:
    for name in cachewise.__all__:
        assert hasattr(cachewise, name), name


def test_public_names_are_few() -> None:
    assert len(cachewise.__all__) <= 25


def test_the_analyzer_functions_are_callables_at_the_top_level() -> None:
    """`cachewise.lint(...)`, `cachewise.plan(...)` and `cachewise.explain(...)` as the docs say,
    with their modules still importable for the rest."""
    from cachewise.lint import RULES

    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 16,
        "system": "You are terse. " * 600,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert "CW105" in RULES and any(f.rule == "CW105" for f in cachewise.lint(body))
    planned = cachewise.plan(body)
    assert planned.breakpoints and cachewise.lint(planned.request) == []
    assert cachewise.explain(planned.request, planned.request).cause == "hit"
    for name in ("lint", "plan", "explain", "cost", "wrap"):
        assert callable(getattr(cachewise, name)) and name in cachewise.__all__


def test_a_bad_wrap_option_is_an_input_error() -> None:
    import anthropic
    import pytest

    with pytest.raises(cachewise.InputError, match="field lint"):
        cachewise.wrap(anthropic.Anthropic(api_key="k"), lint="strict", ledger=False)  # type: ignore[arg-type]
