"""Opening the SQLite store: WAL, durability pragmas, schema migrations, change hooks."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlite_utils import Database

from vos3k.store import repos
from vos3k.store.schema import LATEST, MIGRATIONS

DB_FILE = "vos3k.db"


class StoreError(Exception):
    """The database cannot be used (corrupt, newer schema, unwritable); one-line message."""


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """One SQLite database and its typed repositories.

    `changed(table)` tells subscribers (the hot-path indexes) that a table was modified
    by an admin action, after its transaction committed.
    """

    def __init__(
        self,
        db: Database,
        now_ms: Callable[[], int] = wall_clock_ms,
        path: Path | None = None,
    ):
        self.db = db
        self.now_ms = now_ms
        self.path = path  # None: in memory
        self._listeners: list[Callable[[str], None]] = []
        self.params = repos.ParamRepo(self)
        self.audit = repos.AuditRepo(self)
        self.users = repos.UserRepo(self)
        self.accounts = repos.AccountRepo(self)
        self.rates = repos.RateRepo(self)
        self.gateways = repos.GatewayRepo(self)
        self.phones = repos.PhoneRepo(self)
        self.blacklist = repos.BlacklistRepo(self)
        self.registrations = repos.RegistrationRepo(self)
        self.cdrs = repos.CdrRepo(self)

    def subscribe(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def changed(self, table: str) -> None:
        for listener in list(self._listeners):
            listener(table)

    @property
    def schema_version(self) -> int:
        return _schema_version(self.db)

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Database]:
        """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

        Two connections write this file (the reactor's and the CDR writer's thread): a
        deferred transaction that read first and then writes would fail at once with
        "database is locked" (SQLITE_BUSY_SNAPSHOT) after the other connection
        committed; an immediate one waits for the lock within the busy timeout instead.
        Nested use becomes a savepoint, as with sqlite-utils' own atomic().
        """
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def reopen(self) -> Store:
        """Another Store on the same file with its own connection, for the CDR writer's
        thread (STYLE.md §6: one writer, own connection; WAL lets this one keep reading).
        The schema is already migrated; an in-memory store has no second connection."""
        if self.path is None:
            raise StoreError("an in-memory store cannot be opened twice")
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        db = Database(conn)
        # SPEC.md §7: a committed CDR survives power loss, not only a crash.
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return Store(db, self.now_ms, self.path)


def _schema_version(db: Database) -> int:
    if not db["schema_version"].exists():
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] or 0


def migrate(db: Database, now_ms: Callable[[], int] = wall_clock_ms, upto: int = LATEST) -> int:
    """Apply missing migrations in order, each in its own transaction; returns the version."""
    with db.atomic():
        if not db["schema_version"].exists():
            db["schema_version"].create(
                {"version": int, "description": str, "applied_ms": int}, pk="version"
            )
    current = _schema_version(db)
    if current > LATEST:
        raise StoreError(
            f"database schema version {current} is newer than this vos3k understands "
            f"({LATEST}); upgrade vos3k, the database was left untouched"
        )
    for version, description, apply in MIGRATIONS:
        if current < version <= upto:
            with db.atomic():
                apply(db)
                db["schema_version"].insert(
                    {"version": version, "description": description, "applied_ms": now_ms()}
                )
            current = version
    return current


def open_store(
    path: str | os.PathLike | None,
    now_ms: Callable[[], int] = wall_clock_ms,
    create: bool = True,
) -> Store:
    """Open (and if needed create and upgrade) the store; None means an in-memory store.

    Raises StoreError with a one-line reason for a missing, corrupt, unwritable or
    newer-schema database; nothing is overwritten in those cases.
    """
    file: Path | None = None
    try:
        if path is None:
            db = Database(memory=True)
        else:
            file = Path(path)
            if not create and not file.exists():
                raise StoreError(f"no database at {file} (run 'vos3k init --data-dir DIR')")
            if file.exists() and not os.access(file, os.R_OK | os.W_OK):
                raise StoreError(f"database {file} is not readable and writable")
            conn = sqlite3.connect(str(file), check_same_thread=False, timeout=10)
            db = Database(conn)
            _check_integrity(db, file)
            db.enable_wal()
            # SPEC.md §7: a committed CDR survives power loss, not only a crash.
            db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, now_ms)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"database {path}: {exc}") from None
    return Store(db, now_ms, file)


def _check_integrity(db: Database, file: Path) -> None:
    try:
        result = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"database {file} is corrupt or not SQLite: {exc}") from None
    if result != "ok":
        raise StoreError(f"database {file} failed its integrity check: {result}")
