"""Cost of the whole detection engine on the pipeline path (``DetectionEngine.detect``).

Two mixes: the ingest benchmark's events (2/3 process.exec, 1/3 ai.request without
messages) and agent text (LLM requests with user prompts and tool results), with
the bundled ATR set, the agentwatch pack and the built-in rules loaded.

    python bench/atr/engine.py [--events 6000]
"""

from __future__ import annotations

import argparse
import time

from agentwatch.detect.atr.testcases import event_from_body
from agentwatch.detect.engine import DetectionEngine
from agentwatch.detect.settings import DetectionSettings


def ingest_mix(i: int) -> dict:
    return {
        "event_id": f"m-{i}",
        "event_type": "ai.request" if i % 3 == 0 else "process.exec",
        "ts": "2026-01-01T00:00:00.000001Z",
        "host": {"hostname": "bench"},
        "process": {"pid": 1000 + i % 50, "ppid": 1, "name": "python3"},
        "data": {"request_id": f"r{i}", "provider": {"name": "openai"}, "model": {"id": "gpt-4o"}}
        if i % 3 == 0
        else {"exe": "/usr/bin/python3", "args": ["python3", "agent.py"]},
    }


def agent_text(i: int) -> dict:
    if i % 2:
        return {
            "event_id": f"t-{i}",
            "event_type": "agent.tool_result",
            "data": {
                "call_id": f"c{i}",
                "tool": {"name": "fetch"},
                "result": f"<html>Product page {i}: price 20 EUR, in stock.</html>",
            },
        }
    return {
        "event_id": f"t-{i}",
        "event_type": "ai.request",
        "data": {
            "provider": {"name": "openai"},
            "model": {"id": "gpt-4o"},
            "messages": [
                {"role": "system", "content": "You are a helpful shopping assistant."},
                {
                    "role": "user",
                    "content": f"Compare the prices of item {i} across the three shops and recommend one.",
                },
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=6000)
    args = parser.parse_args()
    engine = DetectionEngine(DetectionSettings())
    engine.ensure_loaded()
    engine.atr_ready.wait()
    print(f"{'mix':<42}{'events':>8}{'events/s':>12}")
    for name, make in (
        ("ingest bench (process.exec, ai.request)", ingest_mix),
        ("agent text (prompts, tool results)", agent_text),
    ):
        events = [event_from_body(make(i)) for i in range(args.events)]
        started = time.perf_counter()
        for k in range(0, len(events), 500):
            engine.detect(events[k : k + 500])
        rate = len(events) / (time.perf_counter() - started)
        print(f"{name:<42}{len(events):>8}{rate:>12,.0f}")


if __name__ == "__main__":
    main()
