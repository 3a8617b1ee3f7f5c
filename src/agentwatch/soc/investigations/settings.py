"""Settings of the AI investigator (``[investigations]`` in the config file,
``AGENTWATCH_INVESTIGATIONS__*``). The model itself is the ``[llm]`` backend."""

from __future__ import annotations

from pydantic import BaseModel, Field


class InvestigationSettings(BaseModel):
    max_steps: int = Field(8, ge=1, le=50, description="most calls to the model in one investigation")
    max_tool_calls: int = Field(
        8, ge=1, le=32, description="most tool calls run from one answer of the model (the rest answer an error)"
    )
    max_tokens: int = Field(
        60_000, ge=1_000, le=2_000_000, description="most tokens (prompt and answer) one investigation may spend"
    )
    max_wall_s: float = Field(300.0, ge=1, le=3_600, description="longest time one investigation (or replay) runs")
    max_result_chars: int = Field(
        8_000, ge=500, le=200_000, description="longest tool result given to the model, in JSON characters"
    )
    max_search_events: int = Field(25, ge=1, le=200, description="most events one event search or timeline returns")
    max_case_alerts: int = Field(20, ge=1, le=200, description="most linked alerts of the case shown in the prompt")
    max_concurrent: int = Field(2, ge=1, le=32, description="investigations running at once on one node")
    max_per_case: int = Field(100, ge=1, le=10_000, description="most investigations kept per case")
