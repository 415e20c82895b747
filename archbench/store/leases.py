"""Leases: which sweep is running which job, so that concurrent sweeps split the work.

A :class:`LeaseOwner` names one sweep (host, process id and a random token). It claims a job in
the store (:meth:`archbench.store.ResultStore.claim`) right before running it; a
:class:`Heartbeat` thread renews every lease the owner holds, on its own database connection,
while the sweep runs; storing the job's result drops its lease. When the owner dies its leases
stop being renewed and expire after their time-to-live (:data:`DEFAULT_LEASE_SECONDS`, or
``ARCHBENCH_LEASE_SECONDS``), and at once for another sweep on the same host when the owner's
process no longer exists. Machines sharing a store need clocks that agree to well within the
time-to-live (NTP does this).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench.store.schema import guarded

log = logging.getLogger(__name__)

#: seconds a lease lasts without renewal (renewed every quarter of it while its owner lives)
DEFAULT_LEASE_SECONDS = 120.0
LEASE_ENV = "ARCHBENCH_LEASE_SECONDS"


def lease_seconds() -> float:
    """The lease time-to-live: ``ARCHBENCH_LEASE_SECONDS`` if set (at least 2 s), else the default."""
    from archbench.errors import ConfigError

    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{LEASE_ENV}={text!r} is not a number of seconds") from None
    if not value >= 2:
        raise ConfigError(f"{LEASE_ENV} must be at least 2 seconds, got {text}")
    return value


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


@dataclass(frozen=True)
class LeaseOwner:
    """One sweep holding leases: ``token`` is unique (host, pid and random bits)."""

    token: str
    host: str
    pid: int

    @classmethod
    def this_process(cls) -> LeaseOwner:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{secrets.token_hex(6)}", host, pid)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


class Heartbeat:
    """Renews ``owner``'s leases in the store at ``path`` every ``ttl / 4`` seconds in a daemon
    thread (its own connection), until :meth:`stop`. A store in memory needs none."""

    def __init__(self, path: Path | None, owner: LeaseOwner, ttl: float) -> None:
        self.path, self.owner, self.ttl = path, owner, ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        if self.path is not None and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="archbench-lease-heartbeat", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        conn = None
        try:
            while not self._stop.wait(self.ttl / 4):
                try:
                    if conn is None:
                        conn = sqlite3.connect(str(self.path), timeout=self.ttl / 4, isolation_level=None)
                    conn.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + self.ttl, self.owner.token))
                except sqlite3.Error as exc:  # the next beat tries again; the lease may lapse
                    log.warning("could not renew the sweep's job leases: %s", exc)
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: what :meth:`StoreLeases.claim` answers: the job is now ours; done already; attempted by another
#: sweep since this one looked (``attempted``); being run by another live sweep (``held``)
CLAIMED, DONE, ATTEMPTED, HELD = "claimed", "done", "attempted", "held"


class StoreLeases:
    """Which sweep runs which job: claims, renewals and releases in the store (a mixin of
    :class:`archbench.store.ResultStore`; uses its ``conn``, ``exists`` and ``transaction``)."""

    @guarded
    def claim(self, key: str, owner: LeaseOwner, ttl: float, seen_attempts: int = 0) -> str:
        """Claim the job ``key`` for ``owner`` for ``ttl`` seconds, in one transaction.

        Returns :data:`CLAIMED` (now ``owner``'s: run it; a claim ``owner`` already holds is
        renewed), :data:`DONE` (stored as done), :data:`ATTEMPTED` (stored by another sweep since
        this one saw ``seen_attempts`` attempts: not run again) or :data:`HELD` (another sweep
        holds a live lease on it). A lease whose owner died -- expired, or held by a process of
        this host that no longer exists -- is taken over.
        """
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT status, attempts FROM runs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == "done":
                return DONE
            if row is not None and int(row[1] or 0) > seen_attempts:
                return ATTEMPTED
            lease = c.execute("SELECT owner, host, pid, expires FROM leases WHERE key = ?", (key,)).fetchone()
            if lease is not None and lease[0] != owner.token and not self._lease_dead(lease, now):
                return HELD
            c.execute(
                "INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, "
                "host = excluded.host, pid = excluded.pid, acquired = excluded.acquired, expires = excluded.expires",
                (key, owner.token, owner.host, owner.pid, now, now + ttl),
            )
        return CLAIMED

    @staticmethod
    def _lease_dead(lease: tuple, now: float) -> bool:
        _owner, host, pid, expires = lease
        if expires is None or float(expires) <= now:
            return True
        return host == socket.gethostname() and not pid_alive(int(pid))

    @guarded
    def renew(self, owner: LeaseOwner, ttl: float) -> int:
        """Push the expiry of every lease ``owner`` holds to now + ``ttl``; returns how many."""
        with self.transaction() as c:
            return c.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + ttl, owner.token)).rowcount

    @guarded
    def release(self, owner: LeaseOwner, keys: Iterable[str] | None = None) -> int:
        """Drop ``owner``'s leases (all, or those among ``keys``); returns how many."""
        with self.transaction() as c:
            if keys is None:
                return c.execute("DELETE FROM leases WHERE owner = ?", (owner.token,)).rowcount
            return sum(c.execute("DELETE FROM leases WHERE owner = ? AND key = ?", (owner.token, k)).rowcount for k in keys)

    @guarded
    def leases(self, keys: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Live leases (all, or those among ``keys``): key -> owner, host, pid, acquired, expires."""
        if not self.exists:
            return {}
        now = time.time()
        rows = self.conn.execute("SELECT key, owner, host, pid, acquired, expires FROM leases").fetchall()
        wanted = set(keys) if keys is not None else None
        return {
            r[0]: {"owner": r[1], "host": r[2], "pid": r[3], "acquired": r[4], "expires": r[5]}
            for r in rows
            if (wanted is None or r[0] in wanted) and not self._lease_dead((r[1], r[2], r[3], r[5]), now)
        }
