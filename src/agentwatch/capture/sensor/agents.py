"""Recognising AI agent processes: known agent programs, LLM API clients, stdio MCP servers."""

from __future__ import annotations

import re
from dataclasses import dataclass

# (pattern over "name + cmdline", agent name). Anchored on word boundaries, bounded.
KNOWN_AGENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?:^|[/\s])claude(?:\s|$)|@anthropic-ai/claude-code"), "claude-code"),
    (re.compile(r"(?:^|[/\s])codex(?:\s|$)|@openai/codex"), "openai-codex"),
    (re.compile(r"(?:^|[/\s])aider(?:\s|$)|aider\.main|-m aider"), "aider"),
    (re.compile(r"(?:^|[/\s])gemini(?:\s|$)|@google/gemini-cli"), "gemini-cli"),
    (re.compile(r"cursor-agent|(?:^|[/\s])cursor(?:\s|$)"), "cursor"),
    (re.compile(r"(?:^|[/\s])goose(?:\s|$)"), "goose"),
    (re.compile(r"open-?interpreter|(?:^|[/\s])interpreter(?:\s|$)"), "open-interpreter"),
    (re.compile(r"(?:^|[/\s])opencode(?:\s|$)"), "opencode"),
    (re.compile(r"continue(?:-cli|\.continue)"), "continue"),
    (re.compile(r"copilot-language-server|github-copilot"), "github-copilot"),
    (re.compile(r"(?:^|[/\s])amp(?:\s|$)|@sourcegraph/amp"), "amp"),
    (re.compile(r"autogpt|auto-gpt"), "autogpt"),
    (re.compile(r"crewai"), "crewai"),
    (re.compile(r"langgraph|langchain"), "langchain"),
    (re.compile(r"(?:^|[/\s])ollama(?:\s|$)"), "ollama"),
]
MCP_SERVER = re.compile(
    r"mcp-server|server-[a-z0-9-]{1,64}\b.*\bmcp|@modelcontextprotocol/|(?:^|[/\s])mcp(?:\s|$)|fastmcp|mcp[_-]server"
)


@dataclass(frozen=True)
class AgentMatch:
    name: str
    reason: str  # known_program | mcp_server_stdio | llm_api_client


def classify(name: str, cmdline: str) -> AgentMatch | None:
    text = f"{name} {cmdline}"[:8192]
    if MCP_SERVER.search(text):
        return AgentMatch("mcp-server", "mcp_server_stdio")
    for rx, agent in KNOWN_AGENTS:
        if rx.search(text):
            return AgentMatch(agent, "known_program")
    return None
