"""Mock AI services and decoys, each a real server on its own 127.0.0.x address.

``AGENTS`` says what the scanner must report for each mock (framework, level);
``DECOYS`` must never be reported. Both the tests and ``bench/scan`` use them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.discovery.servers import Spec
from tests.support import certs

PREFIX = "127.0.0."


@dataclass(frozen=True)
class Expect:
    host: str
    port: int
    framework: str
    agent_type: str
    level: str
    protocol: str = "http"


# what the scanner must report, worked out by hand from the scoring rules (weights .2/.5/.8/1.0)
AGENTS = [
    Expect(PREFIX + "2", 11434, "ollama", "llm_server", "confirmed"),  # tags (confirmed)
    Expect(PREFIX + "3", 8000, "vllm", "llm_server", "high"),  # port .2 + models .8 -> .84
    Expect(PREFIX + "4", 3000, "mcp", "mcp_server", "confirmed"),  # initialize (confirmed)
    Expect(PREFIX + "5", 3001, "mcp", "mcp_server", "confirmed"),  # legacy SSE initialize (confirmed)
    Expect(PREFIX + "6", 8001, "a2a", "a2a_agent", "high"),  # port .2 + card .8 -> .84
    Expect(PREFIX + "7", 8080, "agentpin", "agent", "confirmed"),  # verified signature (confirmed)
    Expect(PREFIX + "8", 8000, "langchain", "framework", "high"),  # .936, one detector: stays high
    Expect(PREFIX + "9", 4000, "litellm", "llm_proxy", "confirmed"),  # two detectors with high evidence
    Expect(PREFIX + "10", 5000, "unknown", "api_agent", "high"),  # port .2 + openapi vocabulary .5 -> .6
    Expect(PREFIX + "11", 8443, "llama.cpp", "llm_server", "confirmed", "https"),  # models + /props, over TLS
    Expect(PREFIX + "12", 8123, "langgraph", "framework", "high"),  # .2 + .2 + .8 -> .872
    Expect(PREFIX + "13", 8080, "a2a", "a2a_agent", "high"),  # forged AgentPin signature: not confirmed
    Expect(PREFIX + "14", 3001, "mcp", "mcp_server", "confirmed", "tcp"),  # stdio MCP server behind a TCP bridge
]
DECOYS = {
    PREFIX + "20": (8080, "single-page app answering 200 to everything"),
    PREFIX + "21": (8000, "plain web server"),
    PREFIX + "22": (3000, "Git forge login page"),
    PREFIX + "23": (5000, "DNS admin page behind a login"),
    PREFIX + "24": (6333, "raw TCP service with a banner"),
}
PORTS = sorted({e.port for e in AGENTS} | {p for p, _ in DECOYS.values()})
HOSTS = sorted({e.host for e in AGENTS} | set(DECOYS), key=lambda h: int(h.rsplit(".", 1)[1]))


# -- LLM servers -----------------------------------------------------------------


def ollama() -> Starlette:
    async def root(_: Request) -> Response:
        return PlainTextResponse("Ollama is running")

    async def version(_: Request) -> Response:
        return JSONResponse({"version": "0.6.2"})

    async def tags(_: Request) -> Response:
        return JSONResponse(
            {"models": [{"name": "llama3.2:3b", "size": 2019393189}, {"name": "qwen2.5:7b", "size": 4683087332}]}
        )

    return Starlette(routes=[Route("/", root), Route("/api/version", version), Route("/api/tags", tags)])


def vllm() -> Starlette:
    async def models(_: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model", "owned_by": "vllm"}],
            }
        )

    async def version(_: Request) -> Response:
        return JSONResponse({"version": "0.8.4"})

    return Starlette(routes=[Route("/v1/models", models), Route("/version", version)])


def llama_cpp() -> Starlette:
    async def models(_: Request) -> Response:
        return JSONResponse(
            {"object": "list", "data": [{"id": "qwen2.5-coder-7b.gguf", "object": "model", "owned_by": "llamacpp"}]}
        )

    async def props(_: Request) -> Response:
        return JSONResponse({"default_generation_settings": {"n_ctx": 4096}, "total_slots": 1, "chat_template": ""})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/models", models), Route("/props", props), Route("/health", health)])


def litellm() -> Starlette:
    async def alive(_: Request) -> Response:
        return PlainTextResponse("I'm alive!")

    async def ready(_: Request) -> Response:
        return JSONResponse({"status": "healthy", "db": "connected", "litellm_version": "1.67.0"})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "gpt-4o", "object": "model", "owned_by": "openai"}]})

    return Starlette(
        routes=[Route("/health/liveliness", alive), Route("/health/readiness", ready), Route("/v1/models", models)]
    )


# -- agent frameworks ------------------------------------------------------------


def langserve() -> Starlette:
    schema = {"title": "ChainInput", "type": "object", "properties": {"topic": {"type": "string"}}}
    openapi = {
        "openapi": "3.1.0",
        "info": {"title": "LangChain Server", "version": "1.0"},
        "paths": {p: {"post": {"summary": p}} for p in ("/invoke", "/batch", "/stream", "/stream_log")},
    }

    async def input_schema(_: Request) -> Response:
        return JSONResponse(schema)

    async def output_schema(_: Request) -> Response:
        return JSONResponse({"title": "ChainOutput", "type": "string"})

    async def spec(_: Request) -> Response:
        return JSONResponse(openapi)

    async def invoke(request: Request) -> Response:
        return JSONResponse({"output": "hello", "metadata": {"run_id": str(uuid.uuid4())}})

    return Starlette(
        routes=[
            Route("/input_schema", input_schema),
            Route("/output_schema", output_schema),
            Route("/openapi.json", spec),
            Route("/invoke", invoke, methods=["POST"]),
        ]
    )


def langgraph() -> Starlette:
    async def ok(_: Request) -> Response:
        return JSONResponse({"ok": True})

    async def info(_: Request) -> Response:
        return JSONResponse({"version": "0.2.60", "flags": {"assistants": True, "crons": True, "langsmith": False}})

    return Starlette(routes=[Route("/ok", ok), Route("/info", info)])


def ai_openapi() -> Starlette:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "Support Agent API", "version": "2.1"},
        "paths": {
            "/agents/{agent_id}/chat": {
                "post": {"operationId": "chatWithAgent", "summary": "Send a message to the agent"}
            },
            "/completions": {"post": {"operationId": "createCompletion", "summary": "Complete a prompt"}},
            "/embeddings": {"post": {"operationId": "createEmbedding"}},
            "/prompts": {"get": {"operationId": "listPrompts"}},
            "/health": {"get": {"operationId": "health"}},
        },
        "components": {"schemas": {"CompletionRequest": {}, "AgentMessage": {}}},
    }

    async def spec(_: Request) -> Response:
        return JSONResponse(doc)

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/openapi.json", spec), Route("/health", health)])


# -- MCP -------------------------------------------------------------------------

MCP_VERSION = "2025-06-18"


@dataclass
class McpState:
    tools: list[str] = field(default_factory=lambda: ["read_file", "search_docs", "run_query"])
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: int = 0


def _mcp_result(state: McpState, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return {
            "protocolVersion": MCP_VERSION if params.get("protocolVersion") == MCP_VERSION else "2024-11-05",
            "capabilities": {"tools": {"listChanged": True}, "resources": {}, "prompts": {}},
            "serverInfo": {"name": "files-mcp", "version": "1.4.0"},
        }
    if method == "tools/list":
        tools = [{"name": t, "description": f"{t} tool", "inputSchema": {"type": "object"}} for t in state.tools]
        if params.get("cursor") == "page2":
            return {"tools": tools[2:]}
        return {"tools": tools[:2], "nextCursor": "page2"} if len(tools) > 2 else {"tools": tools}
    if method == "resources/list":
        return {"resources": [{"uri": "file:///srv/docs/readme.md", "name": "readme", "mimeType": "text/markdown"}]}
    if method == "prompts/list":
        return {"prompts": [{"name": "summarize", "description": "Summarize a document"}]}
    return None


def mcp_streamable(state: McpState) -> Starlette:
    async def endpoint(request: Request) -> Response:
        if request.method == "DELETE":
            state.sessions.pop(request.headers.get("mcp-session-id", ""), None)
            state.deleted += 1
            return Response(status_code=200)
        accept = request.headers.get("accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "Not Acceptable"}}, 406
            )
        msg = json.loads(await request.body())
        method = msg.get("method")
        if method == "initialize":
            sid = uuid.uuid4().hex
            state.sessions[sid] = {"initialized": False}
            result = _mcp_result(state, method, msg.get("params") or {})
            body = f"event: message\ndata: {json.dumps({'jsonrpc': '2.0', 'id': msg['id'], 'result': result})}\n\n"
            return Response(body, media_type="text/event-stream", headers={"Mcp-Session-Id": sid})
        sid = request.headers.get("mcp-session-id")
        if sid not in state.sessions:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32000, "message": "Bad session"}}, 400
            )
        if request.headers.get("mcp-protocol-version") != MCP_VERSION:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32000, "message": "Bad version"}}, 400
            )
        if method == "notifications/initialized":
            state.sessions[sid]["initialized"] = True
            return Response(status_code=202)
        if not state.sessions[sid]["initialized"]:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32002, "message": "Not initialized"}}
            )
        result = _mcp_result(state, method, msg.get("params") or {})
        return JSONResponse({"jsonrpc": "2.0", "id": msg.get("id"), "result": result})

    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST", "DELETE"])])


def mcp_legacy(state: McpState) -> Starlette:
    queues: dict[str, asyncio.Queue[str]] = {}

    async def sse(request: Request) -> Response:
        sid = uuid.uuid4().hex
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues[sid] = queue

        async def stream():  # type: ignore[no-untyped-def]
            yield f"event: endpoint\ndata: /messages/?session_id={sid}\n\n"
            try:
                while True:
                    item = await queue.get()
                    yield f"event: message\ndata: {item}\n\n"
            finally:
                queues.pop(sid, None)

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def messages(request: Request) -> Response:
        queue = queues.get(request.query_params.get("session_id", ""))
        if queue is None:
            return PlainTextResponse("Could not find session", 404)
        msg = json.loads(await request.body())
        if "id" in msg:
            result = _mcp_result(state, msg.get("method", ""), msg.get("params") or {})
            await queue.put(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        return PlainTextResponse("Accepted", 202)

    return Starlette(routes=[Route("/sse", sse), Route("/messages/", messages, methods=["POST"])])


def mcp_raw_tcp(state: McpState):  # type: ignore[no-untyped-def]
    """Newline-delimited JSON-RPC over TCP, like a stdio MCP server behind socat."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    error = {"code": -32700, "message": "Parse error"}
                    writer.write(json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode() + b"\n")
                    await writer.drain()
                    continue
                if "id" not in msg:
                    continue
                result = _mcp_result(state, msg.get("method", ""), msg.get("params") or {})
                writer.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    return handle


