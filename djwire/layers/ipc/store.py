"""The shared store: group memberships and named channels, in SQLite (WAL).

Why SQLite: every process of the space reads and writes it without a server, a
transaction is all-or-nothing even when its process is SIGKILLed halfway (the next
reader finds the database as it was before), and the write lock is an ``fcntl``
lock the kernel releases when its holder dies, so a killed process never leaves
the others waiting. Reads (``group_send`` looking up the members) never wait for
writers in WAL mode.

Tables::

    meta(key, value)                     "seq": a counter bumped by every membership change
    groups(grp, version)                 the seq of the group's last membership change
    members(grp, channel, token, deadline)   token: owning process ('' for named channels)
    messages(id, channel, due, deadline, attempt, lease, lease_until, payload)
                                         named channels' queues (the "queues" extension)
    dead_letters(id, channel, payload, reason, attempts, failed_at)
    listeners(channel, token)            processes waiting on a named channel (to wake)

A message is *ready* from ``due`` on (a send: at once; ``send_later``/``retry``:
later), taken oldest ``due`` first, and *leased* while ``lease`` names its taker's
lease (``take(..., lease=s)``) until ``lease_until``; a lease not settled by then
(its worker died) makes the message ready again with ``attempt + 1``, ahead of newer
ones. Times are wall-clock milliseconds. A ready or delayed message expires at
``deadline`` (its due time plus ``expiry``); expired rows are ignored by every query
and deleted lazily: a channel's when it is sent to or taken from, and, at most once
per ``SWEEP_INTERVAL`` per process, up to ``SWEEP_BATCH`` expired messages and
memberships anywhere (through the deadline indexes: no scans).

Writes take the lock with ``BEGIN IMMEDIATE`` and no busy wait inside SQLite (which
sleeps a millisecond or more): a busy store is retried from the event loop with
short sleeps, up to ``lock_timeout``, then LayerUnavailable. The file's size is
capped by ``max_store_size`` (``PRAGMA max_page_count``); a write that would pass
it raises :class:`StoreFull`.

Taking without a lease deletes the rows in the transaction that returns them, so a
taker killed afterwards loses them (at most once); with a lease they stay until
acknowledged (at least once). Either way no await separates the commit from the
caller getting the messages, so a cancelled take loses nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from djwire.exceptions import LayerUnavailable

from .space import private_file

T = TypeVar("T")

SCHEMA_VERSION = 1
#: Each process sweeps expired rows at most this often (seconds) ...
SWEEP_INTERVAL = 1.0
#: ... and at most this many of each kind per sweep, so a sweep stays short.
SWEEP_BATCH = 1000
#: Sleeps between attempts to take a busy write lock (seconds); the last repeats.
_BACKOFF = (0.0, 0.0001, 0.0002, 0.0005, 0.001, 0.002)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(key, value) VALUES ('seq', 0);
CREATE TABLE IF NOT EXISTS groups(grp TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members(
    grp TEXT NOT NULL, channel TEXT NOT NULL, token TEXT NOT NULL, deadline INTEGER NOT NULL,
    PRIMARY KEY (grp, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_group_token ON members(grp, token, deadline);
CREATE INDEX IF NOT EXISTS members_by_token ON members(token);
CREATE INDEX IF NOT EXISTS members_by_deadline ON members(deadline);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, due INTEGER NOT NULL,
    deadline INTEGER NOT NULL, attempt INTEGER NOT NULL, lease TEXT, lease_until INTEGER,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_ready ON messages(channel, due, id) WHERE lease IS NULL;
CREATE INDEX IF NOT EXISTS messages_leased
    ON messages(channel, lease_until) WHERE lease IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_lease ON messages(lease) WHERE lease IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_deadline ON messages(deadline) WHERE lease IS NULL;
CREATE TABLE IF NOT EXISTS dead_letters(
    id INTEGER PRIMARY KEY, channel TEXT NOT NULL, payload BLOB NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, failed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_channel ON dead_letters(channel, id);
CREATE TABLE IF NOT EXISTS listeners(
    channel TEXT NOT NULL, token TEXT NOT NULL, PRIMARY KEY (channel, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS listeners_by_token ON listeners(token);
"""


