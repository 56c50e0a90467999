"""Statements of the hot path, compiled once and run on SQLite's own cursor.

Every webhook that grants credits runs eight statements (thirteen before the balance, thresholds, billing details
and refunds were read within other statements). Through SQLAlchemy's ``Connection.execute``
each costs some 20 µs of Python before and after SQLite's own work (an execution context, a result object),
more than SQLite takes for these point lookups by key, and that overhead is what bounded the backend's
webhook throughput (``bench/webhooks.py``). :func:`run` compiles a Core statement once per dialect and set
of parameters, then on SQLite gives the values straight to the driver's cursor, with the same type
conversions SQLAlchemy would make, and wraps the driver's errors in SQLAlchemy's exceptions as
``Connection.execute`` does, so that :mod:`backend.db` sees storage faults alike. On PostgreSQL, and for any
statement whose compiled form needs more than that (defaults computed in Python, expanding ``IN``), it is
``Connection.execute``.

Only for statements built once, at import, and registered by name with :func:`hot`: the compiled forms are
kept per statement object, and :data:`HOT` is the list the tests go through, each statement run both ways
(``tests/backend/test_prepared.py``). A statement not registered is simply run by SQLAlchemy.
:func:`set_enabled` turns the whole path off (``CREDITDESK_PREPARED_STATEMENTS=off``): everything then runs
through ``Connection.execute``, which is how to rule this module out when a query answers oddly.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, Select, exc
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any] | None
S = TypeVar("S", bound=Executable)

# The statements of the hot path, by name; and whether they run on SQLite's cursor.
HOT: dict[str, Executable] = {}
_HOT_IDS: set[int] = set()
_enabled = True


def hot(name: str, statement: S) -> S:
    """Register ``statement``, built once at import, as one of the hot path's; returns it."""
    if HOT.get(name, statement) is not statement:
        raise ValueError(f"two hot statements are named {name!r}")
    HOT[name] = statement
    _HOT_IDS.add(id(statement))
    return statement


def set_enabled(enabled: bool) -> None:
    """Run the registered statements on SQLite's cursor (the default), or everything through SQLAlchemy."""
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


def is_hot(statement: Executable) -> bool:
    return id(statement) in _HOT_IDS


class Rows:
    """What a statement answered: its rows as dicts of column name to value, and the rows it changed.

    A plain class with slots, not a frozen dataclass: one is made per statement on the hot path, and a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __repr__(self) -> str:
        return f"Rows({self.rows!r}, {self.rowcount!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rows) and (self.rows, self.rowcount) == (other.rows, other.rowcount)

    __hash__ = None  # type: ignore[assignment]  # mutable, as its lists are

    def first(self) -> dict[str, Any] | None:
        return self.rows[0] if self.rows else None

    def one(self) -> dict[str, Any]:
        if len(self.rows) != 1:
            raise exc.NoResultFound("expected one row") if not self.rows else exc.MultipleResultsFound(
                "expected one row")
        return self.rows[0]

    def scalar_one(self) -> Any:
        return next(iter(self.one().values()))

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return next(iter(self.rows[0].values())) if self.rows else None


@dataclass
class _Compiled:
    sql: str
    # Per placeholder, in order: the caller's parameter of that name (given) or else the value bound when the
    # statement was built (a literal), and the conversion SQLAlchemy applies to it (none needed: empty).
    binds: tuple[tuple[str, bool, Any], ...]
    conversions: tuple[Processor, ...]
    results: tuple[Processor, ...]  # a conversion per result column, in order (none needed: empty)
    names: tuple[str, ...] | None = None  # the result columns' names, as the cursor first described them
    # The arguments straight from the caller's parameters (one call in C), when every placeholder is one of them and
    # none needs a conversion, as for most of the hot path's statements; else None and they are worked out per bind.
    pick: Callable[[Mapping[str, Any]], Any] | None = None
    converting: tuple[tuple[int, Callable[[Any], Any]], ...] = ()  # the result columns to convert, by position


# The compiled form per registered statement and the names of the parameters it was run with, in their order
# (:func:`run`): a dict lookup, where the cache of :func:`_compile` needs them sorted first.
_BY_CALL: dict[tuple[Executable, tuple[str, ...]], _Compiled | None] = {}
_BY_CALL_MAX = 1024
_UNKNOWN = _Compiled("", (), (), ())


def run(conn: Connection, statement: Executable, params: Mapping[str, Any]) -> Rows:
    """Execute ``statement`` with ``params`` inside ``conn``'s transaction."""
    if _enabled and id(statement) in _HOT_IDS and conn.dialect.name == "sqlite" and conn.in_transaction():
        # Looked up by the parameters' names as given (a caller gives them in one order), before sorting them.
        key = (statement, tuple(params))
        compiled = _BY_CALL.get(key, _UNKNOWN)
        if compiled is _UNKNOWN:
            compiled = _compile(statement, conn.dialect, tuple(sorted(params)))
            if len(_BY_CALL) >= _BY_CALL_MAX:
                _BY_CALL.clear()
            _BY_CALL[key] = compiled
        if compiled is not None:
            # The pool's DBAPI connection, pysqlite's own (for pysqlite it is the driver's connection; reading it is
            # a fifth of the cost of driver_connection's properties).
            return _execute(conn.connection.dbapi_connection, conn.dialect, compiled, params)
    result = conn.execute(statement, dict(params))
    rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
    return Rows(rows, result.rowcount)


