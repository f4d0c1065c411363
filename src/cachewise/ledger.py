"""The ledger: one row per call, with its usage, cost, cost without caching, and the cache's story.

SQLite by default (`<user data dir>/cachewise/ledger.db`, or `$CACHEWISE_HOME/ledger.db`), in WAL
mode with full sync, so a row committed is a row kept; PostgreSQL when the target is a
`postgresql://` URL (the `postgres` extra). Migrations are named, ordered, recorded in
`_cachewise_migrations`, and applied when a ledger is opened, under a lock (SQLite's write lock,
PostgreSQL's advisory lock), so that many processes may open a new ledger at once; a shipped
migration never changes.

Every row carries a unique `uid`, and writing a row twice keeps one: a row kept in the spool
(`cachewise.spool`) while the ledger was unavailable is recorded exactly once later.

No API key is ever stored (the workspace column is a one-way hash), and no prompt text unless the
caller asks (`store_prompts=True`), and then in a table of its own. The ledger's folder is created
private (0700) and a SQLite ledger's files are readable by their owner only (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import LedgerError
from .home import default_home
from .schema import HOURLY, MIGRATIONS, hourly_rows, sum_calls_into_hourly
from .usage import Usage, normalize_usage

__all__ = [
    "CallRecord",
    "Ledger",
    "default_path",
    "is_emulated",
    "key_workspace",
    "open_ledger",
]

# The emulator's message and request ids (`msg_emu…`, `req_emu…`): how a call is known to be a
# rehearsal rather than money spent.
_EMULATED_ID = re.compile(r"^[a-z]+_emu")


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
    emulated: bool = False  # answered by the emulator, not the API: no money was spent
    # What the planner meant to send against what reached the wire: a marker an SDK or a
    # framework dropped or moved on the way is a miss with a name ("ok" | "lost" | "changed").
    intended_breakpoints: list[dict[str, Any]] | None = None
    wire: str | None = None
    gate_role: str | None = None  # "scout" | "follower" | "ungated": the warm gate's verdict
    gate_wait_s: float | None = None  # time spent waiting for a scout's write
    prefix_hash: str | None = None  # the hash of the longest cacheable prefix (report groups by it)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    id: int | None = None

    def set_usage(self, usage: Any, *, batch: bool | None = None) -> None:
        """Fill the token columns and both costs from a usage (any shape `normalize_usage`
        reads); a model the catalog cannot price costs $0 here, as `priced` says."""
        from .cost import priced

        raw = usage.model_dump(mode="json") if hasattr(usage, "model_dump") else usage
        self.usage = normalize_usage(raw)  # the SDK's object dumped once, for both
        self.batch = self.usage.service_tier == "batch" if batch is None else batch
        self.raw_usage = dict(raw) if isinstance(raw, dict) else None
        costs = priced(self.usage, model=self.model, batch=self.batch)
        self.cost_usd, self.cost_without_cache_usd = costs or (Decimal(0), Decimal(0))

    def to_row(self) -> dict[str, Any]:
        """The row as the ledger stores it, column by column (JSON-safe: the spool keeps it)."""
        u = self.usage
        return {
            "uid": self.uid,
            "started_at": self.started_at,
            "started_utc": _utc(self.started_at),
            "first_byte_at": self.first_byte_at,
            "ended_at": self.ended_at,
            "workspace": self.workspace,
            "model": self.model,
            "request_id": self.request_id,
            "status": self.status,
            "http_status": self.http_status,
            "error_type": self.error_type,
            "input_tokens": u.input_tokens,
            "ephemeral_5m_input_tokens": u.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens": u.ephemeral_1h_input_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "output_tokens": u.output_tokens,
            "cost_usd": str(self.cost_usd),
            "cost_without_cache_usd": str(self.cost_without_cache_usd),
            "cost_e10": _e10(self.cost_usd),
            "cost_without_cache_e10": _e10(self.cost_without_cache_usd),
            "read_later": None,  # known once no later call can read it (`rollup.settle`)
            "prefix_hashes": json.dumps(self.prefix_hashes),
            "read_hash": self.read_hash,
            "breakpoints": json.dumps(self.breakpoints),
            "cause": self.cause,
            "source": self.source,
            "batch": int(self.batch),
            "tags": json.dumps(self.tags) if self.tags is not None else None,
            "usage_json": json.dumps(self.raw_usage) if self.raw_usage is not None else None,
            "emulated": int(self.emulated),
            "intended_breakpoints": (
                json.dumps(self.intended_breakpoints)
                if self.intended_breakpoints is not None
                else None
            ),
            "wire": self.wire,
            "gate_role": self.gate_role,
            "gate_wait_s": self.gate_wait_s,
            "prefix_hash": self.prefix_hash,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> CallRecord:
        """A record from its stored columns (a database row or a spooled one)."""
        return cls(
            id=row.get("id"),
            uid=row.get("uid") or "",
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
            emulated=bool(row.get("emulated")),
            intended_breakpoints=(
                json.loads(row["intended_breakpoints"]) if row.get("intended_breakpoints") else None
            ),
            wire=row.get("wire"),
            gate_role=row.get("gate_role"),
            gate_wait_s=row.get("gate_wait_s"),
            prefix_hash=row.get("prefix_hash"),
        )


def _e10(amount: Decimal) -> int | None:
    """An amount in units of 1e-10 dollars, when it is exactly that (every price the catalog
    makes is) and under $100 million; None otherwise (the report then sums its text)."""
    if not amount.is_finite() or amount < 0:
        return None
    scaled = amount.scaleb(10)
    if scaled != scaled.to_integral_value() or scaled >= 10**18:
        return None
    return int(scaled)


def read_window() -> float:
    """How long after a write a later read of the same prefix can still count: the longest TTL."""
    from .catalog import catalog

    return float(max(catalog().ttl_seconds.values()))


# A call's row is written when it ends, and a fleet's clocks differ: a row may arrive this long
# after its start and still be on time. One arriving later is a late row (`Ledger.record_many`).
SETTLE_GRACE = 3600.0

# Any constant: the lock every process opening a PostgreSQL ledger takes while it migrates.
_MIGRATION_LOCK = 0x63616368


def default_path() -> Path:
    """`$CACHEWISE_HOME/ledger.db`, else `<user data dir>/cachewise/ledger.db`."""
    return default_home() / "ledger.db"


def key_workspace(api_key: str | None) -> str | None:
    """A one-way, stable name for the workspace of an API key; the key itself is never kept."""
    if not api_key:
        return None
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _open_wal(conn: sqlite3.Connection, patience: float) -> None:
    """Switch a new connection to WAL. Opening waits as long as it must, where a row's write is
    as impatient as `busy_timeout` says: while another connection creates the file or changes
    its journal mode, SQLite answers "locked" at once, without calling its busy handler, so
    this retries until `patience` runs out."""
    conn.execute(f"PRAGMA busy_timeout={int(patience * 1000)}")
    deadline = time.monotonic() + patience
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a committed call survives a crash
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def is_emulated(identifier: str | None) -> bool:
    """Whether a message or request id is the emulator's (`msg_emu…`, `req_emu…`)."""
    return bool(identifier) and _EMULATED_ID.match(str(identifier)) is not None


