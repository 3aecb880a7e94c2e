"""What our OpenAI-compatible client costs over a bare httpx loop, and how fast the embedded model is.

    .venv/bin/python benchmarks/client.py [--quick]

Both clients read the same loopback server (tests.support.fake_server, run in its own
process so it does not share the GIL with the clients), in the same run, alternating
request by request. The bare loop is the least a correct client must do: POST, read
SSE lines, json-decode each data line, pick out the text. Targets: median overhead
<= 2 ms on time to first token, <= 5 % on a 5,000-chunk stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

LONG_CHUNKS = 5000
SHORT_ANSWER = "The rain in Spain stays mainly in the plain, as the old song says."


def responder(body: dict):
    from tests.support.fake_server import Reply

    if body["messages"][-1]["content"] == "long":
        return Reply(chunks=[f" w{i}" for i in range(LONG_CHUNKS)])
    return Reply(SHORT_ANSWER)


def serve(port_pipe, stop) -> None:
    """Child process: run the loopback server until told to stop."""
    from tests.support.fake_server import FakeOpenAIServer

    server = FakeOpenAIServer(responder).start()
    port_pipe.send(server.port)
    stop.wait()
    server.stop()


# --- the two clients ---------------------------------------------------------------------------


async def bare_stream(client: httpx.AsyncClient, body: dict) -> tuple[float, float, float, int]:
    """(seconds to first text, seconds to the end, CPU seconds, characters) with nothing but httpx."""
    cpu = time.process_time()
    started = time.perf_counter()
    first = None
    size = 0
    async with client.stream("POST", "chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            choices = json.loads(data).get("choices")
            if choices and (text := choices[0]["delta"].get("content")):
                if first is None:
                    first = time.perf_counter() - started
                size += len(text)
    return first, time.perf_counter() - started, time.process_time() - cpu, size


async def our_stream(backend, messages) -> tuple[float, float, float, int]:
    cpu = time.process_time()
    started = time.perf_counter()
    first = None
    size = 0
    async for chunk in backend.stream(messages):
        if chunk.text:
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk.text)
    return first, time.perf_counter() - started, time.process_time() - cpu, size


async def compare(base_url: str, prompt: str, runs: int) -> tuple[list, list]:
    from taskdiv_chat.backends.openai import OpenAIBackend
    from taskdiv_chat.config import BackendConfig

    messages = [{"role": "user", "content": prompt}]
    backend = OpenAIBackend("bench", BackendConfig(base_url=base_url, model="test-model", max_retries=0))
    body = backend.body(messages, True)  # the very same request for both
    bare, ours = [], []
    async with httpx.AsyncClient(base_url=base_url + "/", timeout=60) as client:
        for _ in range(3):  # warm up connections and code paths
            await bare_stream(client, body)
            await our_stream(backend, messages)
        for i in range(runs):  # alternate which goes first, so drift hits both alike
            pair = [bare_stream(client, body), our_stream(backend, messages)]
            if i % 2:
                ours.append(await pair[1])
                bare.append(await pair[0])
            else:
                bare.append(await pair[0])
                ours.append(await pair[1])
    await backend.aclose()
    assert {size for *_, size in bare} == {size for *_, size in ours}, "the clients read different answers"
    return bare, ours


# --- embedded model ---------------------------------------------------------------------------


async def embedded(loads: int, generations: int, max_tokens: int) -> dict:
    from taskdiv_chat.backends.base import collect
    from taskdiv_chat.backends.local import LocalBackend, default_threads
    from taskdiv_chat.config import Settings

    config = Settings().backends["local"]
    load_times = []
    backend = None
    for _ in range(loads):
        backend = LocalBackend("local", config)
        backend.load()
        load_times.append(backend.load_seconds)
    messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]
    await collect(backend, messages, max_tokens=8, seed=0)  # warm-up
    rates, firsts = [], []
    for seed in range(generations):
        done = await collect(backend, messages, max_tokens=max_tokens, seed=seed, stop=[])
        tokens = done.usage.completion_tokens
        if tokens > 1:
            rates.append((tokens - 1) / (done.total_s - done.first_token_s))
        firsts.append(done.first_token_s)
    return {"load_s": load_times, "tokens_per_s": rates, "first_token_s": firsts,
            "threads": config.threads or default_threads()}


# --- report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    short_runs, long_runs, loads, gens = (20, 3, 1, 1) if args.quick else (200, 31, 3, 3)

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    child = context.Process(target=serve, args=(send, stop), daemon=True)
    child.start()
    base_url = f"http://127.0.0.1:{receive.recv()}/v1"
    started = time.perf_counter()
    try:
        bare, ours = asyncio.run(compare(base_url, "short", short_runs))
        bare_ttft = statistics.median(r[0] for r in bare)
        our_ttft = statistics.median(r[0] for r in ours)
        paired = statistics.median(o[0] - b[0] for b, o in zip(bare, ours))
        print(f"Loopback server, {short_runs} short streams each, alternating ({os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f}):")
        print(f"  time to first token, median: bare httpx {ms(bare_ttft)}, ours {ms(our_ttft)}")
        print(f"  added by our client: {ms(our_ttft - bare_ttft)} (median of paired differences "
              f"{ms(paired)}); target <= 2 ms: {'met' if max(our_ttft - bare_ttft, paired) <= 0.002 else 'NOT met'}")

        bare, ours = asyncio.run(compare(base_url, "long", long_runs))
        bare_total = statistics.median(r[1] for r in bare)
        our_total = statistics.median(r[1] for r in ours)
        ratio = our_total / bare_total
        paired = statistics.median(o[1] / b[1] for b, o in zip(bare, ours))
        cpu = statistics.median(r[2] for r in ours) / statistics.median(r[2] for r in bare)
        print(f"{LONG_CHUNKS:,}-chunk stream, {long_runs} runs each, alternating "
              f"(load average {os.getloadavg()[0]:.2f}):")
        print(f"  full stream, median: bare httpx {ms(bare_total)}, ours {ms(our_total)}; "
              f"ratio {ratio:.3f} (overhead {100 * (ratio - 1):+.1f} %; median of paired ratios {paired:.3f}); "
              f"target <= 5 %: {'met' if max(ratio, paired) <= 1.05 else 'NOT met'}")
        print(f"  per chunk: bare {bare_total / LONG_CHUNKS * 1e6:.1f} us, ours {our_total / LONG_CHUNKS * 1e6:.1f} us; "
              f"client CPU time ratio {cpu:.3f}")
    finally:
        stop.set()
        child.join(10)

    figures = asyncio.run(embedded(loads, gens, max_tokens=64))
    print(f"Embedded model (SmolLM2-135M Q4_1, llama.cpp, {figures['threads']} thread(s)):")
    print(f"  load time, median of {loads}: {statistics.median(figures['load_s']) * 1000:.0f} ms")
    print(f"  generation, median of {gens} x 64 tokens: {statistics.median(figures['tokens_per_s']):.1f} tokens/s "
          f"(first token after {ms(statistics.median(figures['first_token_s']))})")
    print(f"Total benchmark time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
