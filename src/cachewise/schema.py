"""The ledger's schema: its migrations, in order, and the shape of its hourly sums.

A migration is a list of statements for a dialect ("sqlite" or "postgres"); `Ledger.migrate`
applies the ones a ledger has not seen, once each, and a shipped migration never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["HOURLY", "MIGRATIONS", "hourly_rows", "sum_calls_into_hourly"]


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


def _m002_uid_and_emulated(dialect: str) -> list[str]:
    # uid: a row written twice (from the spool after a crash) is kept once. emulated: rehearsals
    # against the emulator never pass for money spent.
    return [
        "ALTER TABLE calls ADD COLUMN uid TEXT",
        "CREATE UNIQUE INDEX calls_uid ON calls (uid)",
        "ALTER TABLE calls ADD COLUMN emulated INTEGER NOT NULL DEFAULT 0",
    ]


def _m003_wire_and_gate(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    return [
        "ALTER TABLE calls ADD COLUMN intended_breakpoints TEXT",
        "ALTER TABLE calls ADD COLUMN wire TEXT",
        "ALTER TABLE calls ADD COLUMN gate_role TEXT",
        f"ALTER TABLE calls ADD COLUMN gate_wait_s {real}",
        "ALTER TABLE calls ADD COLUMN prefix_hash TEXT",
        "CREATE INDEX calls_prefix_hash ON calls (prefix_hash)",
    ]


def _m004_report_indexes(dialect: str) -> list[str]:
    # The report asks, for each call that wrote, whether a later call of the same model read one
    # of its prefixes: one index seek per prefix, not a scan of every read. And it ranks prefixes
    # by spend, and sums the warm gate's waits with their medians, each from an index that holds
    # all it reads, in the order it wants: no sort, no row visited.
    return [
        "CREATE INDEX calls_read ON calls (read_hash, model, started_at)",
        "CREATE INDEX calls_prefix_spend ON calls (prefix_hash, emulated, started_at, cost_usd)",
        "CREATE INDEX calls_gate ON calls (gate_role, gate_wait_s, emulated, started_at)",
    ]


def _m005_report_sums(dialect: str) -> list[str]:
    # A report of ten million calls sums columns: money as integers in units of 1e-10 dollars
    # beside its decimal text (which stays the record), and, per writing call, whether a later
    # call read it, remembered once that can no longer change (`rollup.settle`). Rows written
    # before this have their integers made here, from their text, exactly or not at all.
    big = "BIGINT" if dialect == "postgres" else "INTEGER"
    made = []
    for col in ("cost_usd", "cost_without_cache_usd"):
        if dialect == "postgres":
            made.append(
                f"CASE WHEN {col} = round({col}, 10) AND {col} >= 0 AND {col} < 100000000 "
                f"THEN CAST({col} * 10000000000 AS BIGINT) END"
            )
        else:
            whole = f"CAST({col} AS INTEGER)"
            made.append(
                f"CASE WHEN {sqlite_plain_money(col)} THEN {whole} * 10000000000 + "
                f"CAST(ROUND((CAST({col} AS REAL) - {whole}) * 1e10) AS INTEGER) END"
            )
    return [
        f"ALTER TABLE calls ADD COLUMN cost_e10 {big}",
        f"ALTER TABLE calls ADD COLUMN cost_without_cache_e10 {big}",
        "ALTER TABLE calls ADD COLUMN read_later INTEGER",
        f"UPDATE calls SET cost_e10 = {made[0]}, cost_without_cache_e10 = {made[1]}",
        "CREATE INDEX calls_unsettled ON calls (started_at) WHERE read_later IS NULL "
        "AND ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0",
    ]


def sqlite_plain_money(col: str) -> str:
    """SQL true when SQLite's TEXT decimal in `col` is digits, with at most 10 decimal places,
    under $10,000: a double holds it to within 1e-12, so its fraction rounds to the exact count
    of 1e-10s."""
    return (
        f"({col} GLOB '[0-9]*' AND instr({col}, 'E') = 0 "
        f"AND length({col}) - instr({col}, '.') <= 10 AND CAST({col} AS REAL) < 10000)"
    )


def _m006_hourly(dialect: str) -> list[str]:
    # The report's sums per hour (and model, workspace, cause, tags and emulated), kept with the
    # calls in the same transaction that writes them: a report of ten million calls reads
    # thousands of these instead. What a sum cannot hold is read from the calls, through
    # indexes that hold only those rows: the writes never read (or not settled yet), and costs
    # without their integers. Rows written before this are summed here once.
    big = "BIGINT" if dialect == "postgres" else "INTEGER"
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    sums = ", ".join(f"{n} {real if n == 'wait_s' else big} NOT NULL" for n in _M006_SUMS)
    return [
        f"CREATE TABLE hourly (hour {big} NOT NULL, model TEXT NOT NULL, workspace TEXT NOT NULL, "
        f"cause TEXT NOT NULL, tags TEXT NOT NULL, gate_role TEXT NOT NULL, "
        f"emulated INTEGER NOT NULL, {sums}, PRIMARY KEY ({', '.join(_M006_KEYS)}))",
        _m006_sum_calls(dialect),
        "CREATE INDEX calls_never_read ON calls (started_at) WHERE read_later = 0 "
        "AND ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0",
        "CREATE INDEX calls_text_costs ON calls (started_at) "
        "WHERE cost_e10 IS NULL OR cost_without_cache_e10 IS NULL",
    ]


def _m006_sum_calls(dialect: str) -> str:
    """m006's SQL that adds every call to its hourly sums (into an empty table)."""
    hour = (
        "CAST(floor(started_at) AS BIGINT) / 3600"
        if dialect == "postgres"
        else "CAST(started_at AS INTEGER) / 3600"
    )
    keyed = ", ".join(f"CASE WHEN {c} IS NULL THEN '' ELSE '=' || {c} END" for c in _M006_KEYED)
    g = "cost_e10 IS NOT NULL AND cost_without_cache_e10 IS NOT NULL"
    writes = "ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0"
    values = [
        "COUNT(*)",
        "SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END)",
        "SUM(input_tokens)",
        "SUM(cache_read_input_tokens)",
        "SUM(ephemeral_5m_input_tokens)",
        "SUM(ephemeral_1h_input_tokens)",
        "SUM(output_tokens)",
        f"SUM(CASE WHEN {writes} THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN cache_read_input_tokens > 0 THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN wire = 'lost' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN wire = 'changed' THEN 1 ELSE 0 END)",
    ]
    for col in ("cost_e10", "cost_without_cache_e10"):
        values += [
            f"SUM(CASE WHEN {g} THEN {col} / 10000000000 ELSE 0 END)",
            f"SUM(CASE WHEN {g} THEN {col} - {col} / 10000000000 * 10000000000 ELSE 0 END)",
        ]
    values += ["COUNT(gate_wait_s)", "COALESCE(SUM(gate_wait_s), 0)"]
    return (
        f"INSERT INTO hourly SELECT {hour}, model, {keyed}, emulated, {', '.join(values)} "
        "FROM calls GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )


# m006's hourly table: its sums, in its column order (after its key), and its key.
_M006_SUMS = (
    "calls", "errors", "input_tokens", "cache_read_input_tokens", "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens", "output_tokens", "writes", "reads", "markers_lost",
    "markers_changed", "cost_whole", "cost_rest", "plain_whole", "plain_rest", "waited", "wait_s",
)  # fmt: skip
_M006_KEYS = ("hour", "model", "workspace", "cause", "tags", "gate_role", "emulated")
_M006_KEYED = ("workspace", "cause", "tags", "gate_role")


def _m007_smaller_hourly(dialect: str) -> list[str]:
    # m006 keyed its sums by tags and the gate's role too: a ledger of many tags (a run id) or
    # many roles had nearly as many hourly rows as calls. Now the report's sums are keyed by
    # hour, model, workspace and cause; the sums by tag are a table of their own (a group by tag
    # reads only it), and the gate's counts another, keyed by its role. All three are made from
    # m006's sums (a sum of sums), not from the calls. And settling no longer marks each write
    # read: `settled.through` says up to when every write is settled, and a write before it
    # still NULL was read (`rollup.settle`); 0 from the start makes every write unsettled.
    # Whether a write was read is answered from one index alone (`calls_read` sent each match
    # to the table for its workspace and emulated: a random read of the table per write).
    statements = []
    for table, (keys, sums) in HOURLY.items():
        made = f"{table}_m007" if table == "hourly" else table
        statements.append(_create_hourly(dialect, made, keys, sums))
        keyed = ", ".join(keys)
        gated = " WHERE gate_role <> ''" if "gate_role" in keys else ""
        statements.append(
            f"INSERT INTO {made} ({keyed}, {', '.join(sums)}) SELECT {keyed}, "
            f"{', '.join(f'SUM({n})' for n in sums)} FROM hourly{gated} GROUP BY {keyed}"
        )
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    return [
        *statements,
        "DROP TABLE hourly",
        "ALTER TABLE hourly_m007 RENAME TO hourly",
        f"CREATE TABLE settled (through {real} NOT NULL)",
        "INSERT INTO settled (through) VALUES (0)",
        "CREATE INDEX calls_read_in ON calls (read_hash, model, emulated, started_at, workspace)",
        "DROP INDEX calls_read",
    ]


def _create_hourly(dialect: str, table: str, keys: tuple[str, ...], sums: tuple[str, ...]) -> str:
    big = "BIGINT" if dialect == "postgres" else "INTEGER"
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    types = {"hour": big, "emulated": "INTEGER"}
    cols = [f"{k} {types.get(k, 'TEXT')} NOT NULL" for k in keys]
    cols += [f"{n} {real if n == 'wait_s' else big} NOT NULL" for n in sums]
    return f"CREATE TABLE {table} ({', '.join(cols)}, PRIMARY KEY ({', '.join(keys)}))"


def sum_calls_into_hourly(dialect: str) -> list[str]:
    """SQL that adds every call to the hourly sums (into empty tables)."""
    hour = (
        "CAST(floor(started_at) AS BIGINT) / 3600"
        if dialect == "postgres"
        else "CAST(started_at AS INTEGER) / 3600"
    )
    g = "cost_e10 IS NOT NULL AND cost_without_cache_e10 IS NOT NULL"
    writes = "ephemeral_5m_input_tokens + ephemeral_1h_input_tokens > 0"
    summed = {
        "calls": "COUNT(*)",
        "errors": "SUM(CASE WHEN status = 'ok' THEN 0 ELSE 1 END)",
        **{n: f"SUM({n})" for n in _TOKENS},
        "writes": f"SUM(CASE WHEN {writes} THEN 1 ELSE 0 END)",
        "reads": "SUM(CASE WHEN cache_read_input_tokens > 0 THEN 1 ELSE 0 END)",
        "markers_lost": "SUM(CASE WHEN wire = 'lost' THEN 1 ELSE 0 END)",
        "markers_changed": "SUM(CASE WHEN wire = 'changed' THEN 1 ELSE 0 END)",
        "waited": "COUNT(gate_wait_s)",
        "wait_s": "COALESCE(SUM(gate_wait_s), 0)",
    }
    for name, col in (("cost", "cost_e10"), ("plain", "cost_without_cache_e10")):
        summed[f"{name}_whole"] = f"SUM(CASE WHEN {g} THEN {col} / 10000000000 ELSE 0 END)"
        summed[f"{name}_rest"] = (
            f"SUM(CASE WHEN {g} THEN {col} - {col} / 10000000000 * 10000000000 ELSE 0 END)"
        )
    out = []
    for table, (keys, sums) in HOURLY.items():
        key = [
            hour
            if k == "hour"
            else f"CASE WHEN {k} IS NULL THEN '' ELSE '=' || {k} END"
            if k in _KEYED
            else k
            for k in keys
        ]
        gated = " WHERE gate_role IS NOT NULL" if "gate_role" in keys else ""
        out.append(
            f"INSERT INTO {table} ({', '.join(keys)}, {', '.join(sums)}) "
            f"SELECT {', '.join(key)}, {', '.join(summed[n] for n in sums)} FROM calls{gated} "
            f"GROUP BY {', '.join(str(n + 1) for n in range(len(keys)))}"
        )
    return out


_TOKENS = (
    "input_tokens", "cache_read_input_tokens", "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens", "output_tokens",
)  # fmt: skip
_CALL_SUMS = (
    "calls", "errors", *_TOKENS, "writes", "reads", "markers_lost", "markers_changed",
    "cost_whole", "cost_rest", "plain_whole", "plain_rest",
)  # fmt: skip
# The hourly sums (m007), by table: its key and its sums, in column order. A call is in one row
# of each (of `hourly_gate` only when the gate gave it a role). Few keys each: an hour holds
# models x workspaces x causes rows, tags x causes, and roles.
HOURLY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hourly": (("hour", "model", "workspace", "cause", "emulated"), _CALL_SUMS),
    "hourly_tags": (("hour", "tags", "cause", "emulated"), _CALL_SUMS),
    "hourly_gate": (("hour", "gate_role", "emulated"), ("calls", "waited", "wait_s")),
}
# Key columns that may be NULL in a call, kept as '' (NULL) or '=' + the value: a primary key
# has no NULLs, and an empty workspace is not no workspace.
_KEYED = ("workspace", "cause", "tags", "gate_role")


