"""TCP connect on the AI port list, and a server-first banner when the service speaks first."""

from __future__ import annotations

import asyncio
import contextlib

from agentwatch.discovery.signals import Signal

# Well-known purposes of the ports on the default list (the hint shown with an open port).
PORT_HINTS = {
    1234: "lm_studio", 1337: "jan", 2024: "langgraph", 3000: "mcp_or_webui", 3001: "mcp", 3080: "librechat",
    3100: "dify", 4000: "litellm", 5000: "agent_api", 5001: "koboldcpp", 5678: "n8n", 6333: "qdrant",
    7860: "gradio_or_textgen", 8000: "fastapi_or_vllm", 8001: "agent_api", 8080: "llm_server_or_proxy",
    8082: "llm_server", 8123: "langgraph", 8283: "letta", 8443: "https_agent", 8501: "streamlit",
    8888: "jupyter_or_agent", 9000: "agent_api", 11434: "ollama", 19530: "milvus",
}  # fmt: skip


async def connect(
    host: str, port: int, timeout: float, banner_timeout: float, max_banner: int = 512
) -> str | None | bool:
    """False when closed; otherwise the banner text (None when the service did not speak first)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    banner: str | None = None
    try:
        if banner_timeout > 0:
            with contextlib.suppress(OSError, TimeoutError):
                data = await asyncio.wait_for(reader.read(max_banner), banner_timeout)
                if data:
                    banner = data.decode("utf-8", "replace")
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 0.5)
    return banner


def port_signal(host: str, port: int) -> Signal:
    hint = PORT_HINTS.get(port, "ai_service")
    return Signal(
        detector="port_scanner",
        signal_type="ai_port_open",
        description=f"port {port} ({hint}) open on {host}",
        confidence="low",
        evidence={"host": host, "port": port, "service_hint": hint},
        needs_corroboration=True,
    )