# -- A2A and AgentPin --------------------------------------------------------------


def _b64url(n: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()


def jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    nums = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": _b64url(nums.x), "y": _b64url(nums.y), "kid": kid, "use": "sig"}


def canonical(card: dict[str, Any]) -> bytes:
    """Written from the AgentPin description (sorted keys, compact, nulls dropped), not from our code."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(card), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def a2a_card(name: str, skills: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": f"{name} agent",
        "url": "http://agent.internal/a2a",
        "version": "1.0.0",
        "protocolVersion": "0.3.0",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": s, "name": s, "description": s, "tags": []} for s in skills],
        "provider": None,
    }


def a2a_agent() -> Starlette:
    card = a2a_card("Travel Planner", ["book_flight", "find_hotel"])

    async def get_card(_: Request) -> Response:
        return JSONResponse(card)

    return Starlette(routes=[Route("/.well-known/agent-card.json", get_card)])


def agentpin_agent(*, forged: bool = False) -> Starlette:
    published = ec.generate_private_key(ec.SECP256R1())
    signer = ec.generate_private_key(ec.SECP256R1()) if forged else published
    doc = {
        "agentpin_version": "0.1",
        "entity": "acme.internal",
        "entity_type": "maker",
        "public_keys": [jwk(published, "acme-2026-01")],
        "agents": [
            {
                "agent_id": "urn:agentpin:acme.internal:analyst",
                "name": "Analyst",
                "capabilities": ["read:reports"],
                "status": "active",
            }
        ],
        "max_delegation_depth": 2,
        "updated_at": "2026-01-15T00:00:00Z",
    }
    card = a2a_card("Acme Analyst" if not forged else "Acme Analyst (copy)", ["read:reports"])
    signature = signer.sign(canonical(card), ec.ECDSA(hashes.SHA256()))
    card["agentpin"] = {
        "agentpin_endpoint": "http://acme.internal/.well-known/agent-identity.json",
        "public_key_jwk": jwk(signer, "acme-2026-01"),
        "signature": base64.b64encode(signature).decode(),
    }

    async def identity(_: Request) -> Response:
        return JSONResponse(doc)

    async def get_card(_: Request) -> Response:
        return JSONResponse(card)

    return Starlette(
        routes=[Route("/.well-known/agent-identity.json", identity), Route("/.well-known/agent-card.json", get_card)]
    )


# -- decoys --------------------------------------------------------------------------

SPA_INDEX = (
    "<!doctype html><html><head><title>Acme Portal</title></head>"
    '<body><div id="root"></div><script src="/assets/index-4f2a.js"></script></body></html>'
)


def spa() -> Starlette:
    async def anything(_: Request) -> Response:
        return HTMLResponse(SPA_INDEX)

    return Starlette(
        routes=[Route("/{path:path}", anything, methods=["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"])]
    )


def plain_web() -> Starlette:
    async def index(_: Request) -> Response:
        return HTMLResponse(
            "<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>",
            headers={"Server": "nginx/1.27.0"},
        )

    return Starlette(routes=[Route("/", index)])


def git_forge() -> Starlette:
    async def index(_: Request) -> Response:
        return HTMLResponse(
            "<html><head><title>Gitea: Git with a cup of tea</title></head>"
            "<body><a href='/user/login'>Sign In</a></body></html>"
        )

    async def login(_: Request) -> Response:
        return HTMLResponse(
            "<html><head><title>Sign In - Gitea</title></head><body><form method='post'>"
            "<input name='user_name'><input name='password' type='password'></form></body></html>"
        )

    async def version(_: Request) -> Response:
        return JSONResponse({"version": "1.22.3"})

    async def api_404(_: Request) -> Response:
        return JSONResponse({"message": "Not Found", "url": "http://git.internal/api/swagger"}, 404)

    async def swagger(_: Request) -> Response:
        return JSONResponse(
            {
                "swagger": "2.0",
                "info": {"title": "Gitea API", "version": "1.22.3"},
                "paths": {
                    "/repos/{owner}/{repo}/issues": {"get": {"operationId": "issueListIssues"}},
                    "/user/repos": {"get": {"operationId": "userCurrentListRepos"}},
                },
            }
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/user/login", login),
            Route("/api/v1/version", version),
            Route("/swagger.v1.json", swagger),
            Route("/api/{rest:path}", api_404, methods=["GET", "POST"]),
        ]
    )


def dns_admin() -> Starlette:
    async def root(_: Request) -> Response:
        return RedirectResponse("/admin/", 302)

    async def admin(_: Request) -> Response:
        return HTMLResponse(
            "<html><head><title>Pi-hole - dns.internal</title></head><body><form id='loginform'>"
            "<input type='password' id='current-password'></form></body></html>"
        )

    async def api(_: Request) -> Response:
        return JSONResponse(
            {"error": {"key": "unauthorized", "message": "Unauthorized", "hint": None}, "took": 0.0001}, 401
        )

    return Starlette(
        routes=[
            Route("/", root),
            Route("/admin/", admin),
            Route("/api/{rest:path}", api, methods=["GET", "POST", "PUT", "DELETE"]),
        ]
    )


async def banner_service(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"+OK vector-cache ready\r\n")
    await writer.drain()
    try:
        await asyncio.wait_for(reader.read(100), 2)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


# -- all together ------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[str, str]:
    san = x509.DNSName("llm.internal")
    certfile, keyfile = certs.self_signed(directory, "llm.internal", san, valid=dt.timedelta(days=30))
    return str(certfile), str(keyfile)


@dataclass
class Fleet:
    mcp_streamable: McpState
    mcp_legacy: McpState
    specs: list[Spec]


def fleet(directory: Path | None = None) -> Fleet:
    directory = directory or Path(tempfile.mkdtemp(prefix="aw-mocks-"))
    certfile, keyfile = self_signed(directory)
    streamable, legacy = McpState(), McpState()
    p = PREFIX
    specs = [
        Spec(p + "2", 11434, ollama()),
        Spec(p + "3", 8000, vllm()),
        Spec(p + "4", 3000, mcp_streamable(streamable)),
        Spec(p + "5", 3001, mcp_legacy(legacy)),
        Spec(p + "6", 8001, a2a_agent()),
        Spec(p + "7", 8080, agentpin_agent()),
        Spec(p + "8", 8000, langserve()),
        Spec(p + "9", 4000, litellm()),
        Spec(p + "10", 5000, ai_openapi()),
        Spec(p + "11", 8443, llama_cpp(), ssl_certfile=certfile, ssl_keyfile=keyfile),
        Spec(p + "12", 8123, langgraph()),
        Spec(p + "13", 8080, agentpin_agent(forged=True)),
        Spec(p + "14", 3001, raw=mcp_raw_tcp(McpState())),
        Spec(p + "20", 8080, spa()),
        Spec(p + "21", 8000, plain_web()),
        Spec(p + "22", 3000, git_forge()),
        Spec(p + "23", 5000, dns_admin()),
        Spec(p + "24", 6333, raw=banner_service),
    ]
    return Fleet(streamable, legacy, specs)
