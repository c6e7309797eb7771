"""One command's hold on an install: its backup store, the install lock, and recovery first.

Every command that reads or writes an install runs inside ``session(install)``: it takes the
per-install lock, then finishes what a killed run left (``Transaction.recover``: rolls an interrupted
apply back, completes an interrupted revert) before it looks at anything, and says so in ``recovered``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..disk.lock import InstallLock
from ..install.locate import Install
from ..record.store import Store
from .transaction import Transaction


@dataclass
class Session:
    install: Install
    store: Store
    recovered: str | None = None


@contextmanager
def session(install: Install) -> Iterator[Session]:
    store = Store(install)
    with InstallLock(store.dir, f"Ultralytics {install.release} at {install.package}"):
        yield Session(install, store, Transaction(install, store).recover())
