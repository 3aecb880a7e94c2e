"""Comparing models: one turn to several loopback servers at once, judged together across them."""

from __future__ import annotations

import contextlib
import json
import re

import pytest

from taskdiv_chat.config import BackendConfig, ConfigError, Settings, load_settings
from taskdiv_chat.conversation import ConversationService, Delta, Failed, NotSent, Started, TurnAdded, VariantSaved
from taskdiv_chat.diversity.crossmodel import overlap
from taskdiv_chat.store import Store
from tests.support.fake_server import FakeOpenAIServer, Reply
from tests.test_llama_server import KEY, llama_server  # noqa: F401  (the real server, a module fixture)

PROMPT = "What is the capital of France?"


def first_word(block: str) -> str:
    return re.sub(r"\W", "", block.split()[0]).lower()


def classify_and_judge(letter: str):
    """The default backend: classifies every prompt as `letter`; judges two answers the same when
    their first word is (so "Paris is..." and "Paris, of course" are one answer, "Lyon" another)."""
    def respond(body: dict):
        last = body["messages"][-1]["content"]
        if last.startswith("Classify the user prompt"):
            return Reply(letter)
        if last.startswith("Decide whether two responses"):
            one, two = re.findall(r"Response \d:\n<<<\n(.*?)\n>>>", last, re.S)
            return Reply("YES" if first_word(one) == first_word(two) else "NO")
        return Reply("unused")
    return respond


