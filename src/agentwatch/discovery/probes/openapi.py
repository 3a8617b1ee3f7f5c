"""OpenAPI documents whose paths, operations and schemas speak the vocabulary of AI agents."""

from __future__ import annotations

import re
from typing import Any

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.signals import Service, Signal

DOC_PATHS = ("/openapi.json", "/swagger.json", "/api/openapi.json", "/docs/openapi.json")
# Terms that almost only occur in AI APIs, and terms that only add weight next to them.
STRONG = frozenset(
    [
        "llm",
        "llms",
        "prompt",
        "prompts",
        "completion",
        "completions",
        "embedding",
        "embeddings",
        "agent",
        "agents",
        "inference",
        "assistant",
        "assistants",
        "rag",
        "langchain",
        "langgraph",
        "mcp",
        "toolcall",
        "toolcalls",
        "chatcompletion",
        "chatcompletions",
        "vectorstore",
        "finetune",
        "finetuning",
        "tokenizer",
    ]
)
WEAK = frozenset(
    [
        "chat",
        "model",
        "models",
        "generate",
        "invoke",
        "retrieve",
        "retrieval",
        "stream",
        "tools",
        "tool",
        "thread",
        "threads",
        "run",
        "runs",
        "message",
        "messages",
        "conversation",
        "conversations",
        "knowledge",
    ]
)
WORD = re.compile(r"[a-z]+")
MAX_TEXT = 200_000


def _words(doc: dict[str, Any]) -> set[str]:
    parts: list[str] = []
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    parts += [str(info.get("title", "")), str(info.get("description", ""))[:2000]]
    paths = doc.get("paths") if isinstance(doc.get("paths"), dict) else {}
    for path, ops in list(paths.items())[:500]:
        parts.append(str(path))
        if isinstance(ops, dict):
            for op in ops.values():
                if isinstance(op, dict):
                    parts += [str(op.get("operationId", "")), str(op.get("summary", ""))]
    comps = doc.get("components") if isinstance(doc.get("components"), dict) else {}
    schemas = comps.get("schemas") if isinstance(comps.get("schemas"), dict) else doc.get("definitions", {})
    if isinstance(schemas, dict):
        parts += list(schemas)[:500]
    text = " ".join(parts)[:MAX_TEXT]
    # split camelCase and snake_case, then join compound forms we look for
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower().replace("_", " ").replace("-", " ")
    words = set(WORD.findall(text))
    compact = text.replace(" ", "")
    for compound in ("toolcall", "chatcompletion", "vectorstore", "finetune"):
        if compound in compact:
            words.add(compound)
    return words


def _stems(words: set[str]) -> set[str]:
    """Singular and plural count once ("agent", "agents")."""
    return {w[:-1] if w.endswith("s") and w[:-1] in words else w for w in words}


def grade(words: set[str]) -> tuple[str | None, list[str], list[str]]:
    strong = sorted(_stems(words & STRONG))
    weak = sorted(_stems(words & WEAK))
    if len(strong) >= 5:
        return "high", strong, weak
    if len(strong) >= 3 or (len(strong) >= 2 and len(weak) >= 2):
        return "medium", strong, weak
    if strong and len(weak) >= 3:
        return "low", strong, weak
    return None, strong, weak


async def probe(http: Http, service: Service) -> list[Signal]:
    for path in DOC_PATHS:
        reply = await http.get(path)
        if reply is None or reply.status != 200:
            continue
        doc = reply.json()
        if (
            not isinstance(doc, dict)
            or not ("openapi" in doc or "swagger" in doc)
            or not isinstance(doc.get("paths"), dict)
        ):
            continue
        level, strong, weak = grade(_words(doc))
        if level is None:
            return []
        url = http.url(path)
        title = str((doc.get("info") or {}).get("title", ""))[:200] if isinstance(doc.get("info"), dict) else ""
        return [
            Signal(
                detector="endpoint_prober",
                signal_type="openapi_ai_vocabulary",
                description=f"OpenAPI document {title!r} at {url} uses AI vocabulary: {', '.join(strong)}",
                confidence=level,
                evidence={
                    "host": service.host,
                    "port": service.port,
                    "url": url,
                    "title": title,
                    "terms": strong,
                    "context": weak,
                },
                agent_type="api_agent",
            )
        ]
    return []
