"""The eval gate: a proposal's rule really run, on its own test cases and on stored data.

An eval compiles the proposal's current logic with agentwatch's Sigma compiler and runs it

1. on the proposal's test cases: every ``must_match`` event must match, no ``must_not_match``
   event may;
2. on the stored events of the window (``proposals.window_s``, newest
   ``proposals.max_window_events``): how many it matches, naming the entities; at most
   ``proposals.max_window_hits`` may match, or the rule would flood the alert queue;
3. on the events of alerts analysts judged (``alert_feedback``): how many true-positive
   alerts it would have caught and how many false-positive ones it would repeat.

It passes when (1) holds entirely, (2) stays under the cap and (2) and (3) finish within
``proposals.max_eval_s`` (a rule too slow to replay would be too slow on every event); (3) is
reported. The live
rule set's numbers for the same passes are the baseline (:func:`run_baseline`); an eval shows
what promoting the rule would add to them: matched events the live set does not already
match (checked on up to :data:`MAX_NEW_CHECK` of them) and labelled alerts beyond the
baseline's.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from agentwatch.detect.atr.testcases import event_from_body
from agentwatch.detect.proposals.bodies import MAX_LOGIC_BYTES
from agentwatch.detect.proposals.logic import compile_logic, sha256
from agentwatch.detect.proposals.replay import replay_feedback, replay_window
from agentwatch.detect.proposals.settings import ProposalSettings
from agentwatch.events.model import iso

MAX_NEW_CHECK = 1_000
CLOCK_SKEW_S = 300.0  # events stamped up to this far past the server's clock still count


def run_cases(compiled: Any, cases: dict[str, Any]) -> dict[str, Any]:
    """Each test case's outcome, by list and index."""
    out: dict[str, Any] = {}
    for name, expect in (("must_match", True), ("must_not_match", False)):
        results = []
        for i, body in enumerate(cases.get(name) or []):
            matched = compiled.matches(event_from_body(body))
            results.append({"index": i, "matched": matched, "passed": matched == expect})
        out[name] = {
            "total": len(results),
            "passed": sum(r["passed"] for r in results),
            "failed": [r["index"] for r in results if not r["passed"]],
        }
    return out


def _live_matches(detection: Any) -> Any:
    """The live rule set (stateless part) as a predicate: any finding on the event."""
    return lambda event: bool(detection.evaluate(event))


def _deltas(window: Any, feedback: Any, baseline: dict[str, Any] | None, detection: Any) -> dict[str, Any] | None:
    if baseline is None or detection is None:  # nothing to compare with, or no live set to ask
        return None
    metrics = baseline["metrics"]
    base_events = metrics["window"]["events_hit"]
    out: dict[str, Any] = {
        "baseline_id": baseline["id"],
        "baseline_at": baseline["created_at"],
        "events_hit": {
            "baseline": base_events,
            "added": window.added,
            "with_proposal": base_events + window.added,
            "unchecked": window.events_hit - window.checked,
        },
    }
    for label in ("tp", "fp"):
        known = set(metrics["feedback_ids"][label])
        mine = feedback.tp_hit if label == "tp" else feedback.fp_hit
        new = len(set(mine) - known)
        base = metrics["feedback"][f"{label}_alerts_hit"]
        out[f"{label}_alerts_hit"] = {"baseline": base, "added": new, "with_proposal": base + new}
    return out


def run_eval(
    db: Any,
    detection: Any,
    logic: str,
    cases: dict[str, Any],
    settings: ProposalSettings,
    baseline: dict[str, Any] | None,
    now: float | None = None,
) -> tuple[bool, dict[str, Any]]:
    """(passed, the result to store) for ``logic`` with ``cases``; raises LogicError."""
    started = time.monotonic()
    deadline = started + settings.max_eval_s
    now = time.time() if now is None else now
    compiled = compile_logic(logic, MAX_LOGIC_BYTES)
    case_result = run_cases(compiled, cases)
    # the live set is asked about the first MAX_NEW_CHECK matched events as they pass (only
    # when there is a baseline to add to), so no matched event is kept for later
    live = _live_matches(detection) if baseline is not None and detection is not None else None
    window = replay_window(
        db,
        compiled.matches,
        now - settings.window_s,
        now + CLOCK_SKEW_S,
        settings.max_window_events,
        live,
        MAX_NEW_CHECK,
        deadline,
    )
    feedback = replay_feedback(db, compiled.matches, settings.max_feedback_alerts, deadline)
    checks = {
        "must_match": case_result["must_match"]["total"] > 0 and not case_result["must_match"]["failed"],
        "must_not_match": not case_result["must_not_match"]["failed"],
        "window_hits": window.events_hit <= settings.max_window_hits,
        # a rule too slow to replay within proposals.max_eval_s is too slow to run on every event
        "within_time": not (window.timed_out or feedback.timed_out),
    }
    passed = all(checks.values())
    result = {
        "rule_id": compiled.rule_id,
        "logic_sha256": sha256(logic),
        "passed": passed,
        "checks": checks,
        "test_cases": case_result,
        "window": window.as_json(settings.max_window_hits),
        "feedback": feedback.as_json(),
        "deltas": _deltas(window, feedback, baseline, detection),
        "ran_at": iso(now),
        "seconds": round(time.monotonic() - started, 3),
    }
    return passed, result


def run_baseline(db: Any, detection: Any, settings: ProposalSettings, now: float | None = None) -> dict[str, Any]:
    """The live rule set's numbers over the window and the judged alerts (what evals compare to)."""
    started = time.monotonic()
    now = time.time() if now is None else now
    live = _live_matches(detection)
    deadline = started + settings.max_eval_s
    since, until = now - settings.window_s, now + CLOCK_SKEW_S
    window = replay_window(db, live, since, until, settings.max_window_events, deadline=deadline)
    feedback = replay_feedback(db, live, settings.max_feedback_alerts, deadline)
    return {
        "rules": sum(1 for r in detection.rules() if r.enabled),
        "window": window.as_json(),
        "feedback": feedback.as_json(),
        # every hit id (bounded by proposals.max_feedback_alerts): what an eval's additions are counted against
        "feedback_ids": {"tp": feedback.tp_hit, "fp": feedback.fp_hit},
        "ran_at": iso(now),
        "seconds": round(time.monotonic() - started, 3),
    }


def cases_of(text: str) -> dict[str, Any]:
    doc = orjson.loads(text)
    return doc if isinstance(doc, dict) else {}
