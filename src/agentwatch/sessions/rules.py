"""Session rules: a detector in the pipeline, driven by event time, with persisted state.

Rules (thresholds in :class:`agentwatch.sessions.settings.AopSettings`):

- ``loop``: one tool started ``loop_min_calls`` (5) times within ``loop_window_s`` (60 s
  of event time) and at least ``loop_repeat_ratio`` (40 %) of those calls repeat an
  earlier call's input (``1 - distinct inputs / calls``).
- ``confidence_drop``: ``confidence_streak`` (3) consecutive low-confidence thoughts.
- ``error_cascade``: ``error_streak`` (3) consecutive failed tool ends; critical.
- ``token_budget`` / ``cost_budget``: the session's tokens / cost exceed its budget
  (``session.started`` may carry ``token_budget`` / ``cost_budget_usd``; else the setting).
  Each fires once per budget: the session's own budget governs from when it is known, so
  when a ``session.started`` arrives after the default budget already fired (a heartbeat
  came first) and sets a larger budget, the rule fires again once that one is exceeded (as
  an alert of its own, naming it). The alert already raised stays: it was true of the
  budget known then. A smaller or equal budget arriving late does not fire again.
- ``repeated_tool_failure``: one tool failed in ``tool_failure_sessions`` (3) distinct
  sessions of one agent within ``tool_failure_window_s``.

(``stall`` is wall-clock based and lives in :mod:`agentwatch.sessions.service`.)

State is kept per ``session:<id>`` and ``agent:<id>`` in ``aop_rule_state`` and read back on
a cache miss, so it survives a restart. The rules run inside the transaction that stores
the events (``in_commit``, on exactly the events stored for the first time, so a retry never
counts twice) and write the states they changed there, with the alerts they fired: state and
alerts are committed with the events or not at all, and a batch costs no transaction of its
own. They work on copies of the cached states, which replace the cached ones only once the
transaction has committed; their findings (already stored) are handed to the pipeline through
``detect`` to be published.

Deleting a session (``forget``) removes its own state and strikes it from its agents'
tool-failure history, in the delete's transaction.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, bindparam, delete, select

from agentwatch.alerts.recorder import record_in
from agentwatch.events.model import Event
from agentwatch.pipeline.pipeline import Finding
from agentwatch.sessions.derive import session_events
from agentwatch.sessions.schema import aop_rule_state
from agentwatch.sessions.settings import AopSettings
from agentwatch.store.prepared import Prepared
from agentwatch.store.upsert import upsert

log = structlog.get_logger("agentwatch.sessions.rules")

DETECTOR = "session_rules"
SEVERITY = {
    "loop": 5,
    "confidence_drop": 5,
    "error_cascade": 9,
    "token_budget": 7,
    "cost_budget": 7,
    "repeated_tool_failure": 6,
    "stall": 5,
}
TITLES = {
    "loop": "Agent loop: the same tool called repeatedly with repeated inputs",
    "confidence_drop": "Agent confidence dropped: consecutive low-confidence thoughts",
    "error_cascade": "Error cascade: consecutive failed tool calls",
    "token_budget": "Session token budget exceeded",
    "cost_budget": "Session cost budget exceeded",
    "repeated_tool_failure": "One tool keeps failing across sessions of the same agent",
    "stall": "Session stalled: no events for too long",
}
MAX_TOOLS = 64
MAX_CALLS = 64
MAX_OPEN = 256
MAX_FAILURES = 200
CACHE = 10_000
CHUNK = 500
FEW = 16  # up to this many states are read one by one, more with IN queries of CHUNK
_UPDATE = {"state": lambda _t, ex: ex.state, "updated_at": lambda _t, ex: ex.updated_at}
_STATE = Prepared(select(aop_rule_state.c.state).where(aop_rule_state.c.scope == bindparam("scope")))


def rule_id(kind: str) -> str:
    return f"aop.{kind}"


def _input_hash(value: Any) -> str:
    try:
        blob = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        blob = repr(value).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def windows_with(history: list[list[Any]], ts: float, window: float) -> Iterator[list[list[Any]]]:
    """The entries (``[event time, ...]``) of each window ``(end - window, end]`` holding ``ts``.

    In order, that is the one window ending at ``ts``; a late event may also complete a window
    that ends at an entry which arrived before it."""
    for end in sorted({h[0] for h in history if ts <= h[0] < ts + window}):
        yield [h for h in history if end - window < h[0] <= end]


def finding(kind: str, e: Event, message: str, *, dedup_key: str | None = None, **details: Any) -> Finding:
    return Finding(
        detector=DETECTOR,
        rule_id=rule_id(kind),
        title=TITLES[kind],
        severity=SEVERITY[kind],
        events=[e],
        alert_type="builtin",
        message=message,
        tags=["aop", kind],
        dedup_key=dedup_key,
        session_id=e.session_id,
        ts=e.ts,
        details={"aop_type": kind, "agent_id": e.agent, **details},
    )


def _count(n: float) -> str:
    """A token count as people read it: 5,000,001, not 5e+06 (which hid that it was over 5e+06)."""
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.2f}"


class SessionRules:
    """The ``session_rules`` detector."""

    name = DETECTOR

    def __init__(self, engine: Engine, settings: AopSettings, *, keep_cache: bool = True) -> None:
        self.engine = engine
        self.s = settings
        # Only the single writer of a standalone server may keep state between batches; with
        # several pipeline workers on one database, each batch reads the state afresh.
        self.keep_cache = keep_cache
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._work: dict[str, dict[str, Any]] = {}  # the batch's copies, while it is evaluated
        self._found: list[Finding] = []  # findings of committed batches, until detect() hands them on

    # -- state -------------------------------------------------------------
    def _load(self, conn: Connection, scopes: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The states of ``scopes`` as stored (``{}`` for a scope with none)."""
        found: dict[str, dict[str, Any]] = {}
        missing = list(dict.fromkeys(scopes))
        if len(missing) <= FEW and conn.dialect.name == "sqlite":  # cheapest there; a round trip each on PG
            for scope in missing:
                for (state,) in _STATE.rows(conn, scope=scope):
                    found[scope] = orjson.loads(state)
        else:
            for i in range(0, len(missing), CHUNK):
                chunk = missing[i : i + CHUNK]
                for r in conn.execute(select(aop_rule_state).where(aop_rule_state.c.scope.in_(chunk))):
                    found[r.scope] = orjson.loads(r.state)
        return {scope: found.get(scope, {}) for scope in missing}

    def _state(self, scope: str) -> dict[str, Any]:
        return self._work[scope]  # every scope of a batch is loaded before its events are applied

    def _keep(self, states: dict[str, dict[str, Any]]) -> None:
        for scope, st in states.items():
            self._cache[scope] = st
            self._cache.move_to_end(scope)
        while len(self._cache) > CACHE:
            self._cache.popitem(last=False)

    def forget(self, conn: Connection, session_ids: Sequence[str], agents: Sequence[str]) -> Callable[[], None]:
        """Remove deleted sessions from the rule state, in the delete's transaction: their own
        states go, and the tool-failure history of ``agents`` (those the sessions' events named)
        no longer lists them, so a deleted session never counts toward a later
        ``repeated_tool_failure``. Returns what to do once the delete has committed (drop the
        cached copies; the next batch reads the stored ones).

        The caller keeps commits out meanwhile (the pipeline's ``commit_lock``): a batch
        evaluated alongside would work on, and cache, states from before the delete."""
        gone = set(session_ids)
        scopes = [f"session:{s}" for s in session_ids]
        for i in range(0, len(scopes), CHUNK):
            conn.execute(delete(aop_rule_state).where(aop_rule_state.c.scope.in_(scopes[i : i + CHUNK])))
        agent_scopes = [f"agent:{a}" for a in agents]
        now = time.time()
        rows = []
        for scope, st in self._load(conn, agent_scopes).items():
            fails = st.get("fail", {})
            kept = {tool: [f for f in history if f[1] not in gone] for tool, history in fails.items()}
            if kept != fails:
                st["fail"] = kept
                rows.append({"scope": scope, "state": orjson.dumps(st).decode(), "updated_at": now})
        if rows:
            upsert(conn, aop_rule_state, rows, ["scope"], _UPDATE)

        def committed() -> None:
            for scope in scopes + agent_scopes:
                self._cache.pop(scope, None)

        return committed

    # -- detection -----------------------------------------------------------
    def in_commit(self, conn: Connection, stored: list[Event]) -> Callable[[], None] | None:
        """Evaluate the rules on the events being stored for the first time, and write the
        states they changed in the same transaction; returns what to do once it committed."""
        fresh = session_events(stored)
        if not fresh:
            return None
        if not self.keep_cache:
            self._cache.clear()
        scopes = list(dict.fromkeys([f"session:{e.session_id}" for e in fresh] + [f"agent:{e.agent}" for e in fresh]))
        cached = {s: self._cache[s] for s in scopes if s in self._cache}
        loaded = self._load(conn, [s for s in scopes if s not in cached])
        before = {s: orjson.dumps(st) for s, st in {**cached, **loaded}.items()}
        try:
            self._work = {s: orjson.loads(blob) for s, blob in before.items()}  # copies: the cache waits
            findings: list[Finding] = []
            for e in fresh:
                findings.extend(self.apply(e))
            work = self._work
        except Exception:  # a rule bug must never lose the batch's events
            log.exception("session_rules.failed", events=len(fresh))
            return None
        finally:
            self._work = {}
        now = time.time()
        after = {s: orjson.dumps(st) for s, st in work.items()}
        rows = [
            {"scope": s, "state": blob.decode(), "updated_at": now} for s, blob in after.items() if blob != before[s]
        ]
        if rows:
            upsert(conn, aop_rule_state, rows, ["scope"], _UPDATE)
        if findings:
            # The alerts go in with the state that counted them: a crash right after the commit
            # must not leave a streak reset with its alert never stored.
            try:
                with conn.begin_nested():
                    record_in(conn, findings)
            except Exception:  # nor may an alert that cannot be stored lose the batch's events
                log.exception("session_rules.alerts_failed", findings=len(findings))
                for f in findings:
                    f.stored_as = None  # the finding sink stores them after the commit instead

        def committed() -> None:
            self._keep(work)
            self._found.extend(findings)

        return committed

    def detect(self, batch: Sequence[Event]) -> list[Finding]:
        """The findings of the batches committed since the last call (evaluated in ``in_commit``)."""
        found, self._found = self._found, []
        return found

    def apply(self, e: Event) -> list[Finding]:
        st = self._state(f"session:{e.session_id}")
        kind = e.event_type.removeprefix("aop.")
        out: list[Finding] = []
        if kind == "session.started":
            self._declare_budgets(st, e)
        elif kind == "operation.tool_start":
            out.extend(self._tool_start(st, e))
        elif kind == "operation.tool_end":
            out.extend(self._tool_end(st, e))
        elif kind == "cognition.thought":
            out.extend(self._thought(st, e))
        out.extend(self._budgets(st, e, kind))
        if kind == "session.ended":
            st.pop("calls", None)
            st.pop("open", None)
        return out

    def _tool_start(self, st: dict[str, Any], e: Event) -> list[Finding]:
        d = e.data
        tool = d.get("tool")
        call_id = d.get("tool_call_id")
        if call_id and tool:
            opened = st.setdefault("open", {})
            opened[call_id] = tool
            while len(opened) > MAX_OPEN:
                opened.pop(next(iter(opened)))
        if not tool:
            return []
        calls = st.setdefault("calls", {})
        window = self.s.loop_window_s
        history = [c for c in calls.pop(tool, []) if c[0] > e.ts - window]  # newer calls stay
        history.append([e.ts, _input_hash(d.get("input"))])
        history = sorted(history)[-MAX_CALLS:]
        calls[tool] = history
        while len(calls) > MAX_TOOLS:
            calls.pop(next(iter(calls)))
        for recent in windows_with(history, e.ts, window):
            n = len(recent)
            if n < self.s.loop_min_calls:
                continue
            repeated = 1 - len({c[1] for c in recent}) / n
            if repeated + 1e-9 < self.s.loop_repeat_ratio:
                continue
            calls[tool] = []
            msg = (
                f'Possible loop: "{tool}" called {n} times within {window:g} s of event time, '
                f"{repeated:.0%} of the calls repeating an earlier input"
            )
            return [finding("loop", e, msg, tool=tool, calls=n, repeated_ratio=round(repeated, 3))]
        return []

    def _tool_end(self, st: dict[str, Any], e: Event) -> list[Finding]:
        d = e.data
        tool = d.get("tool")
        call_id = d.get("tool_call_id")
        if call_id:
            paired = st.get("open", {}).pop(call_id, None)
            tool = tool or paired
        if d.get("success", True):
            st["err"] = 0
            return []
        out: list[Finding] = []
        st["err"] = st.get("err", 0) + 1
        if st["err"] >= self.s.error_streak:
            n, st["err"] = st["err"], 0
            out.append(finding("error_cascade", e, f"{n} consecutive tool failures", failures=n, tool=tool))
        if tool and e.agent:
            out.extend(self._cross_session(e, tool))
        return out

    def _cross_session(self, e: Event, tool: str) -> list[Finding]:
        ag = self._state(f"agent:{e.agent}")
        fails = ag.setdefault("fail", {})
        window = self.s.tool_failure_window_s
        history = [f for f in fails.pop(tool, []) if f[0] > e.ts - window]  # newer failures stay
        history.append([e.ts, e.session_id])
        fails[tool] = history = sorted(history)[-MAX_FAILURES:]
        while len(fails) > MAX_TOOLS:
            fails.pop(next(iter(fails)))
        windows = ({f[1] for f in recent} for recent in windows_with(history, e.ts, window))
        sessions = next((found for found in windows if len(found) >= self.s.tool_failure_sessions), None)
        if sessions is None:
            return []
        fails[tool] = []
        msg = (
            f'Tool "{tool}" failed in {len(sessions)} different sessions of agent "{e.agent}" '
            f"within {window:g} s of event time"
        )
        return [
            finding(
                "repeated_tool_failure",
                e,
                msg,
                dedup_key=f"agent:{e.agent}:tool:{tool}",
                tool=tool,
                sessions=sorted(sessions),
            )
        ]

    def _thought(self, st: dict[str, Any], e: Event) -> list[Finding]:
        if e.data.get("confidence_level") != "low":
            st["low"] = 0
            return []
        st["low"] = st.get("low", 0) + 1
        if st["low"] < self.s.confidence_streak:
            return []
        n, st["low"] = st["low"], 0
        return [finding("confidence_drop", e, f"Agent expressed low confidence {n} times in a row", thoughts=n)]

    def _budgets(self, st: dict[str, Any], e: Event, kind: str) -> list[Finding]:
        d = e.data
        if kind in ("session.heartbeat", "session.ended"):
            if isinstance(d.get("total_tokens"), int | float):
                st["tok_r"] = max(st.get("tok_r", 0.0), float(d["total_tokens"]))
            if isinstance(d.get("total_cost_usd"), int | float):
                st["cost_r"] = max(st.get("cost_r", 0.0), float(d["total_cost_usd"]))
        if isinstance(d.get("tokens"), int | float):
            st["tok_s"] = st.get("tok_s", 0.0) + float(d["tokens"])
        if isinstance(d.get("cost_usd"), int | float):
            st["cost_s"] = st.get("cost_s", 0.0) + float(d["cost_usd"])
        out: list[Finding] = []
        tokens = max(st.get("tok_r", 0.0), st.get("tok_s", 0.0))
        budget = st.get("tb", self.s.token_budget)
        if self._over(st, "tokens", tokens, budget):
            msg = f"Session used {_count(tokens)} tokens, over its budget of {_count(budget)}"
            origin = "session.started" if "tb" in st else "aop.token_budget"
            out.append(self._budget_finding("token_budget", e, msg, tokens=tokens, budget=budget, budget_from=origin))
        cost = max(st.get("cost_r", 0.0), st.get("cost_s", 0.0))
        cbudget = st.get("cb", self.s.cost_budget_usd)
        if self._over(st, "cost", cost, cbudget):
            msg = f"Session cost ${cost:.4f}, over its budget of ${cbudget:.4f}"
            origin = "session.started" if "cb" in st else "aop.cost_budget_usd"
            details = {"cost_usd": cost, "budget_usd": cbudget, "budget_from": origin}
            out.append(self._budget_finding("cost_budget", e, msg, **details))
        return out

    @staticmethod
    def _declare_budgets(st: dict[str, Any], e: Event) -> None:
        """Take the budgets a ``session.started`` declares, unless one earlier in event time
        (sequence breaking a tie) declared them already: as with the goal, a session that
        reports several starts has the budgets of its first, whatever order they arrive in.
        A budget kept before its event time was (``tb_at`` absent) gives way to any."""
        d = e.data
        at = [e.ts, e.sequence or 0]
        for field, key in (("token_budget", "tb"), ("cost_budget_usd", "cb")):
            if field not in d:
                continue
            known = st.get(f"{key}_at")
            if key in st and known is not None and list(known) <= at:
                continue
            st[key] = d[field]
            st[f"{key}_at"] = at

    @staticmethod
    def _over(st: dict[str, Any], what: str, used: float, budget: Any) -> bool:
        """Whether ``used`` goes over ``budget`` and that is news: the rule did not fire yet, or
        fired against a smaller budget than this one (the session's own arrived later). Marks
        it fired against ``budget``. ``fired`` lists what fired, ``fired_b`` the budget each
        fired against (a state from before ``fired_b`` counts as fired against this one)."""
        if not budget or used <= budget:
            return False
        fired = st.setdefault("fired", [])
        against = st.setdefault("fired_b", {})
        if what in fired and budget <= against.get(what, budget):
            return False
        if what not in fired:
            fired.append(what)
        against[what] = budget
        return True

    @staticmethod
    def _budget_finding(kind: str, e: Event, message: str, **details: Any) -> Finding:
        # Each budget is an alert of its own: a repeat within the dedup window would otherwise
        # only count up the alert raised against the earlier budget, keeping its message. The
        # key spells the budget exactly (``repr`` of the float): at six significant digits
        # (``:g``) 1,000,000 and 1,000,003 tokens, or $10 and $10.000003, were one alert.
        budget = float(details.get("budget", details.get("budget_usd")))
        return finding(kind, e, message, dedup_key=f"session:{e.session_id}:{kind}:{budget!r}", **details)