def run_outside_transaction(driver_connection: Any, dialect: Dialect, statement: Executable,
                            params: Mapping[str, Any]) -> Rows:
    """Execute one read on a SQLite driver connection in autocommit mode: a single statement reads one
    consistent snapshot without BEGIN and COMMIT (:meth:`backend.db.Database.peek`). Only a registered SELECT:
    outside a transaction a write would commit on its own."""
    if not isinstance(statement, Select):
        raise ValueError("only a SELECT runs outside a transaction")
    if id(statement) not in _HOT_IDS:
        raise ValueError("only a registered statement runs on the driver's cursor")
    compiled = _compile(statement, dialect, tuple(sorted(params)))
    if compiled is None:
        raise ValueError("this statement cannot run on the driver's cursor")
    return _execute(driver_connection, dialect, compiled, params)


def _execute(driver_connection: Any, dialect: Dialect, compiled: _Compiled, params: Mapping[str, Any]) -> Rows:
    pick = compiled.pick
    if pick is not None:
        args = pick(params)
    else:
        args = [params[key] if given else value for key, given, value in compiled.binds]
        if compiled.conversions:
            args = [value if convert is None else convert(value)
                    for convert, value in zip(compiled.conversions, args, strict=True)]
    try:
        cursor = driver_connection.execute(compiled.sql, args)
        try:
            description = cursor.description
            raw = cursor.fetchall() if description else []
            rowcount = cursor.rowcount
        finally:
            cursor.close()
    except Exception as error:
        dbapi = dialect.loaded_dbapi
        if not isinstance(error, dbapi.Error):
            raise
        raise exc.DBAPIError.instance(compiled.sql, args, error, dbapi.Error, dialect=dialect) from error
    if not raw:
        return Rows([], rowcount)
    names = compiled.names
    if names is None:
        names = compiled.names = tuple(column[0] for column in description)
    if compiled.converting:
        rows = []
        for row in raw:
            values = list(row)
            for position, convert in compiled.converting:
                values[position] = convert(values[position])
            rows.append(dict(zip(names, values)))  # noqa: B905 (as long as the description, and faster unchecked)
        return Rows(rows, rowcount)
    return Rows([dict(zip(names, row)) for row in raw], rowcount)  # noqa: B905 (rows are as long as the description)


@functools.lru_cache(maxsize=512)
def _compile(statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled | None:
    """The statement compiled for ``dialect`` with these parameter names (an INSERT or UPDATE sets the columns
    it is given, as ``Connection.execute`` compiles it); None if it needs SQLAlchemy's execution."""
    compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    needs_execution_context = (
        compiled.positiontup is None or compiled.insert_prefetch or compiled.update_prefetch
        or compiled.literal_execute_params or compiled.post_compile_params
    )
    if needs_execution_context:
        return None
    binds, conversions = [], []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        given = bind.key in keys
        if bind.callable is not None or (bind.required and not given):
            return None  # a value computed at execution, or one missing: SQLAlchemy's to work out or refuse
        binds.append((bind.key, given, None if given else bind.value))
        conversions.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
    columns = list(getattr(statement, "exported_columns", ()))
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    pick: Callable[[Mapping[str, Any]], Any] | None = None
    if not any(conversions) and all(given for _, given, _ in binds):
        keys_in_order = [key for key, _, _ in binds]
        if len(keys_in_order) == 1:
            only = keys_in_order[0]
            pick = functools.partial(_one_arg, only)
        elif keys_in_order:
            pick = operator.itemgetter(*keys_in_order)  # a tuple of the values, in placeholder order
        else:
            pick = _no_args
    return _Compiled(compiled.string, tuple(binds), tuple(conversions) if any(conversions) else (),
                     results if any(results) else (), pick=pick,
                     converting=tuple((position, convert) for position, convert in enumerate(results)
                                      if convert is not None))


def _one_arg(key: str, params: Mapping[str, Any]) -> tuple[Any]:
    return (params[key],)


def _no_args(params: Mapping[str, Any]) -> tuple[()]:
    return ()
