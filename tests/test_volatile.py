"""The volatile-content heuristics behind CW102 and the planner."""

from __future__ import annotations

import pytest

from cachewise.volatile import find_volatile


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Now: 2026-11-22T05:00:00Z", "timestamp"),
        ("It is 14:03:59 here", "time of day"),
        ("Today is Sunday", "date"),
        ("id 7c9e6679-7425-40de-944b-e07fc1f66afd", "uuid"),
        ("session_id: abc123XYZ987", "request or session id"),
        ("ts=1763786400", "unix timestamp"),
        ("nonce 9f86d081884c7d659a2feaa0c55ad015", "hex token"),
        ("This is turn 12 of the task", "counter"),
        ("token Zx9Qw3Er7Ty1Ui5Op2As8Df4Gh6Jk0Lz", "high-entropy token"),
    ],
)
def test_volatile_kinds(text: str, kind: str) -> None:
    found = find_volatile(text)
    assert found is not None and found.kind == kind


@pytest.mark.parametrize(
    "text",
    [
        "You are a careful assistant. Answer in English.",
        "The function returns a list of dictionaries keyed by name.",
        "Use snake_case_identifiers_consistently_across_the_codebase.",
    ],
)
def test_stable_prose_is_not_volatile(text: str) -> None:
    assert find_volatile(text) is None
