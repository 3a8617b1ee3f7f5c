"""Python SDK for agents: report sessions, thoughts and tool calls to agentwatch over AOP.

    from agentwatch.sdk import AopClient

    with AopClient("my-agent", url="http://127.0.0.1:7777") as aop:
        aop.session_started(goal="Summarize document")

        @aop.tool()
        def search(query: str) -> list[str]: ...

        aop.thought("Looking for sources", confidence=0.8)
        search("agent observability")
        aop.session_ended("completed")

Reporting never raises into the agent and never blocks it on the network; events
are batched, retried, and kept in a spill file while the collector is down.
"""

from agentwatch.sdk.client import AopClient, AsyncAopClient
from agentwatch.sdk.transport import Transport

__all__ = ["AopClient", "AsyncAopClient", "Transport"]