@contextlib.contextmanager
def model_servers(*replies: Reply):
    """One loopback server per reply, each serving its own model name."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(FakeOpenAIServer(lambda body, r=reply: r, models=(f"model-{i}",)))
                   for i, reply in enumerate(replies)]
        yield servers


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "chat.db") as s:
        yield s


def settings_for(fake_backend_settings, servers, names) -> Settings:
    fake_backend_settings.classify.method = "llm"
    fake_backend_settings.judge.method = "llm"
    for i, (name, server) in enumerate(zip(names, servers)):
        fake_backend_settings.backends[name] = BackendConfig(base_url=server.base_url, model=f"model-{i}",
                                                             max_retries=0, read_timeout=5, connect_timeout=2)
    return fake_backend_settings


async def run_compare(service, names, n=1, strategy=None):
    events = [e async for e in service.compare_turn(PROMPT, names, n=n, strategy=strategy)]
    ended = sorted((e.index, e.variant.id) for e in events
                   if isinstance(e, (VariantSaved, Failed)) and e.variant is not None)
    ids = [variant_id for _, variant_id in ended]  # comparison order: the report's groups don't depend on timing
    report = await service.measure(events[0].turn_id, ids)
    return events, report


async def test_three_backends_stream_concurrently_group_across_models_and_a_failure_stays_in_place(
        fake_server, fake_backend_settings, store):
    fake_server.responder = classify_and_judge("A")
    names = ["alpha", "beta", "gamma"]
    with model_servers(Reply("Paris is the capital of France.", chunk_delay=0.02),
                       Reply("Paris, of course: it has been the capital for centuries.", chunk_delay=0.02),
                       Reply("Lyon is the one you want to hear about", chunk_delay=0.02, fault="disconnect",
                             fault_after=2)) as servers:
        settings = settings_for(fake_backend_settings, servers, names)
        service = ConversationService(store, settings)
        try:
            events, report = await run_compare(service, names)
        finally:
            await service.aclose()
    assert isinstance(events[0], TurnAdded) and events[0].new_conversation
    started = {e.index: (e.backend, e.model) for e in events if isinstance(e, Started)}
    assert started == {0: ("alpha", "model-0"), 1: ("beta", "model-1"), 2: ("gamma", "model-2")}
    # streams interleave: some backend's text arrives before another backend has finished
    order = [e.index for e in events if isinstance(e, (Delta, VariantSaved))]
    assert any(order[i] != order[i + 1] for i in range(len(order) - 1))
    saved = {e.index: e.variant for e in events if isinstance(e, VariantSaved)}
    failed = [e for e in events if isinstance(e, Failed)]
    assert sorted(saved) == [0, 1] and [f.index for f in failed] == [2]
    assert failed[0].variant.text == "Lyon is" and failed[0].variant.error and failed[0].variant.backend == "gamma"
    # every answer is a stored variant with its backend and model, the failed one too
    turn = store.load_conversation(service.conversation_id).turns[0]
    assert turn.user.category["letter"] == "A"
    assert sorted((v.backend, v.model, v.strategy) for v in turn.variants) == [
        ("alpha", "model-0", "compare"), ("beta", "model-1", "compare"), ("gamma", "model-2", "compare")]
    # the two finished answers say the same thing: one group, both models in it; A wants that
    cross = report.cross_model
    assert report.n == 2 and report.unique == 1
    assert sorted(cross["groups"][0]) == ["alpha (model-0)", "beta (model-1)"]
    assert cross["badge_text"] == "2 models · 1 functionally distinct" and cross["status"] == "good"
    assert (cross["same_pairs"], cross["pairs"]) == (1, 1)
    stored = store.load_conversation(service.conversation_id).turns[0]
    assert any(v.metrics and v.metrics.get("cross_model") == cross for v in stored.variants)


async def test_models_that_disagree_on_a_factual_question_are_the_warning(fake_server, fake_backend_settings, store):
    fake_server.responder = classify_and_judge("A")
    names = ["alpha", "beta", "gamma"]
    with model_servers(Reply("Paris. France has had its capital there since the Middle Ages, with the government "
                             "seated in the city."),
                       Reply("Lyon. Many travellers mistake this silk town on the Rhone for the seat of power, "
                             "so here it is."),
                       Reply("Paris, without any doubt: the national assembly and the president sit in that "
                             "city.")) as servers:
        settings = settings_for(fake_backend_settings, servers, names)
        service = ConversationService(store, settings)
        try:
            events, report = await run_compare(service, names, n=2)
        finally:
            await service.aclose()
    saved = {e.index: e.variant for e in events if isinstance(e, VariantSaved)}
    assert sorted(saved) == list(range(6))  # n=2 answers per backend
    assert [saved[i].backend for i in range(6)] == ["alpha", "alpha", "beta", "beta", "gamma", "gamma"]
    cross = report.cross_model
    assert cross["badge_text"] == "3 models · 2 functionally distinct" and cross["status"] == "warning"
    assert [sorted(set(g)) for g in cross["groups"]] == [["alpha (model-0)", "gamma (model-2)"], ["beta (model-1)"]]
    # 12 pairs of answers from different models; alpha and gamma agree on all 4 of theirs
    assert (cross["same_pairs"], cross["pairs"]) == (4, 12)
    assert overlap([("A", cross), ("G", {"same_pairs": 0, "pairs": 3}), ("A", cross)]) == {
        "A": {"comparisons": 2, "pairs": 24, "same": 8}, "G": {"comparisons": 1, "pairs": 3, "same": 0}}
    assert store.cross_model_results() == [("A", cross)]  # what the homogenization view adds up


async def test_for_a_story_all_models_telling_the_same_one_is_bad(fake_server, fake_backend_settings, store):
    fake_server.responder = classify_and_judge("G")
    names = ["alpha", "beta"]
    with model_servers(Reply("Dragons guarded the hill above the village for a hundred years, until a "
                                         "shepherd girl learned their song and sang them to sleep."),
                       Reply("Dragons, said the old woman, once slept under the hill; a girl who tended sheep "
                             "sang to them each night and they never woke again.")) as servers:
        settings = settings_for(fake_backend_settings, servers, names)
        service = ConversationService(store, settings)
        try:
            _, report = await run_compare(service, names)
        finally:
            await service.aclose()
    assert report.cross_model["badge_text"] == "2 models · 1 functionally distinct"
    assert report.cross_model["status"] == "bad"


async def test_a_backend_that_cannot_start_fails_alone(fake_server, fake_backend_settings, store, monkeypatch):
    fake_server.responder = classify_and_judge("G")
    monkeypatch.delenv("NO_SUCH_KEY_FOR_TESTS", raising=False)
    with model_servers(Reply("A fox story.")) as servers:
        settings = settings_for(fake_backend_settings, servers, ["alpha"])
        settings.backends["refused"] = BackendConfig(base_url="http://127.0.0.1:9/v1", model="x", max_retries=0,
                                                     connect_timeout=1)
        service = ConversationService(store, settings)
        try:
            events = [e async for e in service.compare_turn("Tell me a story", ["alpha", "refused"])]
        finally:
            await service.aclose()
    saved = [e for e in events if isinstance(e, VariantSaved)]
    failed = [e for e in events if isinstance(e, Failed)]
    assert [e.variant.text for e in saved] == ["A fox story."]
    assert [f.index for f in failed] == [1] and re.search(r"connect|refused", failed[0].error, re.I)


async def test_a_strategy_gives_each_backend_its_n_answers_that_way(fake_server, fake_backend_settings, store):
    fake_server.responder = classify_and_judge("G")
    names = ["alpha", "beta"]
    with model_servers(Reply("One story."), Reply("Another story.")) as servers:
        settings = settings_for(fake_backend_settings, servers, names)
        service = ConversationService(store, settings)
        try:
            events, report = await run_compare(service, names, n=2, strategy="temperature")
        finally:
            await service.aclose()
        assert len(servers[0].requests) == 2 and len(servers[1].requests) == 2
    saved = {e.index: e.variant for e in events if isinstance(e, VariantSaved)}
    assert [(saved[i].backend, saved[i].strategy) for i in range(4)] == [
        ("alpha", "temperature"), ("alpha", "temperature"), ("beta", "temperature"), ("beta", "temperature")]
    assert report.n == 4 and sorted(report.cross_model["models"]) == ["alpha (model-0)", "beta (model-1)"]


def test_compare_config_names_backends_defined_under_backends(isolated_dirs):
    path = isolated_dirs / "config" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('[backends.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\nmodel = "m"\n\n'
                    '[compare]\nbackends = ["local", "ollama"]\nn = 2\n', encoding="utf-8")
    settings = load_settings(path)
    assert settings.compare.backends == ["local", "ollama"] and settings.compare.n == 2
    assert Settings().compare.n == 1 and Settings().compare.backends == []
    path.write_text('[compare]\nbackends = ["local", "nope"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config.toml:2: field 'compare.backends'.*'nope'"):
        load_settings(path)


@pytest.mark.slow
async def test_the_embedded_model_and_a_real_llama_cpp_server_compared(llama_server, store, monkeypatch):
    """Two backends we did not script: the embedded SmolLM2 in this process and llama-cpp-python's own
    OpenAI-compatible server running the same weights in another; judged locally, across them."""
    monkeypatch.setenv("LLAMA_SERVER_TEST_KEY", KEY)
    settings = Settings(default_backend="local", backends={
        "server": BackendConfig(base_url=llama_server, model="smollm2-135m", api_key_env="LLAMA_SERVER_TEST_KEY",
                                read_timeout=120)})
    settings.classify.method = "local"
    settings.judge.method = "local"
    service = ConversationService(store, settings)
    try:
        events = [e async for e in service.compare_turn("Name a color.", ["local", "server"], max_tokens=12)]
        ids = [e.variant.id for e in events if isinstance(e, VariantSaved)]
        report = await service.measure(events[0].turn_id, ids)
    finally:
        await service.aclose()
    assert not [e for e in events if isinstance(e, Failed)]
    saved = {e.index: e.variant for e in events if isinstance(e, VariantSaved)}
    assert (saved[0].backend, saved[1].backend, saved[1].model) == ("local", "server", "smollm2-135m")
    assert all(v.text.strip() for v in saved.values())
    cross = report.cross_model
    assert sorted(cross["models"]) == ["local (SmolLM2-135M-Instruct)", "server (smollm2-135m)"]
    assert cross["pairs"] == 1 and cross["badge_text"] in ("2 models · 1 functionally distinct",
                                                           "2 models · 2 functionally distinct")


async def test_a_long_conversation_is_trimmed_to_the_smallest_window_and_a_message_too_long_is_not_sent(
        fake_server, fake_backend_settings, store):
    fake_server.responder = classify_and_judge("G")
    with model_servers(Reply("A story."), Reply("Another story.")) as servers:
        settings = settings_for(fake_backend_settings, servers, ["alpha", "beta"])
        settings.backends["beta"] = settings.backends["beta"].model_copy(update={"context_window": 1200,
                                                                                 "max_tokens": 100})
        service = ConversationService(store, settings)
        try:
            events = [e async for e in service.compare_turn("word " * 1080, ["alpha", "beta"])]
            later = [e async for e in service.compare_turn("And a short one?", ["alpha", "beta"])]
            refused = [e async for e in service.compare_turn("word " * 3000, ["alpha", "beta"])]
        finally:
            await service.aclose()
        sent = servers[1].requests[-1]["messages"]
    assert len([e for e in events if isinstance(e, VariantSaved)]) == 2
    assert later[0].dropped > 0 and sent[-1]["content"] == "And a short one?"
    assert sum(len(m["content"]) for m in sent) < 1200 * 4
    assert isinstance(refused[0], NotSent) and refused[0].backend == "beta" and len(refused) == 1


def test_score_adds_the_cross_model_overlap_when_a_file_holds_several_models(tmp_path, capsys):
    from taskdiv_chat.cli import main

    path = tmp_path / "gens.jsonl"
    rows = [{"id": "nb-1", "prompt": "Name a country in Africa.", "category": "B", "model": "model-x",
             "generations": ["Kenya.", "Ghana."]},
            {"id": "nb-1", "prompt": "Name a country in Africa.", "category": "B", "model": "model-y",
             "generations": ["Kenya.", "Mali."]},
            {"id": "nb-2", "prompt": "Roll a six-sided die.", "category": "C", "model": "model-x",
             "generations": ["You rolled a 4."]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert main(["score", str(path), "--out", str(tmp_path / "scored"), "--judge", "local"]) == 0
    report = (tmp_path / "scored" / "report.md").read_text()
    # nb-1: 4 pairs across the two models, one of them (Kenya, Kenya) the same; nb-2 has one model only
    assert "## Cross-model overlap" in report and "| B Pick one | 1 | 4 | 1 | 25% |" in report
    assert "| C " not in report.split("## Cross-model overlap")[1]
    meta = json.loads((tmp_path / "scored" / "score.json").read_text())
    assert meta["cross_model"] == {"B": {"comparisons": 1, "pairs": 4, "same": 1}}


def test_score_of_one_model_has_no_cross_model_table(tmp_path, capsys):
    from taskdiv_chat.cli import main

    path = tmp_path / "gens.jsonl"
    path.write_text(json.dumps({"id": "nb-1", "prompt": "Name a country in Africa.", "category": "B",
                                "model": "model-x", "generations": ["Kenya.", "Ghana."]}) + "\n", encoding="utf-8")
    assert main(["score", str(path), "--out", str(tmp_path / "scored"), "--judge", "local"]) == 0
    assert "Cross-model" not in (tmp_path / "scored" / "report.md").read_text()
