"""generate_variants against the loopback OpenAI-compatible server."""

from __future__ import annotations

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.backends.base import ServerError
from taskdiv_chat.backends.openai import OpenAIBackend
from taskdiv_chat.config import BackendConfig
from taskdiv_chat.diversity.generate import generate_variants
from tests.support.fake_server import Reply

G, D = taxonomy.get("G"), taxonomy.get("D")


@pytest.fixture
def backend(fake_server):
    return OpenAIBackend("fake", BackendConfig(base_url=fake_server.base_url, model="test-model", max_retries=0,
                                               read_timeout=5, connect_timeout=2, context_window=4096))


def _numbered(body: dict) -> Reply:
    """Answer k-at-once requests in the requested format, others with a numbered story."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    if "Response" in system:
        k = int(system.split("Generate ")[1].split()[0]) if system.startswith("Generate") else 3
        return Reply("\n\n".join(f"Response {i}: story {i}" for i in range(1, k + 1)))
    turns = sum(m["role"] == "assistant" for m in body["messages"])
    return Reply(f"story {turns + 1}")


async def test_temperature_sends_n_independent_identical_requests(fake_server, backend):
    fake_server.responder = lambda body: Reply("same answer")
    answers = await generate_variants(backend, "temperature", history=[], prompt="Write a haiku.", earlier=["old"],
                                      category=G, n=3, temperature=0.9)
    assert [a.text for a in answers] == ["same answer"] * 3
    assert len(fake_server.requests) == 3
    assert all(r["messages"] == [{"role": "user", "content": "Write a haiku."}] for r in fake_server.requests)
    assert all(r["temperature"] == 0.9 for r in fake_server.requests)


async def test_icr_feeds_each_new_answer_into_the_next_request(fake_server, backend):
    fake_server.responder = _numbered
    streamed: list[tuple[int, str]] = []
    done: list[int] = []
    answers = await generate_variants(backend, "anchored-icr", history=[], prompt="Write a story.",
                                      earlier=["story 1"], category=G, n=2,
                                      on_text=lambda i, d: streamed.append((i, d)),
                                      on_answer=lambda i, a: done.append(i))
    assert [a.text for a in answers] == ["story 2", "story 3"]
    last = fake_server.requests[-1]["messages"]
    assert [m["content"] for m in last if m["role"] == "assistant"] == ["story 1", "story 2"]
    assert last[-1]["content"].startswith(G.regen_instruction)
    assert {i for i, _ in streamed} == {0, 1} and "".join(d for i, d in streamed if i == 1) == "story 3"
    assert done == [0, 1]
    assert all(a.strategy == "anchored-icr" and a.trimmed == 0 for a in answers)


async def test_system_strategy_asks_once_and_splits(fake_server, backend):
    fake_server.responder = _numbered
    answers = await generate_variants(backend, "general-system", history=[], prompt="Write a story.",
                                      earlier=[], category=G, n=3, max_tokens=50)
    assert [a.text for a in answers] == ["story 1", "story 2", "story 3"]
    assert len(fake_server.requests) == 1
    request = fake_server.requests[0]
    assert request["messages"][0]["content"].startswith("Generate 3 responses that represent diverse values.")
    assert request["max_tokens"] == 150  # per-answer cap times k
    assert answers[0].completion is answers[2].completion


async def test_system_strategy_asks_again_for_missing_answers(fake_server, backend):
    fake_server.responder = [Reply("Response 1: first\n\nResponse 2: second"), Reply("third")]
    answers = await generate_variants(backend, "anchored-system", history=[], prompt="Solve 2x = 4.",
                                      earlier=[], category=D, n=3)
    assert [a.text for a in answers] == ["first", "second", "third"]
    assert D.k_instruction.format(k=1) in fake_server.requests[1]["messages"][0]["content"]


async def test_a_failing_server_raises_with_the_answers_so_far_delivered(fake_server, backend):
    fake_server.responder = [Reply("story 1"), Reply(fault="500")]
    done: list[str] = []
    with pytest.raises(ServerError):
        await generate_variants(backend, "general-icr", history=[], prompt="Write a story.", earlier=[],
                                category=G, n=2, on_answer=lambda i, a: done.append(a.text))
    assert done == ["story 1"]


async def test_tight_context_window_trims_and_reports(fake_server):
    small = OpenAIBackend("fake", BackendConfig(base_url=fake_server.base_url, model="test-model", max_retries=0,
                                                context_window=700))
    fake_server.responder = lambda body: Reply("short")
    earlier = [f"Earlier answer {i}: " + "many words here " * 60 for i in range(4)]
    answers = await generate_variants(small, "general-icr", history=[], prompt="Again?", earlier=earlier,
                                      category=None, n=1, max_tokens=100)
    assert answers[0].trimmed > 0 and "left out" in answers[0].note
    sent = [m["content"] for m in fake_server.requests[0]["messages"] if m["role"] == "assistant"]
    assert sent == earlier[answers[0].trimmed:]


async def test_the_backend_chooses_its_layout_and_the_embedded_one_uses_the_system_turn(fake_server, backend):
    from taskdiv_chat.backends.local import LocalBackend

    assert LocalBackend.regen_layout == "system"
    backend.regen_layout = "system"
    fake_server.responder = _numbered
    await generate_variants(backend, "anchored-icr", history=[], prompt="Write a story.", earlier=["story 1"],
                            category=G, n=1, additions=False)
    assert fake_server.requests[0]["messages"] == [
        {"role": "system", "content": G.regen_instruction}, {"role": "user", "content": "Write a story."},
        {"role": "assistant", "content": "story 1"}, {"role": "user", "content": "Write a story."}]
