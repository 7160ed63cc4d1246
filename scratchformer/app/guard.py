"""What a public server refuses before any of the app's code runs (an ASGI middleware), and the MCP
tool list cut down to the offered tools.

A Space is public: every request is a stranger's until bounded. :class:`Guard` sits in front of
Gradio's routes and

* refuses a request body over ``max_body_bytes`` (413) — the largest honest request, a 2,000-character
  prompt of emoji as JSON, is about 25 KB; without this the HTTP API took a 30 MB body;
* refuses file uploads (403): the app has no upload component, yet Gradio's ``/gradio_api/upload``
  would store a stranger's file and serve it back from the app's address;
* refuses Gradio's deep-link route (404): the app has no deep-link button, and the route would write
  a file to the server's disk for any session a stranger names (and it needs the per-session
  component configs that :func:`~.blocks.light_sessions` leaves out);
* refuses MCP requests whose ``Host`` or ``Origin`` is not the app's own (403): otherwise a web page
  the person visits (or a DNS-rebinding site) could drive a copy of the app running on their laptop
  through its MCP endpoint.

:func:`offered_tools_only` then takes the page's events off the MCP server's table of callable
tools: Gradio hides them from the tool list (``events.page_only``) but would still run one called
by its name.

Settings (environment): ``SCRATCHFORMER_MAX_BODY_KB`` (default 256), ``SCRATCHFORMER_ALLOWED_HOSTS``
(comma-separated host names that may use MCP besides localhost, the server's own name and a Space's
``SPACE_HOST``). Refusals are logged as one line with the path and the reason, never the body.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Iterable
from urllib.parse import urlsplit

log = logging.getLogger("scratchformer.guard")

MAX_BODY_BYTES = int(os.environ.get("SCRATCHFORMER_MAX_BODY_KB", "256")) * 1024
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MCP_PATH = "/gradio_api/mcp"
UPLOAD_PATH = "/gradio_api/upload"
DEEP_LINK_PATH = "/gradio_api/deep_link"
BODY_METHODS = {"POST", "PUT", "PATCH"}


def allowed_hosts() -> set[str]:
    """The host names whose requests may use MCP: loopback, the address the server was told to serve
    on (unless it is 0.0.0.0), a Hugging Face Space's own host ($SPACE_HOST), and
    $SCRATCHFORMER_ALLOWED_HOSTS."""
    hosts = set(LOCAL_HOSTS)
    name = os.environ.get("GRADIO_SERVER_NAME", "")
    if name and name not in ("0.0.0.0", "::"):
        hosts.add(name.lower())
    extra = [os.environ.get("SPACE_HOST", "")] + os.environ.get("SCRATCHFORMER_ALLOWED_HOSTS", "").split(",")
    hosts.update(h.strip().lower() for h in extra if h.strip())
    return hosts


def host_name(value: str) -> str:
    """"example.org:7860" → "example.org", "[::1]:7860" → "::1" (lower case)."""
    try:
        return (urlsplit("//" + value).hostname or "").lower()
    except ValueError:
        return ""


class Guard:
    """ASGI middleware: the refusals of the module docstring, before the app sees the request."""

    def __init__(self, app, max_body_bytes: int = MAX_BODY_BYTES, hosts: Iterable[str] | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.hosts = set(hosts) if hosts is not None else allowed_hosts()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if path.rstrip("/").endswith(UPLOAD_PATH):
            return await self.refuse(send, path, 403, "this app takes no file uploads")
        if path.rstrip("/").endswith(DEEP_LINK_PATH):
            return await self.refuse(send, path, 404, "this app has no deep links")
        if MCP_PATH in path:
            reason = self.foreign(headers)
            if reason:
                return await self.refuse(send, path, 403, reason)
        if scope.get("method") in BODY_METHODS:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                return await self.refuse(send, path, 413, self.too_large())
            receive = await self.read_body(receive)
            if receive is None:
                return await self.refuse(send, path, 413, self.too_large())
        return await self.app(scope, receive, send)

    def foreign(self, headers: dict) -> str:
        """Why an MCP request comes from elsewhere ("" when it does not): its Host, or the Origin of
        the page that sent it, is not one of this app's hosts."""
        host = host_name(headers.get("host", ""))
        if host not in self.hosts:
            return f"MCP answers only requests addressed to {sorted(self.hosts)}; this one was addressed to another host"
        origin = headers.get("origin")
        if origin is not None and host_name(urlsplit(origin).netloc if "//" in origin else "") not in self.hosts:
            return "MCP does not answer requests sent by another site's page"
        return ""

    def too_large(self) -> str:
        return f"a request body may be at most {self.max_body_bytes // 1024} KB"

    async def read_body(self, receive):
        """Read the whole body (it is small) and return a ``receive`` that replays it; None when it
        grows past the limit (a body sent in chunks, with no Content-Length)."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":        # the client left: let the app see that
                first = message
                break
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending = [first]

        async def replay():
            return pending.pop() if pending else await receive()
        return replay

    async def refuse(self, send, path: str, status: int, reason: str) -> None:
        log.warning("refused %s: %s", json.dumps(path[:200]), reason)
        body = json.dumps({"error": reason}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def offered_tools_only(app):
    """A lifespan for Gradio's app: once the MCP server exists, only the offered tools (functions
    that are not page events, :func:`~.events.page_only`) can be called by name."""
    server = getattr(app.get_blocks(), "mcp_server_obj", None)
    if server is not None:
        for name, endpoint in list(server.tool_to_endpoint.items()):
            block_fn = server.get_block_fn_from_endpoint_name(endpoint)
            if block_fn is None or getattr(block_fn.fn, "_mcp_type", "tool") != "tool":
                del server.tool_to_endpoint[name]
    yield
