"""The ledger: one row per call, with its usage, cost, cost without caching, and the cache's story.

SQLite by default (`<user data dir>/cachewise/ledger.db`, or `$CACHEWISE_HOME/ledger.db`), in WAL
mode with full sync, so a row committed is a row kept; PostgreSQL when the target is a
`postgresql://` URL (the `postgres` extra). Migrations are named, ordered, recorded in
`_cachewise_migrations`, and applied when a ledger is opened; a shipped migration never changes.

No API key is ever stored (the workspace column is a one-way hash), and no prompt text unless the
caller asks (`store_prompts=True`), and then in a table of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import LedgerError
from .usage import Usage, normalize_usage

__all__ = ["CallRecord", "Ledger", "default_path", "key_workspace", "open_ledger"]


@dataclass
class CallRecord:
    """One call, as the ledger keeps it. Token fields use the API's names."""

    started_at: float
    model: str
    status: str = "ok"
    ended_at: float | None = None
    first_byte_at: float | None = None
    workspace: str | None = None
    request_id: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: Decimal = Decimal(0)
    cost_without_cache_usd: Decimal = Decimal(0)
    prefix_hashes: list[str] = field(default_factory=list)
    read_hash: str | None = None
    breakpoints: list[dict[str, Any]] = field(default_factory=list)
    cause: str | None = None
    source: str = "wrap"
    batch: bool = False
    tags: Any = None
    raw_usage: dict[str, Any] | None = None  # the usage object exactly as the API sent it
    id: int | None = None

    def set_usage(self, usage: Any, *, batch: bool | None = None) -> None:
        """Fill the token columns and both costs from a usage (any shape `normalize_usage`
        reads); a model the catalog cannot price costs $0 here, as `priced` says."""
        from .cost import priced

        self.usage = normalize_usage(usage)
        self.batch = self.usage.service_tier == "batch" if batch is None else batch
        raw = usage.model_dump(mode="json") if hasattr(usage, "model_dump") else usage
        self.raw_usage = dict(raw) if isinstance(raw, dict) else None
        costs = priced(self.usage, model=self.model, batch=self.batch)
        self.cost_usd, self.cost_without_cache_usd = costs or (Decimal(0), Decimal(0))


_COLUMNS = (
    "started_at",
    "started_utc",
    "first_byte_at",
    "ended_at",
    "workspace",
    "model",
    "request_id",
    "status",
    "http_status",
    "error_type",
    "input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_without_cache_usd",
    "prefix_hashes",
    "read_hash",
    "breakpoints",
    "cause",
    "source",
    "batch",
    "tags",
    "usage_json",
)


def _m001_initial(dialect: str) -> list[str]:
    key = "BIGSERIAL PRIMARY KEY" if dialect == "postgres" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    money = "NUMERIC(24, 12)" if dialect == "postgres" else "TEXT"  # exact decimals either way
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    return [
        f"""CREATE TABLE calls (
            id {key},
            started_at {real} NOT NULL,
            started_utc TEXT NOT NULL,
            first_byte_at {real},
            ended_at {real},
            workspace TEXT,
            model TEXT NOT NULL,
            request_id TEXT,
            status TEXT NOT NULL,
            http_status INTEGER,
            error_type TEXT,
            input_tokens INTEGER NOT NULL DEFAULT 0,
            ephemeral_5m_input_tokens INTEGER NOT NULL DEFAULT 0,
            ephemeral_1h_input_tokens INTEGER NOT NULL DEFAULT 0,
            cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
            output_tokens INTEGER NOT NULL DEFAULT 0,
            cost_usd {money} NOT NULL,
            cost_without_cache_usd {money} NOT NULL,
            prefix_hashes TEXT,
            read_hash TEXT,
            breakpoints TEXT,
            cause TEXT,
            source TEXT NOT NULL,
            batch INTEGER NOT NULL DEFAULT 0,
            tags TEXT,
            usage_json TEXT
        )""",
        "CREATE INDEX calls_started_at ON calls (started_at)",
        "CREATE TABLE prompts (call_id BIGINT PRIMARY KEY REFERENCES calls (id), "
        "request_json TEXT NOT NULL)",
    ]


