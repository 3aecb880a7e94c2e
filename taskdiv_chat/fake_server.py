"""A scripted OpenAI-compatible HTTP server on loopback, for tests, benchmarks and demos.

It speaks real HTTP/1.1 over a real socket (keep-alive, chunked SSE), so the
client is exercised exactly as against vLLM or Ollama, and it can misbehave
on purpose: slow first byte, disconnect mid-stream, 429 with Retry-After,
500, 401, unknown model, a malformed JSON chunk, a stream that never ends.

    with FakeOpenAIServer(lambda body: Reply("Hi there")) as server:
        client = OpenAIBackend("fake", BackendConfig(base_url=server.base_url, model="test-model"))
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

FAULTS = ("disconnect", "429", "500", "401", "unknown-model", "malformed", "never-end")


@dataclass
class Reply:
    text: str = "Hello from the loopback server."
    chunks: list[str] | None = None  # explicit pieces; default: word by word
    chunk_delay: float = 0.0  # seconds between pieces
    first_byte_delay: float = 0.0  # before the response headers
    fault: str | None = None  # one of FAULTS
    fault_after: int = 2  # pieces sent before disconnect/malformed/never-end
    retry_after: float | None = None  # with 429/500
    usage: bool = True  # send a usage chunk at the end when asked
    split_events: bool = False  # cut each SSE event in two writes, mid-JSON
    finish_reason: str = "stop"

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


Responder = Callable[[dict], "Reply | str"]


def _default_responder(body: dict) -> Reply:
    last = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    return Reply(f"You said: {last}")


@dataclass
class FakeOpenAIServer:
    responder: Responder | list = field(default=_default_responder)
    models: tuple[str, ...] = ("test-model",)
    api_key: str | None = None  # require "Authorization: Bearer <key>" when set
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.requests: list[dict] = []  # every chat request body received
        self.headers: list[dict] = []  # their headers (lower-cased names)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        if isinstance(self.responder, list):  # a list of replies is served in order
            queue = list(self.responder)
            self.responder = lambda body: queue.pop(0) if queue else Reply()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "FakeOpenAIServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            # Drop connections still hanging (never-end streams) so the loop can close.
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- HTTP -------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: several requests per connection
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body_bytes = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                keep_open = await self._route(method, path, headers, body_bytes, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _send_json(self, writer, status: int, payload: dict, extra: dict | None = None) -> bool:
        body = json.dumps(payload).encode()
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 400: "Bad Request"}.get(status, "Error")
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        return True

    @staticmethod
    def _error(message: str, type_: str, code: str | None = None) -> dict:
        return {"error": {"message": message, "type": type_, "code": code}}

    async def _route(self, method: str, path: str, headers: dict, raw: bytes, writer) -> bool:
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._send_json(writer, 401, self._error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return await self._send_json(writer, 200, {"object": "list", "data": data})
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return await self._send_json(writer, 404, self._error(f"no route {method} {path}", "not_found"))
        body = json.loads(raw or b"{}")
        self.requests.append(body)
        self.headers.append(headers)
        reply = self.responder(body)
        if isinstance(reply, str):
            reply = Reply(reply)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        retry = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else {}
        if reply.fault == "401":
            return await self._send_json(writer, 401, self._error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if reply.fault == "429":
            return await self._send_json(writer, 429, self._error("Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"), retry)
        if reply.fault == "500":
            return await self._send_json(writer, 500, self._error("The server had an error.", "server_error"), retry)
        if reply.fault == "unknown-model" or body.get("model") not in self.models:
            return await self._send_json(writer, 404, self._error(
                f"The model `{body.get('model')}` does not exist.", "invalid_request_error", "model_not_found"))
        if body.get("stream"):
            return await self._stream(body, reply, writer)
        text = reply.text if reply.chunks is None else "".join(reply.chunks)
        payload = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": _count(body), "completion_tokens": len(reply.pieces()),
                      "total_tokens": _count(body) + len(reply.pieces())},
        }
        return await self._send_json(writer, 200, payload)

    async def _stream(self, body: dict, reply: Reply, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

        async def send(data: bytes) -> None:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        async def event(payload: str) -> None:
            data = f"data: {payload}\n\n".encode()
            if reply.split_events and len(data) > 8:
                await send(data[: len(data) // 2])
                await send(data[len(data) // 2:])
            else:
                await send(data)

        def chunk(delta: dict, finish: str | None = None) -> str:
            return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                               "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        await send(b": keep-alive\n\n")  # servers send comments; clients must skip them
        await event(chunk({"role": "assistant", "content": ""}))
        pieces = reply.pieces()
        for i, piece in enumerate(pieces):
            if reply.fault and i == reply.fault_after:
                if reply.fault == "disconnect":
                    writer.transport.abort()
                    return False
                if reply.fault == "malformed":
                    await event('{"choices": [{"delta": {"content": "oops"')
                    break
                if reply.fault == "never-end":
                    await asyncio.sleep(3600)
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await event(chunk({"content": piece}))
        if reply.fault == "never-end":
            await asyncio.sleep(3600)
        await event(chunk({}, reply.finish_reason))
        if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": _count(body), "completion_tokens": len(pieces),
                     "total_tokens": _count(body) + len(pieces)}
            await event(json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                    "model": body["model"], "choices": [], "usage": usage}))
        await event("[DONE]")
        await send(b"")  # end of chunked body
        return True


def _count(body: dict) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