class Ledger:
    """A ledger on SQLite or PostgreSQL; safe to share across threads.

    Args:
        target: a path or `postgresql://` URL; default `default_path()`.
        create: False opens only a ledger that exists (reading commands never create one): a
            missing file, or a database without cachewise's tables, is a `LedgerError` that says
            where it looked.
        busy_timeout: seconds a SQLite write waits for another process's lock before the row
            is refused (and spooled by `Recorder`).
    """

    def __init__(
        self, target: str | Path | None = None, *, create: bool = True, busy_timeout: float = 5.0
    ) -> None:
        self.target = str(target) if target is not None else str(default_path())
        self.busy_timeout = busy_timeout
        self.dialect = (
            "postgres" if self.target.startswith(("postgresql://", "postgres://")) else "sqlite"
        )
        self._lock = threading.Lock()
        self._conn: Any = self._connect(create)
        try:
            if not create and not self._has_table("_cachewise_migrations"):
                raise LedgerError(f"{self._where()} is not a cachewise ledger (no calls table)")
            self.migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- connecting and migrating -----------------------------------------------------------------

    def _where(self) -> str:
        if self.dialect == "sqlite":
            return self.target
        return "the PostgreSQL database " + re.sub(r"//[^@/]*@", "//…@", self.target)

    def _connect(self, create: bool) -> Any:
        if self.dialect == "postgres":
            try:
                import psycopg
            except ImportError:
                raise LedgerError(
                    "a postgresql:// ledger needs the postgres extra: "
                    "pip install 'cachewise[postgres]'"
                ) from None
            try:
                pg = psycopg.connect(self.target, autocommit=True)
                # A report's statements are index seeks the planner prices high (a lookup per
                # write it will not run): compiled, each took half a second more than it ran.
                pg.execute("SET jit = off")
                return pg
            except psycopg.Error as exc:
                raise LedgerError(f"cannot connect to the ledger database: {exc}") from None
        path = Path(self.target)
        if not create and not path.is_file():
            raise LedgerError(
                f"no ledger at {path}: nothing has been recorded there (wrap, run and the proxy "
                "create it with their first call; --ledger names another)"
            )
        try:
            if create:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                # Created private before SQLite opens it; its -wal and -shm files inherit the mode.
                os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            _open_wal(conn, patience=max(self.busy_timeout, 30.0))
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger at {path}: {exc}") from None
        return conn

    def _has_table(self, name: str) -> bool:
        if self.dialect == "postgres":
            sql = (
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_name = ? AND table_schema = current_schema()"
            )
        else:
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        try:
            return self._execute(sql, (name,)).fetchone() is not None
        except Exception as exc:  # a file that is not a database at all
            raise LedgerError(f"{self._where()} is not a cachewise ledger: {exc}") from None

    @property
    def _mark(self) -> str:
        return "%s" if self.dialect == "postgres" else "?"

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", self._mark), tuple(params))

    def migrate(self) -> list[str]:
        """Apply the migrations this ledger has not seen, in order; return their names.

        The applied list is read inside the transaction that applies the rest, under a lock every
        opener takes, so processes opening a new ledger together apply each migration once."""
        applied: list[str] = []
        if self._has_table("_cachewise_migrations") and not self._missing():
            return applied  # the common case takes no write lock: readers may be read-only
        with self._lock, self._errors("migrate"), self._transaction():
            if self.dialect == "postgres":
                self._execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            self._execute(
                "CREATE TABLE IF NOT EXISTS _cachewise_migrations "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in self._execute("SELECT name FROM _cachewise_migrations")}
            for name, migration in MIGRATIONS:
                if name in done:
                    continue
                for statement in migration(self.dialect):
                    self._execute(statement)
                self._execute(
                    "INSERT INTO _cachewise_migrations (name, applied_at) VALUES (?, ?)",
                    (name, _utc(None)),
                )
                applied.append(name)
        return applied

    def _missing(self) -> list[str]:
        with self._lock, self._errors("read"):
            done = {row[0] for row in self._execute("SELECT name FROM _cachewise_migrations")}
        return [name for name, _ in MIGRATIONS if name not in done]

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.dialect == "postgres":
            with self._conn.transaction():
                yield
            return
        self._conn.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """The database's own errors (a full disk, a lock held too long) as a `LedgerError`; a
        PostgreSQL connection lost earlier is made again first."""
        if self.dialect == "postgres" and (self._conn.closed or self._conn.broken):
            self._conn = self._connect(True)
        try:
            yield
        except LedgerError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise LedgerError(f"cannot {doing} the ledger at {self._where()}: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise LedgerError(f"cannot {doing} {self._where()}: {exc}") from exc
            raise

    # -- writing -----------------------------------------------------------------------------------

    def record(self, call: CallRecord, *, prompt: dict[str, Any] | None = None) -> int | None:
        """Write one call and commit it before returning; return its id (None when a row with
        its `uid` was already there: it is kept once).

        Raises:
            LedgerError: the database refused the row (full disk, locked, unreachable).
        """
        return self.record_many([(call, prompt)])[0]

    def record_many(
        self, items: Sequence[tuple[CallRecord, dict[str, Any] | None]]
    ) -> list[int | None]:
        """Write several calls in one transaction (one durable commit for all: a server that
        answers many calls at once waits for one sync, not one each); their ids, as `record`.

        Raises:
            LedgerError: the database refused the rows (none of them is written).
        """
        ids: list[int | None] = []
        window = read_window()
        # A write is settled once its window and the grace have passed, so a read that arrives
        # later than the grace after its start may have read one settled as never read.
        late = time.time() - SETTLE_GRACE
        hourly: dict[tuple[str, tuple[Any, ...]], list[Any]] = {}
        # A write, or a read of writes, before the settled horizon makes those writes unsettled
        # again: the horizon goes back to the earliest write the batch may change.
        cached = [c.started_at - window for c, _ in items if c.read_hash or _writes(c)]
        with self._lock, self._errors("write to"), self._transaction():
            if cached:
                # First, and alone, so that a settling under way finishes before the reopening.
                back = min(cached)
                self._execute("UPDATE settled SET through = ? WHERE through > ?", (back, back))
            for call, _ in items:
                if call.read_hash is not None and call.started_at < late:
                    self._reopen(call)
            for call, prompt in items:
                row = call.to_row()
                sql = (
                    f"INSERT INTO calls ({', '.join(row)}) VALUES ({', '.join('?' * len(row))}) "
                    "ON CONFLICT (uid) DO NOTHING RETURNING id"
                )
                found = self._execute(sql, list(row.values())).fetchone()
                ids.append(None if found is None else int(found[0]))
                if found is not None:  # a row kept once is summed once
                    for table, key, add in hourly_rows(row):
                        summed = hourly.setdefault((table, key), [0] * len(add))
                        summed[:] = [a + b for a, b in zip(summed, add, strict=True)]
                if found is not None and prompt is not None:
                    self._execute(
                        "INSERT INTO prompts (call_id, request_json) VALUES (?, ?)",
                        (ids[-1], json.dumps(prompt)),
                    )
            self._sum_hourly(hourly)
        for (call, _), call_id in zip(items, ids, strict=True):
            if call_id is not None:
                call.id = call_id
        return ids

    def _sum_hourly(self, hourly: dict[tuple[str, tuple[Any, ...]], list[Any]]) -> None:
        """Add the calls just written to their hours' sums (in their transaction)."""
        # In one order in every transaction: two writers of the same hours wait, not deadlock.
        for (table, key), add in sorted(hourly.items(), key=lambda item: item[0]):
            keys, sums = HOURLY[table]
            added = ", ".join(f"{n} = {table}.{n} + excluded.{n}" for n in sums)
            self._execute(
                f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(sums)}) "
                f"VALUES ({', '.join('?' * (len(keys) + len(sums)))}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}",
                [*key, *add],
            )

    def _reopen(self, call: CallRecord) -> None:
        """A late call that read the cache may have read a write already settled as never read:
        every write it could have read is settled again by the next report."""
        same = "IS NOT DISTINCT FROM" if self.dialect == "postgres" else "IS"
        self._execute(
            f"UPDATE calls SET read_later = NULL WHERE read_later = 0 AND model = ? "
            f"AND workspace {same} ? AND started_at < ? AND started_at >= ? "
            "AND ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0",  # calls_never_read
            (call.model, call.workspace, call.started_at, call.started_at - read_window()),
        )

    def resum(self, *, settle: bool = True) -> None:
        """Make the hourly sums again from the calls after loading rows into `calls` some other
        way than `record` (a bulk `COPY`, an import), which the sums and the settled horizon do
        not see; then settle every write again (`rollup.settle`, in batches), so that the next
        report does not. On PostgreSQL, vacuum and analyze the calls first. Without `settle`,
        the next report settles them."""
        with self._lock, self._errors("write to"), self._transaction():
            for table in HOURLY:
                self._execute(f"DELETE FROM {table}")
            for statement in sum_calls_into_hourly(self.dialect):
                self._execute(statement)
            # Every write unsettled: the rows loaded may read those settled as never read.
            self._execute("UPDATE settled SET through = 0")
            self._execute(
                "UPDATE calls SET read_later = NULL WHERE read_later = 0 "
                "AND ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0"
            )
        if self.dialect == "postgres":
            # What autovacuum does some time after a bulk load, now: the planner's statistics,
            # and the visibility map, without which every index-only read (the gate's medians,
            # the prefix ranking, settling) visits the table too.
            with self._lock, self._errors("write to"):
                self._execute("VACUUM (ANALYZE) calls")
        if settle:
            from .rollup import settle as settle_writes

            settle_writes(self, read_window())

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One writing statement, committed (`?` marks its parameters); the rows it changed."""
        with self._lock, self._errors("write to"), self._transaction():
            return int(self._execute(sql, params).rowcount)

    def execute_many(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Writing statements in one transaction, committed together; the rows each changed."""
        with self._lock, self._errors("write to"), self._transaction():
            return [int(self._execute(sql, params).rowcount) for sql, params in statements]

    # -- reading -----------------------------------------------------------------------------------

    def calls(
        self, since: float | None = None, *, include_emulated: bool = True
    ) -> list[CallRecord]:
        """Every call started at or after `since` (unix seconds), oldest first; without
        `include_emulated`, not the calls the emulator answered (reports leave them out)."""
        where, params = self._where_clause(since, include_emulated, "")
        cols = ["id", *(c for c in _COLUMNS if c != "started_utc")]
        with self._lock, self._errors("read"):
            rows = self._execute(
                f"SELECT {', '.join(cols)} FROM calls {where} ORDER BY started_at, id", params
            ).fetchall()
        return [CallRecord.from_row(dict(zip(cols, row, strict=True))) for row in rows]

    def prompts(
        self, since: float | None = None, *, include_emulated: bool = True
    ) -> dict[int, dict[str, Any]]:
        """The stored requests (only calls recorded with `store_prompts`), by call id."""
        where, params = self._where_clause(since, include_emulated, "c.")
        with self._lock, self._errors("read"):
            rows = self._execute(
                "SELECT p.call_id, p.request_json FROM prompts p JOIN calls c ON c.id = p.call_id "
                + where,
                params,
            ).fetchall()
        return {int(call_id): json.loads(text) for call_id, text in rows}

    def emulated_calls(self, since: float | None = None) -> int:
        """How many calls started at or after `since` the emulator answered."""
        where, params = self._where_clause(since, True, "")
        where = f"{where} AND emulated = 1" if where else "WHERE emulated = 1"
        with self._lock, self._errors("read"):
            return int(self._execute(f"SELECT COUNT(*) FROM calls {where}", params).fetchone()[0])

    def known_uids(self, uids: Sequence[str]) -> set[str]:
        """Which of these row uids the ledger already holds."""
        found: set[str] = set()
        with self._lock, self._errors("read"):
            for start in range(0, len(uids), 500):
                chunk = list(uids[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                rows = self._execute(f"SELECT uid FROM calls WHERE uid IN ({marks})", chunk)
                found.update(r[0] for r in rows.fetchall())
        return found

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement (`?` marks its parameters on either database):
        how reports let the database do the summing."""
        with self._lock, self._errors("read"):
            return [tuple(row) for row in self._execute(sql, params).fetchall()]

    @contextmanager
    def staged(self, calls: Sequence[CallRecord]) -> Iterator[str]:
        """A temporary table of these calls, with the calls table's columns, for as long as the
        block lasts; yields its name. A report counts the spool's rows with the ledger's this way,
        in the same statements."""
        name = f"cw_staged_{uuid.uuid4().hex[:12]}"
        cols = [c for c in _COLUMNS if c != "started_utc"]
        # PostgreSQL's money columns round to 12 places; a staged call keeps every digit it has.
        exact = {"cost_usd", "cost_without_cache_usd"} if self.dialect == "postgres" else set()
        shape = [f"CAST({c} AS NUMERIC) AS {c}" if c in exact else c for c in cols]
        with self._lock, self._errors("read"):
            self._execute(
                f"CREATE TEMP TABLE {name} AS SELECT {', '.join(shape)} FROM calls LIMIT 0"
            )
            sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for call in calls:
                row = call.to_row()
                self._execute(sql, [row[c] for c in cols])
        try:
            yield name
        finally:
            with self._lock, self._errors("read"):
                self._execute(f"DROP TABLE {name}")

    @staticmethod
    def _where_clause(
        since: float | None, include_emulated: bool, prefix: str
    ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if since is not None:
            clauses.append(f"{prefix}started_at >= ?")
            params.append(since)
        if not include_emulated:
            clauses.append(f"{prefix}emulated = 0")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

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


def _writes(call: CallRecord) -> bool:
    return call.usage.ephemeral_5m_input_tokens + call.usage.ephemeral_1h_input_tokens > 0


def open_ledger(target: str | Path | Ledger | None = None, *, create: bool = True) -> Ledger:
    """A ledger at a path or URL (default: `default_path()`); a Ledger is returned as it is.
    Reading commands pass `create=False`: they never create a ledger."""
    return target if isinstance(target, Ledger) else Ledger(target, create=create)


def _utc(t: float | None) -> str:
    moment = datetime.now(UTC) if t is None else datetime.fromtimestamp(t, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_COLUMNS = tuple(CallRecord(0.0, "").to_row())
