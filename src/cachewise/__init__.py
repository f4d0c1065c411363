"""cachewise: make Claude API calls prompt-cache-optimal, and prove it.

The public API is small on purpose; everything else is importable from its module but may change.
`lint`, `plan` and `explain` are the analyzer's functions (their modules stay importable as
`cachewise.lint` and so on through `sys.modules`, for `from cachewise.lint import RULES`).
"""

from __future__ import annotations

from .__about__ import __version__
from .catalog import Model, get_model
from .client import wrap
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
from .ledger import Ledger
from .lint import lint
from .plan import plan
from .request import Prompt, parse_request
from .tokens import Tokenizer
from .usage import Usage

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
