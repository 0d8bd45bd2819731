"""The query sandbox: a DuckDB connection confined to one store's files, and the one read-only
statement ``lrsweep query`` runs on it.

Two layers, each made of DuckDB's own controls (no string filtering of SQL):

1. **The connection** (:func:`connect`, behind ``orchestrator.query.connect`` and every query).
   Once the views are built it may read exactly the files they read (``allowed_paths``, never
   a directory), with ``enable_external_access`` off: no other file can be read or written
   (``read_csv('/etc/passwd')``, ``COPY … TO``, ``ATTACH 'x.db'``, ``INSTALL``, ``EXPORT``).
   Extension auto-install/auto-load, community extensions, persistent secrets, Python
   replacement scans and the spill directory (DuckDB allows its own) are off, and ``lock_configuration`` makes all of it permanent for the
   connection: ``SET``/``RESET``/``PRAGMA`` of any setting then fails.
2. **The statement** (:func:`read_only_statement`, applied by ``query_arrow``/``run_query``/
   ``query_df``): DuckDB's parser splits the text; it must be ONE statement of type ``SELECT``
   (which covers ``WITH``, ``FROM …``, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE``, ``SHOW``) or an
   ``EXPLAIN`` of one. ``EXPLAIN ANALYZE`` runs its statement, so the explained statement is
   split off with DuckDB's tokenizer and must itself be a ``SELECT``.

Why both: DuckDB's allowed paths are allowed for writing too — ``COPY … TO
'<a listed fragment>' (USE_TMP_FILE false)`` would overwrite it. Layer 2 refuses every
statement that writes; layer 1 stops everything that reads or writes beyond the store's listed
files whatever the statement. A caller of :func:`connect` who runs statements of their own gets
layer 1 only.

Views are a snapshot of one listing (``sql.py``); a query racing a compaction may find a listed
fragment deleted under it. :func:`run` then connects again to a fresh listing (up to
:data:`ATTEMPTS` times, pausing 0.05 s, 0.1 s, ...): it retries only when a file the
connection listed has vanished or changed, or DuckDB failed on I/O (a missing file), so a bad
query fails at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from ._layout import READ_ATTEMPTS, ListingRecorder, should_retry
from .errors import QueryError, StoreError
from .sql import connect as _connect_views

if TYPE_CHECKING:
    from .store import ResultsStore

__all__ = ["ATTEMPTS", "SETTINGS", "confine", "connect", "read_only_statement", "run"]

T = TypeVar("T")

ATTEMPTS = READ_ATTEMPTS  # connections tried per query when listed files vanish (a compaction)

# Applied in this order after ``allowed_paths``; external access goes off last but one (the
# allowed paths cannot change after it), and the lock makes the whole list permanent.
SETTINGS: tuple[tuple[str, str], ...] = (
    ("autoinstall_known_extensions", "false"),
    ("autoload_known_extensions", "false"),
    ("allow_community_extensions", "false"),
    ("allow_persistent_secrets", "false"),
    ("python_enable_replacements", "false"),  # no scans of the caller's Python variables
    # No spill directory: DuckDB would otherwise allow reading and writing <cwd>/.tmp/.
    ("temp_directory", "''"),
    ("enable_external_access", "false"),
    ("lock_configuration", "true"),
)
# Settings newer DuckDB versions have; applied when present, skipped when the version lacks them.
OPTIONAL_SETTINGS = frozenset({"allow_extension_repositories"})
_OPTIONAL_VALUES = (("allow_extension_repositories", "'forbidden'"),)

_ALLOWED_KINDS = "SELECT, WITH, DESCRIBE, SUMMARIZE, SHOW, or EXPLAIN of one of them"


def _message(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------- statement
def read_only_statement(sql: str) -> str:
    """The text of the single read-only statement in ``sql``.

    Raises:
        QueryError: a parse error ("query failed: …"), or not exactly one read-only statement
            ("query refused: …").
    """
    statements = _split(sql)
    if len(statements) != 1:
        raise QueryError(
            f"query refused: one statement per query ({_ALLOWED_KINDS}), got {len(statements)}"
        )
    statement = statements[0]
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        return statement.query
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _split(_explained(statement.query))
        if len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT:
            return statement.query
        what = inner[0].type.name if len(inner) == 1 else f"{len(inner)} statements"
        raise QueryError(f"query refused: EXPLAIN only of a read-only statement, got EXPLAIN {what}")
    raise QueryError(f"query refused: only read-only statements run ({_ALLOWED_KINDS}), got {kind.name}")


def _split(sql: str) -> list[Any]:
    try:
        return list(duckdb.extract_statements(sql))
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {_message(exc)}") from None


def _explained(query: str) -> str:
    """The statement an ``EXPLAIN [ANALYZE] [(options)] <statement>`` explains, found with
    DuckDB's tokenizer (comments skipped, the options' parentheses balanced)."""
    tokens = duckdb.tokenize(query)
    ends = [start for start, _ in tokens[1:]] + [len(query)]
    words = [
        (start, query[start:end].strip(), kind)
        for (start, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]
    i = 1  # words[0] is EXPLAIN (the parser said so)
    if i < len(words) and words[i][1].upper() in ("ANALYZE", "ANALYSE"):
        i += 1
    if i < len(words) and words[i][1].startswith("("):
        depth = 0
        while i < len(words):
            if words[i][2] == duckdb.token_type.operator:
                depth += words[i][1].count("(") - words[i][1].count(")")
            i += 1
            if depth <= 0:
                break
    return query[words[i][0] :] if i < len(words) else ""


# ---------------------------------------------------------------------------------- connection
def confine(con: duckdb.DuckDBPyConnection, files: Iterable[str]) -> None:
    """Confine ``con`` to reading ``files`` (see the module docstring); irreversible."""
    con.execute(f"SET allowed_paths = [{', '.join(_sql_str(f) for f in files)}]")
    known = {row[0] for row in con.execute("SELECT name FROM duckdb_settings()").fetchall()}
    for name, value in _OPTIONAL_VALUES:
        if name in known:
            con.execute(f"SET {name} = {value}")
    for name, value in SETTINGS:
        if name not in known:  # fail closed: a DuckDB without the control cannot be confined
            raise StoreError(
                f"duckdb {duckdb.__version__} lacks the setting {name!r} the query sandbox "
                "needs; install duckdb>=1.2"
            )
        con.execute(f"SET {name} = {value}")


def _open(listings: ListingRecorder, union_by_name: bool) -> duckdb.DuckDBPyConnection:
    con = _connect_views(listings, union_by_name=union_by_name)  # type: ignore[arg-type]
    try:
        confine(con, [f.path for f in listings.entries()] if listings.is_local else [])
    except BaseException:
        con.close()
        raise
    return con


def connect(store: ResultsStore, *, union_by_name: bool = False) -> duckdb.DuckDBPyConnection:
    """``sql.connect``'s views over ``store`` on a connection confined by :func:`confine`."""
    return _open(ListingRecorder(store), union_by_name)


def run(store: ResultsStore, fn: Callable[[duckdb.DuckDBPyConnection], T], *,
        union_by_name: bool = False, attempts: int | None = None) -> T:
    """``fn(con)`` on a confined connection; retried on a fresh listing when it fails because
    listed files vanished or changed under it (a racing compaction), at most ``attempts``
    (default :data:`ATTEMPTS`) times in all."""
    attempts = attempts or ATTEMPTS
    for attempt in range(1, attempts + 1):
        listings = ListingRecorder(store)
        try:
            con = _open(listings, union_by_name)
            try:
                return fn(con)
            finally:
                con.close()
        except Exception as exc:
            if not should_retry(store.fs, listings.entries(), exc, attempt, attempts=attempts,
                                missing=(duckdb.IOException,)):
                raise
    raise AssertionError("unreachable")  # pragma: no cover
