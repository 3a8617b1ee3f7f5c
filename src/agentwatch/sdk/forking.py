"""What the SDK renews in the child of ``os.fork()``.

Only the thread that called fork lives on in the child: the sender thread is gone, a lock
another thread held at that moment stays held for ever, and pooled connections are the
parent's sockets. Every client and transport registers here, and right after a fork each
one's ``after_fork_in_child`` starts it afresh in the child. That step is cheap (no thread,
no connection, no I/O), since a child that goes on to ``exec`` never reports; the sender
starts when the child first reports or flushes.

A ``multiprocessing`` child (``Process``, ``Pool`` workers) ends with ``os._exit()``, so the
interpreter's exit hooks never run in it. What it runs instead are multiprocessing's own
finalizers; :func:`at_worker_exit` hooks into those, in multiprocessing children only.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import weakref
from collections.abc import Callable
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


# -- the end of a multiprocessing child ------------------------------------------------
# Before the queues' own finalizers (priority 10 and below): a report is delivered, or
# spilled, while the worker still has everything it needs.
WORKER_EXIT_PRIORITY = 100
_AT_WORKER_EXIT: list[Callable[[], None]] = []
_worker_exit: tuple[int, multiprocessing.util.Finalize] | None = None  # (pid, its finalizer)


class _Hook:
    """What multiprocessing's after-fork registry holds (it keeps only weakly referenced objects)."""


_HOOK = _Hook()


def at_worker_exit(func: Callable[[], None]) -> None:
    """Have ``func()`` called as a multiprocessing child process ends: in this process if it is
    one, and in every multiprocessing child started from now on. Elsewhere (a plain ``fork``,
    the main process) nothing changes: the interpreter's exit hooks still run there."""
    _AT_WORKER_EXIT.append(func)
    _hook_worker_exit(_HOOK)


def _hook_worker_exit(_hook: _Hook) -> None:
    """Register the finalizer once per multiprocessing child. A forked child starts with its
    parent's finalizers cleared, then runs the after-fork registry: this runs there."""
    global _worker_exit
    if multiprocessing.parent_process() is None:
        return
    pid = os.getpid()
    if _worker_exit is not None and _worker_exit[0] == pid and _worker_exit[1].still_active():
        return
    finalizer = multiprocessing.util.Finalize(None, _run_worker_exit, exitpriority=WORKER_EXIT_PRIORITY)
    _worker_exit = (pid, finalizer)


def _run_worker_exit() -> None:
    for func in list(_AT_WORKER_EXIT):
        try:
            func()
        except Exception:  # the worker must still end, and the other functions run
            log.exception("agentwatch sdk: could not finish reporting as the worker process ended")


multiprocessing.util.register_after_fork(_HOOK, _hook_worker_exit)