class StoreFull(Exception):
    """A write would take the store past ``max_store_size``."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class GroupView:
    """A group's members as of membership ``version``, from one process's side."""

    version: int
    own: list[tuple[str, int]] = field(default_factory=list)  # (channel, deadline)
    named: list[tuple[str, int]] = field(default_factory=list)
    processes: dict[str, int] = field(default_factory=dict)  # token -> latest deadline
    soonest: int = 0  # the earliest deadline of all: until then nothing above expires

    def live(self, now: int) -> GroupView:
        """This view without expired entries (itself while nothing has expired)."""
        if now < self.soonest:
            return self
        own = [entry for entry in self.own if entry[1] > now]
        named = [entry for entry in self.named if entry[1] > now]
        processes = {token: dl for token, dl in self.processes.items() if dl > now}
        return GroupView(self.version, own, named, processes, _soonest(own, named, processes))


def _soonest(
    own: list[tuple[str, int]], named: list[tuple[str, int]], processes: dict[str, int]
) -> int:
    # Processes' deadlines are the latest of their members': the members' own
    # deadlines come first. Named channels are members like the others.
    deadlines = [dl for _, dl in own] + [dl for _, dl in named] + list(processes.values())
    return min(deadlines, default=_NEVER)


_NEVER = 2**62


@dataclass
class Taken:
    """What :meth:`Store.take` took: ``(payload, lease tag or None, attempt)`` rows."""

    rows: list[tuple[bytes, str | None, int]] = field(default_factory=list)
    expired: int = 0
    redelivered: int = 0  # leases that had run out, made ready again


@dataclass
class Pushed:
    """What :meth:`Store.push_many` did: which channels were full, whom to wake."""

    full: list[str] = field(default_factory=list)
    listeners: dict[str, list[str]] = field(default_factory=dict)  # channel -> tokens
    expired: int = 0


class Store:
    """One SQLite connection to the space's store, shared by the threads of a process."""

    def __init__(self, path: Path, max_store_size: int, lock_timeout: float) -> None:
        self.path = path
        self.max_store_size = max_store_size
        self.lock_timeout = lock_timeout
        self.swept = 0.0  # when this process last swept (monotonic)
        self.expired_swept = 0  # expired messages found by sweeps, for the layer's stats
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    # -- connection ----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened on first use and again in a forked child (SQLite
        connections must not cross a fork; the parent's is left alone)."""
        connection = self._connection
        if connection is not None and self._pid == os.getpid():
            return connection
        private_file(self.path)
        try:
            for delay in self._waits():
                connection = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
                try:
                    self._set_up(connection)
                except sqlite3.OperationalError as exc:
                    connection.close()
                    if not _busy(exc):
                        raise
                    # Another process is creating the store, or converting it to WAL:
                    # try again with a new connection (nothing cached from before).
                    time.sleep(delay)
                    continue
                self._connection, self._pid = connection, os.getpid()
                return connection
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")

    def _set_up(self, connection: sqlite3.Connection) -> None:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise self._unavailable(f"it stays in {mode!r} journal mode, WAL is needed")
        for pragma in (
            # No fsync per commit: the store holds transient messages, and a process
            # crash loses nothing committed (the OS has the pages).
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA max_page_count={max(16, self.max_store_size // page_size)}",
            f"PRAGMA journal_size_limit={min(self.max_store_size, 16 << 20)}",
            "PRAGMA temp_store=MEMORY",
        ):
            connection.execute(pragma).fetchall()
        self._create_schema(connection)

    def _create_schema(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise LayerUnavailable(
                f"The IPC layer store {self.path} was made by a newer djwire (schema "
                f"{version}); use that version in every process, or remove the directory"
            )
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Statement by statement: executescript() would commit the transaction
            # first, and processes starting together must not create tables at once.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _unavailable(self, exc: BaseException | str) -> LayerUnavailable:
        return LayerUnavailable(f"The IPC layer store {self.path} cannot be used: {exc}")

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._pid == os.getpid():
                connection.close()

    # -- transactions ----------------------------------------------------------------------

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction; wait (from the loop) while it is busy."""
        for delay in self._waits():
            done, result = self._try_write(work)
            if done:
                return result  # type: ignore[return-value]
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def write_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """:meth:`write` for code that cannot await (teardown): waits by sleeping."""
        for delay in self._waits():
            done, result = self._try_write(work)
            if done:
                return result  # type: ignore[return-value]
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _waits(self) -> Iterator[float]:
        """The sleeps between attempts on a busy store, for ``lock_timeout`` at most;
        then LayerUnavailable."""
        deadline = time.monotonic() + self.lock_timeout
        for delay in itertools.chain(_BACKOFF, itertools.repeat(_BACKOFF[-1])):
            yield delay
            if time.monotonic() > deadline:
                raise self._stuck()

    def _try_write(self, work: Callable[[sqlite3.Connection], T]) -> tuple[bool, T | None]:
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _busy(exc):
                    return False, None
                raise self._unavailable(exc) from exc
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _full(exc):
                    raise StoreFull(str(self.path)) from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    raise self._unavailable(exc) from exc
                raise
            return True, result

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one read transaction (a consistent snapshot). Readers do not
        wait for writers in WAL mode; the rare busy moment (a crashed process's WAL
        being recovered) is retried."""

        def snapshot() -> T:
            with self._lock:
                connection = self._connect()
                connection.execute("BEGIN")
                try:
                    return work(connection)
                finally:
                    if connection.in_transaction:
                        connection.execute("COMMIT")

        try:
            return self._retry_blocking(snapshot)
        except sqlite3.DatabaseError as exc:
            raise self._unavailable(exc) from exc

    def _retry_blocking(self, call: Callable[[], T]) -> T:
        for delay in self._waits():
            try:
                return call()
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _stuck(self) -> LayerUnavailable:
        return LayerUnavailable(
            f"The IPC layer store {self.path} stayed locked for lock_timeout="
            f"{self.lock_timeout} s: a process holding it is stuck (stopped, or in a debugger)"
        )

    # -- named channels ------------------------------------------------------------------

    def push_many(
        self,
        connection: sqlite3.Connection,
        channels: Iterable[tuple[str, int]],
        due: int,
        expiry: int,
        payload: bytes,
        now: int,
    ) -> Pushed:
        """Queue ``payload``, ready at ``due``, on each ``(channel, capacity)`` that has
        room (ready and delayed messages count; leased ones are with their takers)."""
        pushed = Pushed()
        execute = connection.execute
        for channel, capacity in channels:
            pushed.expired += self._drop_expired(connection, channel, now)
            (queued,) = execute(
                "SELECT count(*) FROM messages WHERE channel = ? AND lease IS NULL", (channel,)
            ).fetchone()
            if queued >= capacity:
                pushed.full.append(channel)
                continue
            execute(
                "INSERT INTO messages(channel, due, deadline, attempt, payload) "
                "VALUES (?, ?, ?, 1, ?)",
                (channel, due, due + expiry, payload),
            )
            self._listeners(connection, channel, pushed)
        pushed.expired += self._maybe_sweep(connection, now)
        return pushed

    @staticmethod
    def _listeners(connection: sqlite3.Connection, channel: str, pushed: Pushed) -> None:
        tokens = [
            token
            for (token,) in connection.execute(
                "SELECT token FROM listeners WHERE channel = ?", (channel,)
            )
        ]
        if tokens:
            pushed.listeners[channel] = tokens

    @staticmethod
    def _drop_expired(connection: sqlite3.Connection, channel: str, now: int) -> int:
        return int(
            connection.execute(
                "DELETE FROM messages WHERE channel = ? AND lease IS NULL AND deadline <= ?",
                (channel, now),
            ).rowcount
        )

    def peek(self, channel: str, now: int) -> tuple[bool, int | None]:
        """Whether ``channel`` has a message to take now (ready, or with a lease run
        out), and else when it next may (a delayed message or a lease falls due)."""

        def look(connection: sqlite3.Connection) -> tuple[bool, int | None]:
            ready, next_due = connection.execute(
                "SELECT EXISTS(SELECT 1 FROM messages WHERE channel = ?1 AND lease IS NULL "
                "AND due <= ?2 AND deadline > ?2), "
                "(SELECT min(due) FROM messages WHERE channel = ?1 AND lease IS NULL "
                "AND due > ?2)",
                (channel, now),
            ).fetchone()
            if ready:
                return True, None
            (lease_due,) = connection.execute(
                "SELECT min(lease_until) FROM messages WHERE channel = ? AND lease IS NOT NULL",
                (channel,),
            ).fetchone()
            if lease_due is not None and lease_due <= now:
                return True, None
            dues = [due for due in (next_due, lease_due) if due is not None]
            return False, min(dues) if dues else None

        return self.read(look)

    @staticmethod
    def take(
        connection: sqlite3.Connection,
        channel: str,
        count: int,
        now: int,
        expiry: int,
        lease: tuple[str, int] | None = None,
    ) -> Taken:
        """Take up to ``count`` ready messages, oldest due first: removed, or with
        ``lease=(tag prefix, until)`` leased (each tag is the prefix and the row id)."""
        taken = Taken()
        # Leases that ran out: ready again, one attempt more, ahead of newer messages.
        taken.redelivered = connection.execute(
            "UPDATE messages SET lease = NULL, lease_until = NULL, attempt = attempt + 1, "
            "deadline = ? WHERE channel = ? AND lease IS NOT NULL AND lease_until <= ?",
            (now + expiry, channel, now),
        ).rowcount
        taken.expired = Store._drop_expired(connection, channel, now)
        chosen = (
            "SELECT id FROM messages WHERE channel = ? AND lease IS NULL AND due <= ? "
            "ORDER BY due, id LIMIT ?"
        )
        if lease is None:
            rows = connection.execute(
                f"DELETE FROM messages WHERE id IN ({chosen}) "
                "RETURNING due, id, attempt, payload, NULL",
                (channel, now, count),
            ).fetchall()
        else:
            prefix, until = lease
            rows = connection.execute(
                f"UPDATE messages SET lease = ? || id, lease_until = ? WHERE id IN ({chosen}) "
                "RETURNING due, id, attempt, payload, lease",
                (prefix, until, channel, now, count),
            ).fetchall()
        rows.sort()  # RETURNING gives no order
        taken.rows = [(payload, tag, attempt) for _, _, attempt, payload, tag in rows]
        return taken

    @staticmethod
    def ack(connection: sqlite3.Connection, channel: str, tags: list[str]) -> None:
        connection.executemany(
            "DELETE FROM messages WHERE lease = ? AND channel = ?",
            [(tag, channel) for tag in tags],
        )

    def retry(
        self,
        connection: sqlite3.Connection,
        channel: str,
        tag: str,
        due: int,
        expiry: int,
        now: int,
    ) -> Pushed | None:
        """Give a leased message back, ready at ``due``; None if the lease is gone."""
        changed = connection.execute(
            "UPDATE messages SET lease = NULL, lease_until = NULL, attempt = attempt + 1, "
            "due = ?, deadline = ? WHERE lease = ? AND channel = ? AND lease_until > ?",
            (due, due + expiry, tag, channel, now),
        ).rowcount
        if not changed:
            return None
        pushed = Pushed()
        self._listeners(connection, channel, pushed)  # their next due time changed
        return pushed

    @staticmethod
    def dead_letter(
        connection: sqlite3.Connection,
        channel: str,
        tag: str,
        reason: str,
        now: int,
        keep: int,
    ) -> tuple[bool, int]:
        """Move a leased message to the dead letters, keeping the newest ``keep`` of
        the channel's: (whether the lease was still held, how many old ones went)."""
        row = connection.execute(
            "DELETE FROM messages WHERE lease = ? AND channel = ? AND lease_until > ? "
            "RETURNING payload, attempt",
            (tag, channel, now),
        ).fetchone()
        if row is None:
            return False, 0
        connection.execute(
            "INSERT INTO dead_letters(channel, payload, reason, attempts, failed_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (channel, row[0], reason, row[1], now / 1000),
        )
        (kept,) = connection.execute(
            "SELECT count(*) FROM dead_letters WHERE channel = ?", (channel,)
        ).fetchone()
        dropped = 0
        if kept > keep:
            dropped = connection.execute(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters "
                "WHERE channel = ? ORDER BY id LIMIT ?)",
                (channel, kept - keep),
            ).rowcount
        return True, int(dropped)

    @staticmethod
    def dead_letters(
        connection: sqlite3.Connection, channel: str, limit: int
    ) -> list[tuple[int, bytes, str, int, float]]:
        return connection.execute(
            "SELECT id, payload, reason, attempts, failed_at FROM dead_letters "
            "WHERE channel = ? ORDER BY id LIMIT ?",
            (channel, limit),
        ).fetchall()

    @staticmethod
    def remove_dead_letters(
        connection: sqlite3.Connection, channel: str, ids: Iterable[int] | None
    ) -> list[bytes]:
        """Delete dead letters (all, or those with ``ids``); their payloads, oldest first."""
        if ids is None:
            rows = connection.execute(
                "DELETE FROM dead_letters WHERE channel = ? RETURNING id, payload", (channel,)
            ).fetchall()
        else:
            rows = []
            for id_ in ids:
                rows += connection.execute(
                    "DELETE FROM dead_letters WHERE channel = ? AND id = ? RETURNING id, payload",
                    (channel, id_),
                ).fetchall()
        rows.sort()
        return [payload for _, payload in rows]

    def replay(
        self,
        connection: sqlite3.Connection,
        channel: str,
        payloads: list[bytes],
        now: int,
        expiry: int,
    ) -> Pushed:
        """Queue dead letters' payloads again as new messages (capacity does not apply:
        someone decided to)."""
        connection.executemany(
            "INSERT INTO messages(channel, due, deadline, attempt, payload) "
            "VALUES (?, ?, ?, 1, ?)",
            [(channel, now, now + expiry, payload) for payload in payloads],
        )
        pushed = Pushed()
        self._listeners(connection, channel, pushed)
        return pushed

    @staticmethod
    def listen(connection: sqlite3.Connection, channel: str, token: str) -> None:
        connection.execute(
            "INSERT OR IGNORE INTO listeners(channel, token) VALUES (?, ?)", (channel, token)
        )

    @staticmethod
    def unlisten(connection: sqlite3.Connection, channel: str, token: str) -> None:
        connection.execute(
            "DELETE FROM listeners WHERE channel = ? AND token = ?", (channel, token)
        )

    # -- groups ----------------------------------------------------------------------------

    @staticmethod
    def _bump(connection: sqlite3.Connection, groups: Iterable[str]) -> int:
        (version,) = connection.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
        ).fetchone()
        connection.executemany(
            "INSERT INTO groups(grp, version) VALUES (?, ?) "
            "ON CONFLICT(grp) DO UPDATE SET version = excluded.version",
            [(group, version) for group in groups],
        )
        return int(version)

    def group_add(
        self, connection: sqlite3.Connection, group: str, channel: str, token: str, deadline: int
    ) -> int:
        connection.execute(
            "INSERT INTO members(grp, channel, token, deadline) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(grp, channel) DO UPDATE SET token = excluded.token, "
            "deadline = excluded.deadline",
            (group, channel, token, deadline),
        )
        version = self._bump(connection, (group,))
        self._maybe_sweep(connection, now_ms())
        return version

    def group_discard(self, connection: sqlite3.Connection, group: str, channel: str) -> None:
        removed = connection.execute(
            "DELETE FROM members WHERE grp = ? AND channel = ?", (group, channel)
        ).rowcount
        if removed:
            self._bump(connection, (group,))
            self._forget_if_empty(connection, (group,))

    @staticmethod
    def _forget_if_empty(connection: sqlite3.Connection, groups: Iterable[str]) -> None:
        connection.executemany(
            "DELETE FROM groups WHERE grp = ? AND NOT EXISTS "
            "(SELECT 1 FROM members WHERE members.grp = groups.grp)",
            [(group,) for group in groups],
        )

    @staticmethod
    def group_version(connection: sqlite3.Connection, group: str) -> int | None:
        row = connection.execute("SELECT version FROM groups WHERE grp = ?", (group,)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def group_view(
        connection: sqlite3.Connection, group: str, token: str, now: int
    ) -> GroupView | None:
        """The group's members as ``token``'s process needs them, at the current version."""
        row = connection.execute("SELECT version FROM groups WHERE grp = ?", (group,)).fetchone()
        if row is None:
            return None
        view = GroupView(int(row[0]))
        execute = connection.execute
        view.processes = dict(
            execute(
                "SELECT token, max(deadline) FROM members WHERE grp = ? AND deadline > ? "
                "GROUP BY token",
                (group, now),
            ).fetchall()
        )
        if token in view.processes:
            view.own = execute(
                "SELECT channel, deadline FROM members "
                "WHERE grp = ? AND token = ? AND deadline > ?",
                (group, token, now),
            ).fetchall()
        if "" in view.processes:
            view.named = execute(
                "SELECT channel, deadline FROM members "
                "WHERE grp = ? AND token = '' AND deadline > ?",
                (group, now),
            ).fetchall()
        view.soonest = _soonest(view.own, view.named, view.processes)
        return view

    @staticmethod
    def group_channels(connection: sqlite3.Connection, group: str, now: int) -> list[str]:
        return [
            channel
            for (channel,) in connection.execute(
                "SELECT channel FROM members WHERE grp = ? AND deadline > ? ORDER BY deadline",
                (group, now),
            )
        ]

    # -- processes ---------------------------------------------------------------------------

    @staticmethod
    def tokens(connection: sqlite3.Connection) -> set[str]:
        """Every process token the store mentions."""
        rows = connection.execute(
            "SELECT DISTINCT token FROM members WHERE token != '' "
            "UNION SELECT DISTINCT token FROM listeners"
        ).fetchall()
        return {token for (token,) in rows}

    def reclaim(self, connection: sqlite3.Connection, token: str) -> int:
        """Forget a process that is gone: its memberships and its listening. Returns
        how many memberships it had."""
        groups = [
            group
            for (group,) in connection.execute(
                "SELECT DISTINCT grp FROM members WHERE token = ?", (token,)
            )
        ]
        removed = connection.execute("DELETE FROM members WHERE token = ?", (token,)).rowcount
        connection.execute("DELETE FROM listeners WHERE token = ?", (token,))
        if groups:
            self._bump(connection, groups)
            self._forget_if_empty(connection, groups)
        return int(removed)

    # -- housekeeping ------------------------------------------------------------------------

    def _maybe_sweep(self, connection: sqlite3.Connection, now: int) -> int:
        """Delete a batch of expired messages and memberships, at most once per
        ``SWEEP_INTERVAL``; returns how many messages expired."""
        clock = time.monotonic()
        if clock - self.swept < SWEEP_INTERVAL:
            return 0
        self.swept = clock
        expired = connection.execute(
            "DELETE FROM messages WHERE id IN (SELECT id FROM messages "
            "WHERE lease IS NULL AND deadline <= ? ORDER BY deadline LIMIT ?)",
            (now, SWEEP_BATCH),
        ).rowcount
        groups = {
            group
            for (group,) in connection.execute(
                "DELETE FROM members WHERE (grp, channel) IN (SELECT grp, channel FROM members "
                "WHERE deadline <= ? ORDER BY deadline LIMIT ?) RETURNING grp",
                (now, SWEEP_BATCH),
            ).fetchall()
        }
        if groups:
            # No version bump: every view already leaves members out after their deadline.
            self._forget_if_empty(connection, groups)
        return int(expired)

    @staticmethod
    def flush(connection: sqlite3.Connection) -> None:
        for table in ("members", "groups", "messages", "dead_letters"):
            connection.execute(f"DELETE FROM {table}")  # fixed table names
        # Bump the counter (never reset it), so no cached view survives a flush.
        connection.execute("UPDATE meta SET value = value + 1 WHERE key = 'seq'")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