def hourly_rows(row: dict[str, Any]) -> list[tuple[str, tuple[Any, ...], list[Any]]]:
    """A call's rows in the hourly sums: each table, the call's key there, and what it adds."""
    cu, cw = row["cost_e10"], row["cost_without_cache_e10"]
    integers = cu is not None and cw is not None
    w5, w1 = row["ephemeral_5m_input_tokens"], row["ephemeral_1h_input_tokens"]
    cost, plain = (divmod(cu, 10**10), divmod(cw, 10**10)) if integers else ((0, 0), (0, 0))
    adds = {
        "calls": 1,
        "errors": int(row["status"] != "ok"),
        **{n: row[n] for n in _TOKENS},
        "writes": int(w5 + w1 > 0),
        "reads": int(row["cache_read_input_tokens"] > 0),
        "markers_lost": int(row["wire"] == "lost"),
        "markers_changed": int(row["wire"] == "changed"),
        "cost_whole": cost[0],
        "cost_rest": cost[1],
        "plain_whole": plain[0],
        "plain_rest": plain[1],
        "waited": int(row["gate_wait_s"] is not None),
        "wait_s": row["gate_wait_s"] or 0.0,
    }
    keyed = {
        "hour": int(row["started_at"] // 1) // 3600,
        **{k: row[k] for k in ("model", "emulated")},
        **{k: "" if row[k] is None else "=" + row[k] for k in _KEYED},
    }
    return [
        (table, tuple(keyed[k] for k in keys), [adds[n] for n in sums])
        for table, (keys, sums) in HOURLY.items()
        if row["gate_role"] is not None or "gate_role" not in keys
    ]


MIGRATIONS: list[tuple[str, Callable[[str], list[str]]]] = [
    ("m001_initial", _m001_initial),
    ("m002_uid_and_emulated", _m002_uid_and_emulated),
    ("m003_wire_and_gate", _m003_wire_and_gate),
    ("m004_report_indexes", _m004_report_indexes),
    ("m005_report_sums", _m005_report_sums),
    ("m006_hourly", _m006_hourly),
    ("m007_smaller_hourly", _m007_smaller_hourly),
]
