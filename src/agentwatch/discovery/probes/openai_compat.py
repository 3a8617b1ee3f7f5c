"""OpenAI-compatible servers: ``GET /v1/models`` answering a model list (vLLM, llama.cpp, LM Studio, LocalAI...)."""

from __future__ import annotations

from typing import Any

from agentwatch.discovery.httpio import Http
from agentwatch.discovery.signals import Service, Signal

# ``owned_by`` values and headers that name the server behind the OpenAI-compatible API.
OWNERS = {
    "vllm": "vllm",
    "llamacpp": "llama.cpp",
    "llama.cpp": "llama.cpp",
    "organization_owner": "lm-studio",
    "localai": "localai",
    "tgi": "tgi",
    "huggingface": "tgi",
    "ollama": "ollama",
    "library": "ollama",
    "sglang": "sglang",
    "openai": "openai-compatible",
    "system": "openai-compatible",
}
MAX_MODELS = 50


def _model_list(doc: Any) -> list[dict[str, Any]] | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return None
    models = [m for m in doc["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if doc["data"] and not models:
        return None
    if doc.get("object") not in (None, "list"):
        return None
    return models


async def probe(http: Http, service: Service) -> list[Signal]:
    reply = await http.get("/v1/models")
    if reply is None or reply.status != 200:
        return []
    models = _model_list(reply.json())
    if models is None:
        return []
    owners = sorted({str(m.get("owned_by", "")).lower() for m in models if m.get("owned_by")})
    backend = next((OWNERS[o] for o in owners if o in OWNERS), None)
    server = reply.headers.get("server", "")
    if backend in (None, "openai-compatible") and "llama" in server.lower():
        backend = "llama.cpp"
    framework = backend or "openai-compatible"
    if framework == "openai-compatible" and any(m.get("object") == "model" for m in models):
        framework = "openai-compatible"
    ids = [m["id"][:200] for m in models[:MAX_MODELS]]
    url = http.url("/v1/models")
    service.metadata.setdefault("models", ids)
    return [
        Signal(
            detector="openai_api",
            signal_type="openai_models_endpoint",
            description=f"OpenAI-compatible API ({framework}) serving {len(models)} model(s) at {url}",
            confidence="high" if models else "medium",
            evidence={
                "host": service.host,
                "port": service.port,
                "url": url,
                "models": ids,
                "owned_by": owners[:10],
                "framework": framework,
            },
            framework=framework,
            agent_type="llm_server",
        )
    ]