MIGRATIONS: list[tuple[str, Callable[[str], list[str]]]] = [
    ("m001_initial", _m001_initial),
]


def default_path() -> Path:
    """`$CACHEWISE_HOME/ledger.db`, else `<user data dir>/cachewise/ledger.db`."""
    home = os.environ.get("CACHEWISE_HOME")
    if home:
        return Path(home) / "ledger.db"
    import platformdirs

    return Path(platformdirs.user_data_dir("cachewise", appauthor=False)) / "ledger.db"


def key_workspace(api_key: str | None) -> str | None:
    """A one-way, stable name for the workspace of an API key; the key itself is never kept."""
    if not api_key:
        return None
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


class Ledger:
    """A ledger on SQLite or PostgreSQL; safe to share across threads."""

    def __init__(self, target: str | Path | None = None) -> None:
        self.target = str(target) if target is not None else str(default_path())
        self.dialect = (
            "postgres" if self.target.startswith(("postgresql://", "postgres://")) else "sqlite"
        )
        self._lock = threading.Lock()
        self._conn: Any = self._connect()
        self.migrate()

    def _connect(self) -> Any:
        if self.dialect == "postgres":
            try:
                import psycopg
            except ImportError:
                raise LedgerError(
                    "a postgresql:// ledger needs the postgres extra: "
                    "pip install 'cachewise[postgres]'"
                ) from None
            try:
                return psycopg.connect(self.target, autocommit=True)
            except psycopg.Error as exc:
                raise LedgerError(f"cannot connect to the ledger database: {exc}") from None
        path = Path(self.target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a committed call survives a crash
            conn.execute("PRAGMA busy_timeout=5000")
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger at {path}: {exc}") from None
        return conn

    @property
    def _mark(self) -> str:
        return "%s" if self.dialect == "postgres" else "?"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", self._mark), tuple(params))

    def migrate(self) -> list[str]:
        """Apply the migrations this ledger has not seen, in order; return their names."""
        applied = []
        with self._lock:
            self._execute(
                "CREATE TABLE IF NOT EXISTS _cachewise_migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in self._execute("SELECT name FROM _cachewise_migrations")}
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                with self._transaction():
                    for statement in migration(self.dialect):
                        self._execute(statement)
                    self._execute(
                        "INSERT INTO _cachewise_migrations (name, applied_at) VALUES (?, ?)",
                        (name, _utc(None)),
                    )
                applied.append(name)
        return applied

    def _transaction(self) -> Any:
        if self.dialect == "postgres":
            return self._conn.transaction()
        return _SqliteTransaction(self._conn)

    def record(self, call: CallRecord, *, prompt: dict[str, Any] | None = None) -> int:
        """Write one call and commit it before returning; return its id."""
        values = [
            call.started_at,
            _utc(call.started_at),
            call.first_byte_at,
            call.ended_at,
            call.workspace,
            call.model,
            call.request_id,
            call.status,
            call.http_status,
            call.error_type,
            call.usage.input_tokens,
            call.usage.ephemeral_5m_input_tokens,
            call.usage.ephemeral_1h_input_tokens,
            call.usage.cache_read_input_tokens,
            call.usage.output_tokens,
            str(call.cost_usd),
            str(call.cost_without_cache_usd),
            json.dumps(call.prefix_hashes),
            call.read_hash,
            json.dumps(call.breakpoints),
            call.cause,
            call.source,
            int(call.batch),
            json.dumps(call.tags) if call.tags is not None else None,
            json.dumps(call.raw_usage) if call.raw_usage is not None else None,
        ]
        marks = ", ".join("?" * len(_COLUMNS))
        sql = f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({marks})"
        with self._lock, self._transaction():
            if self.dialect == "postgres":
                call_id = self._execute(sql + " RETURNING id", values).fetchone()[0]
            else:
                call_id = self._execute(sql, values).lastrowid
            if prompt is not None:
                self._execute(
                    "INSERT INTO prompts (call_id, request_json) VALUES (?, ?)",
                    (call_id, json.dumps(prompt)),
                )
        call.id = int(call_id)
        return call.id

    def calls(self, since: float | None = None) -> list[CallRecord]:
        """Every call started at or after `since` (unix seconds), oldest first."""
        where, params = ("WHERE started_at >= ?", [since]) if since is not None else ("", [])
        cols = ["id", *(c for c in _COLUMNS if c != "started_utc")]
        with self._lock:
            rows = self._execute(
                f"SELECT {', '.join(cols)} FROM calls {where} ORDER BY started_at, id", params
            ).fetchall()
        return [_record(dict(zip(cols, row, strict=True))) for row in rows]

    def prompts(self, since: float | None = None) -> dict[int, dict[str, Any]]:
        """The stored requests (only calls recorded with `store_prompts`), by call id."""
        where, params = ("WHERE c.started_at >= ?", [since]) if since is not None else ("", [])
        with self._lock:
            rows = self._execute(
                "SELECT p.call_id, p.request_json FROM prompts p JOIN calls c ON c.id = p.call_id "
                + where,
                params,
            ).fetchall()
        return {int(call_id): json.loads(text) for call_id, text in rows}

    def __iter__(self) -> Iterator[CallRecord]:
        return iter(self.calls())

    def columns(self) -> list[str]:
        """The calls table's columns, as the database has them (for tests and docs)."""
        with self._lock:
            if self.dialect == "postgres":
                rows = self._execute(
                    "SELECT column_name FROM information_schema.columns WHERE "
                    "table_name = 'calls' AND table_schema = current_schema() "
                    "ORDER BY ordinal_position"
                ).fetchall()
                return [r[0] for r in rows]
            return [r[1] for r in self._execute("PRAGMA table_info(calls)").fetchall()]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SqliteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def open_ledger(target: str | Path | Ledger | None = None) -> Ledger:
    """A ledger at a path or URL (default: `default_path()`); a Ledger is returned as it is."""
    return target if isinstance(target, Ledger) else Ledger(target)


def _utc(t: float | None) -> str:
    moment = datetime.now(UTC) if t is None else datetime.fromtimestamp(t, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _record(row: dict[str, Any]) -> CallRecord:
    return CallRecord(
        id=row["id"],
        started_at=row["started_at"],
        first_byte_at=row["first_byte_at"],
        ended_at=row["ended_at"],
        workspace=row["workspace"],
        model=row["model"],
        request_id=row["request_id"],
        status=row["status"],
        http_status=row["http_status"],
        error_type=row["error_type"],
        usage=Usage(
            input_tokens=row["input_tokens"],
            cache_read_input_tokens=row["cache_read_input_tokens"],
            ephemeral_5m_input_tokens=row["ephemeral_5m_input_tokens"],
            ephemeral_1h_input_tokens=row["ephemeral_1h_input_tokens"],
            output_tokens=row["output_tokens"],
        ),
        cost_usd=Decimal(str(row["cost_usd"])),
        cost_without_cache_usd=Decimal(str(row["cost_without_cache_usd"])),
        prefix_hashes=json.loads(row["prefix_hashes"] or "[]"),
        read_hash=row["read_hash"],
        breakpoints=json.loads(row["breakpoints"] or "[]"),
        cause=row["cause"],
        source=row["source"],
        batch=bool(row["batch"]),
        tags=json.loads(row["tags"]) if row["tags"] else None,
        raw_usage=json.loads(row["usage_json"]) if row["usage_json"] else None,
    )
