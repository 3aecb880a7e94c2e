"""A scripted OpenAI-compatible HTTP server on loopback, for tests, benchmarks and demos.

It speaks real HTTP/1.1 over a real socket (keep-alive, chunked SSE), so the
client is exercised exactly as against vLLM or Ollama, and it can misbehave
on purpose: slow first byte, disconnect mid-stream, 429 with Retry-After,
500, 401, unknown model, a malformed JSON chunk, an error event mid-stream,
a stream that never ends, or any status with any error body; and hostile ones:
content that is not text (a number, a list, NaN), a lone surrogate, JSON nested
50,000 deep, a stream trickled one byte at a time, an endless stream, a huge
answer, an event that never ends, a 401 that echoes the API key.
It also notices when a client hangs up mid-stream (`client_disconnects`).

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

# A complete chunk whose delta.content is not text, or JSON no client should try to build.
_CONTENT_CHUNK = '{"choices": [{"index": 0, "delta": {"content": %s}, "finish_reason": null}]}'
BAD_EVENTS = {
    "content-number": _CONTENT_CHUNK % "42",
    "content-list": _CONTENT_CHUNK % '["a", "b"]',
    "content-nan": _CONTENT_CHUNK % "NaN",
    "content-object": _CONTENT_CHUNK % '{"text": "hi"}',
    "surrogate": _CONTENT_CHUNK % '"bad \\ud800 half"',
    "deep-json": "[" * 50_000 + "]" * 50_000,
    "finish-number": '{"choices": [{"index": 0, "delta": {}, "finish_reason": 7}]}',
}
FAULTS = ("disconnect", "429", "500", "401", "401-echo", "unknown-model", "malformed", "error-event", "never-end",
          "trickle", "endless", "huge", "endless-event", *BAD_EVENTS)


class _ClientGone(Exception):
    """The client closed the connection while we were streaming."""


@dataclass
class Reply:
    text: str = "Hello from the loopback server."
    chunks: list[str] | None = None  # explicit pieces; default: word by word
    chunk_delay: float = 0.0  # seconds between pieces
    first_byte_delay: float = 0.0  # before the response headers
    fault: str | None = None  # one of FAULTS
    fault_after: int = 2  # pieces sent before disconnect/malformed/error-event/never-end/BAD_EVENTS
    # trickle: the whole stream one byte per chunk_delay; endless: the pieces over and over, never a finish;
    # huge: huge_chars of text in 64 KiB pieces; endless-event: one data line that never ends
    huge_chars: int = 50_000_000
    retry_after: float | None = None  # with 429/500
    usage: bool = True  # send a usage chunk at the end when asked
    split_events: bool = False  # cut each SSE event in two writes (a few ms apart), mid-JSON
    keepalives: bool = False  # a ": keep-alive" comment before every event, as proxies send
    line_end: str = "\n"  # "\r\n" like some servers
    finish_reason: str = "stop"
    error: tuple[int, dict | str] | None = None  # answer with this status and body instead

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
    reject_stream_options: bool = False  # answer 400 to `stream_options`, like some older servers
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port

    def __post_init__(self) -> None:
        self.requests: list[dict] = []  # every chat request body received, refused ones too
        self.headers: list[dict] = []  # their headers (lower-cased names)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self.client_disconnects = 0  # streams the client hung up on before the end
        self._disconnected = threading.Condition()

    # --- lifecycle --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "FakeOpenAIServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            # Drop connections still hanging (never-end streams) so the loop can close.
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
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

    def wait_for_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until the client has hung up on `count` streams (True) or timeout (False)."""
        with self._disconnected:
            return self._disconnected.wait_for(lambda: self.client_disconnects >= count, timeout)

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
                keep_open = await self._route(method, path, headers, body_bytes, reader, writer)
                if not keep_open:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _send_json(self, writer, status: int, payload: dict | str, extra: dict | None = None) -> bool:
        body = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
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

    async def _route(self, method: str, path: str, headers: dict, raw: bytes, reader, writer) -> bool:
        is_chat = method == "POST" and path.rstrip("/").endswith("/chat/completions")
        if is_chat:  # recorded even when refused below, so tests can count every attempt
            body = json.loads(raw or b"{}")
            self.requests.append(body)
            self.headers.append(headers)
        if self.api_key and headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._send_json(writer, 401, self._error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if method == "GET" and path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return await self._send_json(writer, 200, {"object": "list", "data": data})
        if not is_chat:
            return await self._send_json(writer, 404, self._error(f"no route {method} {path}", "not_found"))
        if isinstance(self.responder, list):  # a list of replies is served in order, then defaults
            reply = self.responder.pop(0) if self.responder else Reply()
        else:
            reply = self.responder(body)
        if isinstance(reply, str):
            reply = Reply(reply)
        if reply.first_byte_delay:
            await asyncio.sleep(reply.first_byte_delay)
        retry = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
        if reply.error is not None:
            status, payload = reply.error
            return await self._send_json(writer, status, payload, retry)
        if self.reject_stream_options and "stream_options" in body:
            return await self._send_json(writer, 400, self._error(
                "Unrecognized request argument supplied: stream_options", "invalid_request_error"))
        if reply.fault == "401":
            return await self._send_json(writer, 401, self._error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if reply.fault == "401-echo":  # a careless server: the key comes back in the error body
            return await self._send_json(writer, 401, self._error(
                f"Incorrect API key provided: {headers.get('authorization', '')}", "invalid_request_error"))
        if reply.fault == "429":
            return await self._send_json(writer, 429, self._error("Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"), retry)
        if reply.fault == "500":
            return await self._send_json(writer, 500, self._error("The server had an error.", "server_error"), retry)
        if reply.fault == "unknown-model" or body.get("model") not in self.models:
            return await self._send_json(writer, 404, self._error(
                f"The model `{body.get('model')}` does not exist.", "invalid_request_error", "model_not_found"))
        if body.get("stream"):
            try:
                return await self._stream(body, reply, reader, writer)
            except (_ClientGone, ConnectionError):
                with self._disconnected:
                    self.client_disconnects += 1
                    self._disconnected.notify_all()
                return False
        text = reply.text if reply.chunks is None else "".join(reply.chunks)
        payload = {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": _count(body), "completion_tokens": len(reply.pieces()),
                      "total_tokens": _count(body) + len(reply.pieces())},
        }
        return await self._send_json(writer, 200, payload)

    async def _stream(self, body: dict, reply: Reply, reader, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        # httpx never pipelines, so the only thing the reader can see now is the hang-up.
        hangup = asyncio.ensure_future(reader.read(1))
        end = reply.line_end

        async def pause(seconds: float) -> None:
            await asyncio.wait([hangup], timeout=seconds)
            if hangup.done():
                raise _ClientGone

        async def send(data: bytes) -> None:
            if reply.fault == "trickle":
                for i in range(len(data)):
                    await pause(reply.chunk_delay)
                    await send_frame(data[i:i + 1])
            else:
                await send_frame(data)

        async def send_frame(data: bytes) -> None:
            if hangup.done():
                raise _ClientGone
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()

        async def event(payload: str) -> None:
            if reply.keepalives:
                await send(f": keep-alive{end}{end}".encode())
            data = f"data: {payload}{end}{end}".encode()
            if reply.split_events and len(data) > 8:
                await send(data[: len(data) // 2])
                await pause(0.003)  # so the halves reach the client in separate reads
                await send(data[len(data) // 2:])
            else:
                await send(data)

        def chunk(delta: dict, finish: str | None = None) -> str:
            # Raw UTF-8 like vLLM and llama.cpp (U+2028 and U+0085 included), not \\u escapes.
            return json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                               "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                              ensure_ascii=False)

        async def misbehave() -> bool:
            """Act out the fault; False when the stream must end here."""
            if reply.fault == "disconnect":
                writer.transport.abort()
                return False
            if reply.fault == "malformed":
                await event('{"choices": [{"delta": {"content": "oops"')
            elif reply.fault == "error-event":
                await event(json.dumps({"error": {"message": "The model crashed.", "type": "server_error"}}))
            elif reply.fault == "never-end":
                await pause(3600)
            elif reply.fault in BAD_EVENTS:
                await event(BAD_EVENTS[reply.fault])
            elif reply.fault == "endless":
                while True:  # ends when the client hangs up (send raises _ClientGone)
                    for piece in reply.pieces() or ["more"]:
                        await pause(reply.chunk_delay)
                        await event(chunk({"content": piece}))
            elif reply.fault == "huge":
                piece = "x" * 65535 + " "
                for _ in range(reply.huge_chars // len(piece)):
                    await event(chunk({"content": piece}))
                    await pause(0)
            elif reply.fault == "endless-event":
                await send(b'data: {"choices": [{"delta": {"content": "')
                while True:
                    await send(b"y" * 65536)
                    await pause(0)
            return True

        try:
            await send(f": keep-alive{end}{end}".encode())  # servers send comments; clients must skip them
            await event(chunk({"role": "assistant", "content": ""}))
            pieces = reply.pieces()
            faulted = False
            for i, piece in enumerate(pieces):
                if reply.fault and i == reply.fault_after:
                    faulted = True
                    if not await misbehave():
                        return False
                if reply.chunk_delay and reply.fault != "trickle":
                    await pause(reply.chunk_delay)
                await event(chunk({"content": piece}))
            if reply.fault and not faulted and not await misbehave():
                return False
            await event(chunk({}, reply.finish_reason))
            if reply.usage and (body.get("stream_options") or {}).get("include_usage"):
                usage = {"prompt_tokens": _count(body), "completion_tokens": len(pieces),
                         "total_tokens": _count(body) + len(pieces)}
                await event(json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                        "model": body["model"], "choices": [], "usage": usage}))
            await event("[DONE]")
            await send(b"")  # end of chunked body
            return True
        finally:
            hangup.cancel()
            await asyncio.wait([hangup])  # let go of the reader before the next request reads it
            if not hangup.cancelled():
                hangup.exception()  # retrieved, so asyncio does not log it


def _count(body: dict) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
