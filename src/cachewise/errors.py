"""Every error (and the one warning) cachewise raises on purpose.

    CachewiseError
    ├── InvalidRequest     the Messages API would reject this request (400); carries its exact text
    ├── UnknownModel       a model id or alias that is not in the catalog (404 on the API)
    ├── PricingError       a cost cannot be computed honestly (a price the catalog does not know)
    ├── InputError         a file, line, field or option a user gave us is malformed
    ├── LintError          `wrap(lint="error")` refused a request the API would reject
    └── LedgerError        the ledger cannot be opened, read or written

    CachewiseWarning       a lint finding on a request `wrap` sends; a ledger row kept for later

Errors from the `anthropic` SDK pass through unwrapped. The CLI catches `CachewiseError` in one
place and prints it without a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .lint import Finding

__all__ = [
    "CachewiseError",
    "CachewiseWarning",
    "InputError",
    "InvalidRequest",
    "LedgerError",
    "LintError",
    "PricingError",
    "UnknownModel",
]


class CachewiseError(Exception):
    """The root of every error cachewise raises on purpose."""


class InvalidRequest(CachewiseError):
    """A request the Messages API rejects with 400 `invalid_request_error`.

    Attributes:
        message: the API's own error text where it is known, verbatim.
        path: the JSON pointer of the offending field, when there is one.
        error_type: the API's `error.type`.
        status: the HTTP status the API answers with.
        rule: which caching rule was broken ("max_breakpoints", "ttl_order", "marker_placement",
            "automatic", "prewarm"), or None for a malformed request.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        error_type: str = "invalid_request_error",
        status: int = 400,
        rule: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.error_type = error_type
        self.status = status
        self.rule = rule

    def to_api(self) -> dict[str, object]:
        """The error body the Messages API returns for this error."""
        return {"type": "error", "error": {"type": self.error_type, "message": self.message}}


class UnknownModel(CachewiseError):
    """A model that is not in the catalog, with the catalog's names closest to it (most likely a
    typo of one of them).

    Attributes:
        model: the name as given.
        suggestions: ids or aliases that are close, best first; empty when none is.
    """

    def __init__(self, model: str, suggestions: Sequence[str] = ()) -> None:
        names = ", ".join(suggestions[:-1]) + " or " if len(suggestions) > 1 else ""
        hint = f": did you mean {names}{suggestions[-1]}?" if suggestions else ""
        super().__init__(f"unknown model {model!r}{hint} (`cachewise models` lists them all)")
        self.model = model
        self.suggestions = tuple(suggestions)


class LintError(CachewiseError):
    """A request the linter says the API will reject (with `wrap(lint="error")`)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__("; ".join(f"{f.rule} {f.path}: {f.message}" for f in findings))
        self.findings = list(findings)


class LedgerError(CachewiseError):
    """The ledger cannot be opened, read or written."""


class CachewiseWarning(UserWarning):
    """Something the caller should know that does not stop the call: a lint finding on a request
    `wrap` is about to send, or ledger rows kept in the spool until the ledger takes them."""


class PricingError(CachewiseError):
    """A cost that the catalog cannot price without guessing."""


class InputError(CachewiseError):
    """Malformed user input, located as precisely as we can: file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        where = ":".join(str(part) for part in (file, line) if part is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field {field})" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.file = file
        self.line = line
        self.field = field
