"""The pytest plugin: a `cachewise_emulator` fixture, registered when cachewise is installed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import Emulator


@pytest.fixture
def cachewise_emulator() -> Iterator[Emulator]:
    """A started emulator on a free loopback port: virtual clock, no latency, an empty cache."""
    with Emulator() as emulator:
        yield emulator
