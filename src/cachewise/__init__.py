"""cachewise: make Claude API calls prompt-cache-optimal, and prove it.

The public API is small on purpose; everything else is importable from its module but may change.
`lint`, `plan` and `explain` are the analyzer's functions (their modules stay importable as
`cachewise.lint` and so on through `sys.modules`, for `from cachewise.lint import RULES`).
`wrap` and `Ledger` load on first use: they bring the HTTP client's, asyncio's and SQLite's
machinery, which a process that only lints (a pre-commit hook) never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .__about__ import __version__
from .catalog import Model, get_model
from .cost import Cost, cost
from .engine import Account, Engine
from .errors import (
    CachewiseError,
    CachewiseWarning,
    InputError,
    InvalidRequest,
    LedgerError,
    LintError,
    PricingError,
    UnknownModel,
)
from .explain import explain
from .lint import lint
from .plan import plan
from .request import Prompt, parse_request
from .tokens import Tokenizer
from .usage import Usage

if TYPE_CHECKING:
    from .client import wrap
    from .ledger import Ledger

_LAZY = {"wrap": "client", "Ledger": "ledger"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later lookups find it without this function
    return value


__all__ = [
    "Account",
    "CachewiseError",
    "CachewiseWarning",
    "Cost",
    "Engine",
    "InputError",
    "InvalidRequest",
    "Ledger",
    "LedgerError",
    "LintError",
    "Model",
    "PricingError",
    "Prompt",
    "Tokenizer",
    "UnknownModel",
    "Usage",
    "__version__",
    "cost",
    "explain",
    "get_model",
    "lint",
    "parse_request",
    "plan",
    "wrap",
]
