"""Engine and session factory for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, event, exc
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.util import greenlet_spawn

SQLITE_BUSY_TIMEOUT_MS = 15_000
# Execution option of read-only sessions on SQLite: `BEGIN` instead of `BEGIN IMMEDIATE`.
_DEFERRED_BEGIN = "schoolbot_deferred_begin"
_SQLITE_PRAGMAS = (
    "PRAGMA foreign_keys=ON",
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
)
# PostgreSQL connections (see `_configure_postgres`): replaced after this long in the pool, and pinged
# at checkout only when unused for longer than PING_IDLE_SECONDS.
POOL_RECYCLE_SECONDS = 1800
PING_IDLE_SECONDS = 30.0
# Kept connections, and how many more may be opened for a moment. SQLAlchemy's 5 (+10) were all in use
# under load (200 staff: every update in flight holds one for its statements), and each extra one is
# opened (TCP, the server's start-up, the JSON codecs, every statement prepared again) and closed after
# one use: 360 connections opened for 3,200 updates. 20 kept: 327, the peak at 30 (no overflow: 20 —
# but a task holding a connection while it asks for a second would wait for itself).
POOL_SIZE, POOL_OVERFLOW = 20, 10
T = TypeVar("T")
# Session.info keys: the sessionmaker's `shared` dict (process-wide helpers of this database, such as
# the drafts' cache), and the callables to run once the session's transaction has ended.
_SHARED = "schoolbot_shared"
_ENDED = "schoolbot_when_ended"
_CONNECTION = "schoolbot_core_connection"  # the one-hop path's connection (`connection_of`)


def shared(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any] | None:
    """What this process keeps beside the database (the drafts' cache), reachable from every session
    of `sessionmaker` (`shared_of`); None for a sessionmaker not made by `create_sessionmaker`."""
    info = sessionmaker.kw.get("info") or {}
    found: dict[str, Any] | None = info.get(_SHARED)
    return found


def shared_of(session: Session) -> dict[str, Any]:
    """`shared` of the sessionmaker the session came from (empty for another session)."""
    found: dict[str, Any] = session.info.get(_SHARED) or {}
    return found


def when_ended(session: Session, fn: Callable[[], None]) -> bool:
    """Call `fn` once the transaction of `session` has ended, committed or rolled back (a cache told
    of a change made inside a service's transaction: told again after the commit, no read made
    meanwhile can leave the old value behind). False when the session's transaction is not run by
    this module's writers (`write_core`, `sessionmaker.begin()`)."""
    hooks: list[Callable[[], None]] | None = session.info.get(_ENDED)
    if hooks is None:
        return False
    hooks.append(fn)
    return True


def _run_ended(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        hook()
    hooks.clear()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, also in URI form (`sqlite+aiosqlite:///file:/p.db?mode=ro&uri=true`);
    None for another database or an in-memory one."""
    if not is_sqlite(url):
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = database[len("file:") :]
    return None if database in ("", ":memory:") else Path(database)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL, foreign keys, a busy timeout and `BEGIN IMMEDIATE`."""
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite(url):
        file = sqlite_file(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if file is None:
            # One shared in-memory database needs one connection.
            from sqlalchemy.pool import StaticPool

            kwargs["poolclass"] = StaticPool
    else:
        kwargs["pool_recycle"] = POOL_RECYCLE_SECONDS
        kwargs["pool_size"], kwargs["max_overflow"] = POOL_SIZE, POOL_OVERFLOW
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        _configure_sqlite(engine)
    else:
        _configure_postgres(engine)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is off, so that we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock at BEGIN: read-check-insert cannot interleave (no double booking).
        # Reads (plain sessions, see `create_sessionmaker`) begin DEFERRED: in WAL mode they neither wait
        # for a writer nor hold one up, and two open read sessions never lock each other out.
        if conn.get_execution_options().get(_DEFERRED_BEGIN):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgres(engine: AsyncEngine) -> None:
    """Disconnect handling without a round trip per checkout. `pool_pre_ping` cost every checkout
    three round trips (BEGIN, the ping, ROLLBACK) and ~100 µs of CPU, most of it in the socket sends
    that wake the server, on every one of an update's several checkouts. Instead:
    - a connection the server closed (a restart, `pg_terminate_backend`, an idle timeout) is seen as
      closed by asyncpg as soon as the event loop reads the close, and is replaced at checkout, free;
    - one unused for over `PING_IDLE_SECONDS` is pinged first (a quiet bot pays it, a busy one not),
      for a connection lost without a word (a server moved, a dropped TCP session);
    - connections are replaced after `POOL_RECYCLE_SECONDS` (`pool_recycle`);
    - one lost between checkout and use fails its statement and is invalidated with every older
      connection of the pool (SQLAlchemy's optimistic handling); the hot path's calls retry once
      on a fresh connection (`PostgresDirect`). Raising `DisconnectionError` at checkout makes the pool
      connect anew (SQLAlchemy's documented checkout hook)."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise exc.DisconnectionError("the server closed the connection")
        returned_at = record.info.get("returned_at")
        if returned_at is not None and time.monotonic() - returned_at > PING_IDLE_SECONDS:
            try:
                dbapi_connection.ping()
            except Exception as error:
                raise exc.DisconnectionError("the connection did not answer a ping") from error


def asyncpg_dialect() -> Dialect:
    """SQLAlchemy's asyncpg dialect, for the columns' own conversions on `PostgresDirect`'s path."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    return PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # its __init__ is not annotated


class PostgresDirect:
    """The hot path's statements on PostgreSQL (a draft read or written, the inbox's marks, the staff
    look-up): plain asyncpg calls on a connection of the engine's own pool. Through a session each
    such call cost ~300 µs of CPU and three round trips (BEGIN, the statement, COMMIT or ROLLBACK);
    here a statement is one round trip (~60 µs), in autocommit — each statement its own transaction,
    all a single read, upsert or update needs — or, with `transaction=True`, `fn`'s statements in one.

    Values are converted by the columns' own SQLAlchemy types for this dialect (the callers'
    business), so rows read and written either way are the same (`tests/test_hot_path.py`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._pool = engine.sync_engine.pool
        asyncpg: Any = engine.dialect.loaded_dbapi.asyncpg  # the driver, as SQLAlchemy's dialect loaded it
        self._refused: type[Exception] = asyncpg.PostgresError
        self._broken: tuple[type[Exception], ...] = (OSError, asyncpg.InterfaceError)
        self.calls = 0  # calls made (the benches count them)
        self.lost = 0  # calls whose connection was lost midway (a closed one is replaced at checkout)

    async def run(
        self, fn: Callable[[Any], Awaitable[T]], *, transaction: bool = False, retry: bool = False
    ) -> T:
        """`fn(asyncpg_connection)`. With `retry` (a read, or a write that may be done twice), a
        call whose connection was lost is made once more on a fresh one."""
        self.calls += 1
        try:
            return await self._once(fn, transaction)
        except _ConnectionLost as lost:
            if not retry:
                raise lost.error from None
        return await self._once(fn, transaction)

    async def _once(self, fn: Callable[[Any], Awaitable[T]], transaction: bool) -> T:
        proxied = await greenlet_spawn(self._pool.connect)
        driver: Any = proxied.driver_connection  # an asyncpg Connection
        try:
            if transaction:
                async with driver.transaction():
                    result = await fn(driver)
            else:
                result = await fn(driver)
        except BaseException as error:
            if isinstance(error, self._refused) and not driver.is_closed():
                await greenlet_spawn(proxied.close)  # a refused statement: the connection is fine
                raise
            # Lost, cancelled or broken midway: never handed to anyone again (a cancelled query may
            # still be running on it). The pool's other connections are checked at their checkout.
            lost = driver.is_closed() or isinstance(error, self._broken)
            driver.terminate()
            proxied.invalidate(error)
            proxied.close()
            if lost and isinstance(error, Exception):
                self.lost += 1
                raise _ConnectionLost(error) from error
            raise
        await greenlet_spawn(proxied.close)
        return result


class _ConnectionLost(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class SqliteDirect:
    """The hot path's statements (a draft read or written, the inbox's marks) on SQLite, one thread
    hop per call: `fn(connection)` runs whole in a worker thread of its own with a plain sqlite3
    connection. Through aiosqlite and a session every statement crossed threads 4–6 times (cursor,
    execute, fetch, close, BEGIN, COMMIT, the pool's reset), and that hand-off was the largest single
    cost of an update. Writes take the writers' turn of the sessionmaker first (see `_write`), so they
    never wait in SQLite's busy handler for a writer of this process."""

    def __init__(self, file: Path, turn: Callable[[], contextlib.AbstractAsyncContextManager[None]]) -> None:
        self._file = file
        self._turn = turn
        # Reads and writes each have a thread and a connection: a write holds the writers' turn of the
        # process while it runs, and must not wait behind queued reads meanwhile (under load that held
        # every other writer, the leader lease's renewal too, for seconds).
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-direct-read")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-direct-write")
        self._connections: dict[bool, sqlite3.Connection] = {}
        self._core_connections: dict[bool, Connection] = {}
        self.calls = 0  # reads and writes made (the benches count them)
        self.cpu = 0.0  # CPU seconds the worker threads spent in them (the benches show it)
        # The worker thread ends when this object is collected (tests make thousands of engines).
        weakref.finalize(self, self._executor.shutdown, wait=False)
        weakref.finalize(self, self._reader.shutdown, wait=False)

    def _connect(self, write: bool) -> sqlite3.Connection:
        connection = self._connections.get(write)
        if connection is None:
            connection = sqlite3.connect(
                self._file,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions are ours (`_transaction`)
                check_same_thread=False,  # used by its one worker thread only; closed by the collector
            )
            for pragma in _SQLITE_PRAGMAS:
                connection.execute(pragma)
            self._connections[write] = connection
        return connection

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        began = time.thread_time()
        try:
            return fn(self._connect(False))
        finally:
            self.cpu += time.thread_time() - began

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        began = time.thread_time()
        connection = self._connect(True)
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = fn(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result
        finally:
            self.cpu += time.thread_time() - began

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` with autocommit: each of its statements sees the latest committed state."""
        self.calls += 1
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._read, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one `BEGIN IMMEDIATE` … `COMMIT` (rolled back if it raises)."""
        return await self._in_writer(self._transaction, fn)

    async def read_core(self, fn: Callable[[Connection], T]) -> T:
        """`fn` over a SQLAlchemy connection (Core statements, the columns' own types) in one
        deferred `BEGIN` … `COMMIT`: its statements see one snapshot, as a read session's did."""
        self.calls += 1
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._core, False, fn)

    async def write_core(
        self, fn: Callable[[Connection], T], ended: list[Callable[[], None]] | None = None
    ) -> T:
        """`fn` over a SQLAlchemy connection in one `BEGIN IMMEDIATE` … `COMMIT`, the writers' turn
        of the process held (rolled back if it raises); `ended` are called in the thread right after
        the COMMIT or ROLLBACK (`when_ended`)."""
        return await self._in_writer(self._core, True, fn, ended)

    async def _in_writer(self, run: Callable[..., T], *args: Any) -> T:
        self.calls += 1
        async with self._turn():
            future = asyncio.get_running_loop().run_in_executor(self._executor, run, *args)
            try:
                return await asyncio.shield(future)
            finally:
                if not future.done():
                    # A cancelled caller: the thread finishes (commits or rolls back) its transaction
                    # before the writers' turn passes on, so the next writer never meets SQLite's lock.
                    await asyncio.wait([future])

    def _core_connection(self, write: bool) -> Connection:
        """A SQLAlchemy connection over the thread's own sqlite3 connection: statements compiled
        once (SQLAlchemy's cache) and values converted by the same types as through the sessions."""
        connection = self._core_connections.get(write)
        if connection is None:
            raw = self._connect(write)
            engine = create_sync_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
            connection = engine.connect()
            connection.rollback()  # the dialect's first-connect queries: nothing stays open
            self._core_connections[write] = connection
        return connection

    def _core(
        self, write: bool, fn: Callable[[Connection], T], ended: list[Callable[[], None]] | None = None
    ) -> T:
        began = time.thread_time()
        connection = self._core_connection(write)
        raw = self._connect(write)
        try:
            raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(connection)
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
            return result
        finally:
            if ended:
                _run_ended(ended)
            # SQLAlchemy's own bookkeeping of the connection; SQLite has nothing open any more (the
            # driver's rollback does nothing outside a transaction).
            connection.rollback()
            self.cpu += time.thread_time() - began


class _SQLiteSessionmaker(async_sessionmaker[AsyncSession]):
    """`sessionmaker()` (reads) begins DEFERRED; `sessionmaker.begin()` (writes) begins IMMEDIATE."""

    def __init__(self, engine: AsyncEngine, **kw: Any) -> None:
        super().__init__(engine.execution_options(**{_DEFERRED_BEGIN: True}), **kw)
        self._write_engine = engine
        # (the event loop, its writers' lock, the task holding it): see `_write`
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock, asyncio.Task[Any] | None] | None = None
        file = sqlite_file(str(engine.url))
        self.direct: SqliteDirect | None = SqliteDirect(file, self.writers_turn) if file is not None else None

    def begin(self) -> Any:
        return self._write()

    @contextlib.asynccontextmanager
    async def writers_turn(self) -> AsyncIterator[None]:
        """This process's turn to write (what `begin()` takes before its BEGIN IMMEDIATE)."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, asyncio.Lock(), None)
        _, lock, holder = self._turn
        task = asyncio.current_task()
        if holder is not None and holder is task:
            yield
            return
        async with lock:
            self._turn = (loop, lock, task)
            try:
                yield
            finally:
                self._turn = (loop, lock, None)

    @contextlib.asynccontextmanager
    async def begin_urgent(self) -> AsyncIterator[AsyncSession]:
        """A write that must not queue behind this process's other writers (the leader lease's renewal:
        behind 200 queued taps it waited over 3 s and the leader gave itself up). It goes straight to
        SQLite's BEGIN IMMEDIATE, whose busy timeout waits out only the one transaction in progress."""
        async with self(bind=self._write_engine) as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        # This process's writers take turns before BEGIN IMMEDIATE: one waiting on SQLite's lock polls
        # in its busy handler with sleeps of up to 100 ms, so under load writers waited far longer than
        # the lock was held (hundreds of ms per tap); an asyncio lock hands it over at once. Other
        # processes (the command line) still meet the busy timeout. A write nested in one of the same
        # task (none is known) goes straight to SQLite, as before, rather than wait for itself.
        async with self.writers_turn(), _ending(self(bind=self._write_engine, info={_ENDED: []})) as session:
            yield session


def urgent_write(sessionmaker: async_sessionmaker[AsyncSession]) -> Any:
    """`sessionmaker.begin()`, ahead of the process's queued writers where they queue (SQLite)."""
    urgent = getattr(sessionmaker, "begin_urgent", None)
    return urgent() if urgent is not None else sessionmaker.begin()


def direct_sqlite(sessionmaker: async_sessionmaker[AsyncSession]) -> SqliteDirect | None:
    """The one-hop path of a file SQLite database (None for PostgreSQL or an in-memory database)."""
    return getattr(sessionmaker, "direct", None)


def direct_postgres(sessionmaker: async_sessionmaker[AsyncSession]) -> PostgresDirect | None:
    """The plain asyncpg path of a PostgreSQL engine (None elsewhere)."""
    return getattr(sessionmaker, "pg_direct", None)


@contextlib.asynccontextmanager
async def _ending(session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """`session` in one transaction (committed unless the block raises, then closed), its `when_ended`
    callables run once the transaction is over, whatever happened."""
    try:
        async with session, session.begin():
            yield session
    finally:
        _run_ended(session.info.get(_ENDED) or [])


class _PostgresSessionmaker(async_sessionmaker[AsyncSession]):
    """The sessionmaker of a PostgreSQL engine, with the hot path's plain asyncpg calls
    (`pg_direct`) and an autocommit engine on the same pool for `read_core`."""

    def __init__(self, engine: AsyncEngine, **kw: Any) -> None:
        super().__init__(engine, **kw)
        self.pg_direct = PostgresDirect(engine)
        self.autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def begin(self) -> Any:
        """A write transaction, as `async_sessionmaker.begin()`, with `when_ended` available."""
        return _ending(self(info={_ENDED: []}))

    def read_engine(self) -> AsyncEngine | None:
        """The autocommit engine when reading without a transaction sees what one would: at READ
        COMMITTED (PostgreSQL's default) every statement takes its own snapshot anyway. None at a
        stricter level (a server configured so) or before the first connection told the level."""
        engine = self.autocommit_engine
        level = getattr(engine.dialect, "default_isolation_level", None)
        return engine if level == "READ COMMITTED" else None


def connection_of(session: Session) -> Connection:
    """The connection of `session`'s transaction for Core statements: on the one-hop path the
    thread's own (known, no look-up through the session), elsewhere `session.connection()`."""
    connection: Connection | None = session.info.get(_CONNECTION)
    return connection if connection is not None else session.connection()


def _on_connection(
    fn: Callable[[Session], T], *, write: bool, info: dict[str, Any] | None = None
) -> Callable[[Connection], T]:
    def run(connection: Connection) -> T:
        # A plain (sync) session on the thread's connection: ORM objects where the code had them, Core
        # statements where they are enough. Never committed or closed here: the transaction is
        # SqliteDirect's (`_core`), which commits or rolls back when this returns.
        session = Session(bind=connection, expire_on_commit=False, autoflush=True, info=info)
        session.info[_CONNECTION] = connection  # `connection_of`: Core statements skip the lookup
        result = fn(session)
        if write:
            session.flush()
        return result

    return run


async def read_core(sessionmaker: async_sessionmaker[AsyncSession], fn: Callable[[Session], T]) -> T:
    """A read written once as synchronous code over a session (`fn`; Core statements where they are
    enough), run the cheapest way: on a SQLite file in one thread hop (`SqliteDirect.read_core`: one
    hand-off for the whole read instead of 4–6 per statement), elsewhere (PostgreSQL) in a read
    session (`run_sync`: the same `fn`, each statement awaited on the session's connection)."""
    direct = direct_sqlite(sessionmaker)
    if direct is not None:
        return await direct.read_core(_on_connection(fn, write=False))
    # PostgreSQL: without BEGIN and ROLLBACK (two round trips of three for a one-statement read).
    read_engine = sessionmaker.read_engine() if isinstance(sessionmaker, _PostgresSessionmaker) else None
    async with sessionmaker(bind=read_engine) if read_engine is not None else sessionmaker() as session:
        return await session.run_sync(fn)


async def write_core(sessionmaker: async_sessionmaker[AsyncSession], fn: Callable[[Session], T]) -> T:
    """A write transaction written once as synchronous code over a session (`fn`): on a SQLite file in
    one thread hop with the process's writers' turn held (`SqliteDirect.write_core`), elsewhere in a
    `sessionmaker.begin()` session. Flushed and committed when `fn` returns, rolled back if it raises."""
    direct = direct_sqlite(sessionmaker)
    if direct is not None:
        ended: list[Callable[[], None]] = []
        info = {_SHARED: shared(sessionmaker), _ENDED: ended}
        return await direct.write_core(_on_connection(fn, write=True, info=info), ended)
    async with sessionmaker.begin() as session:
        return await session.run_sync(fn)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Services read in `sessionmaker()` sessions and write in `sessionmaker.begin()` ones."""
    info: dict[str, Any] = {_SHARED: {}}  # one dict for every session of this sessionmaker (`shared`)
    if engine.dialect.name == "sqlite":
        return _SQLiteSessionmaker(engine, expire_on_commit=False, info=info)
    if engine.dialect.driver == "asyncpg":
        return _PostgresSessionmaker(engine, expire_on_commit=False, info=info)
    return async_sessionmaker(engine, expire_on_commit=False, info=info)
