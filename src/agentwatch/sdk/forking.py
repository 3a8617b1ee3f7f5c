"""What the SDK renews in the child of ``os.fork()``.

Only the thread that called fork lives on in the child: the sender thread is gone, a lock
another thread held at that moment stays held for ever, and pooled connections are the
parent's sockets. Every client and transport registers here, and right after a fork each
one's ``after_fork_in_child`` starts it afresh in the child. That step is cheap (no thread,
no connection, no I/O), since a child that goes on to ``exec`` never reports; the sender
starts when the child first reports or flushes.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

log = logging.getLogger("agentwatch.sdk")


class Renewable(Protocol):
    def after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[Renewable] = weakref.WeakSet()


def renew_in_child(obj: Renewable) -> None:
    """Have ``obj.after_fork_in_child()`` called in the child of every later fork."""
    _LIVE.add(obj)


def _renew_all() -> None:
    for obj in list(_LIVE):
        try:
            obj.after_fork_in_child()
        except Exception:  # one client that cannot renew must not stop the others (nor the fork)
            log.exception("agentwatch sdk: could not renew %s after a fork", type(obj).__name__)


if hasattr(os, "register_at_fork"):  # not on Windows: no fork there
    os.register_at_fork(after_in_child=_renew_all)
