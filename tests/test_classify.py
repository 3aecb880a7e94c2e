"""Classification: parsing messy model answers (against the loopback server), follow-ups,
overrides, and classify_turn's auto/local/llm routing."""

from __future__ import annotations

import pytest

from taskdiv_chat import taxonomy
from taskdiv_chat.backends.openai import OpenAIBackend
from taskdiv_chat.classify import (
    Classification,
    LLMClassifier,
    classify_turn,
    follow_up_source,
    get_local_classifier,
    is_follow_up,
    normalize_letter,
    parse_letter,
)
from taskdiv_chat.config import BackendConfig, ClassifyConfig, Settings
from tests.support.fake_server import Reply


@pytest.fixture(scope="module")
def warm_local():
    """The shared local classifier, loaded once for this module (fallbacks and auto use it)."""
    classifier = get_local_classifier()
    classifier.warm_up().join()
    return classifier


@pytest.fixture
async def backend(fake_server):
    client = OpenAIBackend("fake", BackendConfig(base_url=fake_server.base_url, model="test-model", max_retries=0,
                                                 read_timeout=5, connect_timeout=2))
    yield client
    await client.aclose()


def fake_settings(server, *, trust="llm", capable=None, method="auto") -> Settings:
    return Settings(default_backend="fake", classify=ClassifyConfig(method=method, trust=trust), backends={
        "fake": BackendConfig(base_url=server.base_url, model="test-model", max_retries=0, read_timeout=10,
                              connect_timeout=2, capable=capable)})


# --- parse_letter ------------------------------------------------------------------------------

MESSY_ANSWERS = [  # strict: a bare letter, "Answer: X", or a letter with its own category's name
    ("G", "G"), (" g\n", "G"), ("**G**", "G"), ("G.", "G"), ("(G)", "G"), ("[E]", "E"), ("D)", "D"),
    ("Answer: G", "G"), ("letter: h", "H"), ("The answer is: E", "E"), ("**Answer:** C", "C"),
    ("G. Creative Writing", "G"), ("C - Random Generation", "C"), ("Category: D - Problem-Solving Objective", "D"),
    ("<think>A poem... maybe B? No, it is creative.</think>\nG", "G"), ("'F'", "F"),
    ("A", "A"), ("A. Well-Specified Singular Objective", "A"), ("A Well-Specified Singular Objective", "A"),
]
UNREADABLE = ["", "   ", "I cannot classify this.", "B or C", "None of these", "other",
              "<think>still thinking when the tokens ran out", "Problem-solving (it depends)",
              # a weak server's replies that a lenient reader took for letters
              "A-H\nThe Autumn of the World", "A haiku about autumn", "A. Creative Writing", "G is for Grace",
              "The category is G.", "Option D", "Creative Writing", "I think it is D, a math problem.",
              "A story request falls under G", "It's A", "Sure! The answer is: E", "The prompt asks for advice, so H.",
              "F\n\nExplanation: the prompt asks about history."]


@pytest.mark.parametrize("answer, letter", MESSY_ANSWERS)
def test_parse_letter_reads_messy_answers(answer, letter):
    assert parse_letter(answer) == letter


@pytest.mark.parametrize("answer", UNREADABLE)
def test_parse_letter_gives_up_on_unreadable_or_ambiguous_answers(answer):
    assert parse_letter(answer) is None


# --- the LLM classifier against the loopback server ---------------------------------------------


async def test_llm_classifier_sends_the_papers_prompt_at_temperature_zero(fake_server, backend):
    fake_server.responder = lambda body: Reply("D")
    result = await LLMClassifier(backend).classify("Solve 3x + 7 = 22.")
    assert (result.letter, result.method, result.confidence) == ("D", "llm", 1.0)
    body = fake_server.requests[0]
    assert body["temperature"] == 0
    assert body["messages"] == [{"role": "user", "content": taxonomy.classification_prompt("Solve 3x + 7 = 22.")}]
    assert body["max_tokens"] >= 256  # room for a <think> block before the letter


@pytest.mark.parametrize("answer, letter", [("**H**", "H"), ("G. Creative Writing", "G"),
                                            ("<think>hmm</think> The answer is: C", "C")])
async def test_llm_classifier_parses_messy_answers_over_http(fake_server, backend, answer, letter):
    fake_server.responder = lambda body: Reply(answer)
    result = await LLMClassifier(backend).classify("some prompt")
    assert (result.letter, result.method) == (letter, "llm")
    assert result.confidence < 1.0 or answer.strip("*") == letter


async def test_unreadable_answer_falls_back_to_local_and_says_so(fake_server, backend, warm_local):
    fake_server.responder = lambda body: Reply("I'm not sure, it could be several of these.")
    result = await LLMClassifier(backend, warm_local).classify("Write a haiku about the rain.")
    assert result.method == "llm-fallback-local"
    assert result.letter == warm_local.classify("Write a haiku about the rain.").letter == "G"
    assert "unreadable answer" in result.detail and "not sure" in result.detail


async def test_backend_error_falls_back_to_local(fake_server, backend, warm_local):
    fake_server.responder = lambda body: Reply(fault="401")
    result = await LLMClassifier(backend, warm_local).classify("Flip a coin for me.")
    assert (result.method, result.letter) == ("llm-fallback-local", "C")
    assert "auth" in result.detail


# --- follow-ups ---------------------------------------------------------------------------------

FOLLOW_UPS = ["make it shorter", "another one", "why?", "Why?", "one more please", "again!", "try again",
              "shorter please", "now in French", "can you make it funnier?", "as a haiku", "ok now make it rhyme",
              "translate it into Spanish", "explain that", "are you sure?", "that's wrong", "why is that?",
              "why did you pick 7?", "what about for kids?", "and for dessert?", "do the same for France",
              "in bullet points", "add a twist", "change the ending", "give me another", "a different approach?",
              "is that correct?", "no, I meant the other one", "Thanks! Now make it longer", "show your work",
              "Could you rewrite it in a more formal tone?", "more detail", "keep going"]
NEW_TASKS = ["Write a poem about the sea", "Why is the sky blue?", "Why do you think people dream?",
             "Another question: what's the capital of Peru?", "new topic: recommend a laptop",
             "Translate this sentence into French: The cat is sleeping on the sofa.",
             "Summarize this text: The city council met on Tuesday to discuss parking.",
             "Write a poem in French", "Explain quantum computing", "Explain the causes of the French Revolution.",
             "Continue this story: \"The door creaked open, and inside there was...\"", "Another word for happy",
             "Prove that the square root of 2 is irrational.", "Give me one word that rhymes with light",
             "In Greek mythology, who is the god of the sea?", "hi", "thanks", "ok", "Roll a die",
             "More people live in cities than ever. Why do you think that is happening in Asia and Africa?"]


@pytest.mark.parametrize("text", FOLLOW_UPS)
def test_follow_ups_are_recognised(text):
    assert is_follow_up(text)


@pytest.mark.parametrize("text", NEW_TASKS)
def test_new_tasks_are_not_follow_ups(text):
    assert not is_follow_up(text)


def test_follow_up_source_walks_back_past_earlier_follow_ups():
    context = [{"role": "user", "content": "Write a limerick about a goat"}, {"role": "assistant", "content": "..."},
               {"role": "user", "content": "make it shorter"}, {"role": "assistant", "content": "..."}]
    assert follow_up_source("another one", context) == "Write a limerick about a goat"
    assert follow_up_source("Roll a die", context) is None
    assert follow_up_source("another one", []) is None


async def test_follow_up_inherits_previous_category_without_asking_anyone(fake_server):
    previous = Classification("G", 0.93, "llm")
    result = await classify_turn("make it shorter", settings=fake_settings(fake_server), previous=previous)
    assert (result.letter, result.confidence, result.method) == ("G", 0.93, "inherited")
    assert fake_server.requests == []


async def test_a_new_task_after_a_turn_is_classified_afresh(fake_server):
    fake_server.responder = lambda body: Reply("C")
    result = await classify_turn("Roll a d20 for me.", settings=fake_settings(fake_server, capable=True),
                                 previous=Classification("G", 0.9, "llm"))
    assert (result.letter, result.method) == ("C", "llm")
    assert len(fake_server.requests) == 1


async def test_follow_up_with_only_context_is_classified_by_the_turn_it_continues(warm_local):
    context = [{"role": "user", "content": "Pick a random card from a deck."}, {"role": "assistant", "content": "7♠"}]
    result = await classify_turn("another one", settings=Settings(), context=context)
    assert (result.letter, result.method) == ("C", "local")
    assert "follow-up" in result.detail


# --- overrides ----------------------------------------------------------------------------------


@pytest.mark.parametrize("given, letter", [("G", "G"), ("g", "G"), ("Creative Writing", "G"), ("advice", "H"),
                                           ("other", "other"), (" OTHER ", "other")])
async def test_override_wins_over_everything(fake_server, given, letter):
    result = await classify_turn("make it shorter", settings=fake_settings(fake_server), override=given,
                                 previous=Classification("A", 0.9, "local"))
    assert (result.letter, result.method, result.confidence) == (letter, "override", 1.0)
    assert fake_server.requests == []


async def test_unknown_override_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown category 'Z'"):
        await classify_turn("hi", settings=Settings(), override="Z")


def test_classification_round_trips_through_dict():
    original = Classification("F", 0.71, "llm-fallback-local", "why")
    assert Classification.from_dict(original.to_dict()) == original
    assert original.category.name == "Encyclopedia Inquiry"
    assert Classification("other", 0.5, "local").category is None
    assert normalize_letter("Pick one") == "B" and normalize_letter("nonsense") is None
    with pytest.raises(ValueError):
        Classification.from_dict({"letter": "Q"})


# --- auto / local / llm routing -----------------------------------------------------------------


async def test_auto_never_asks_the_embedded_model(warm_local):
    settings = Settings()  # default backend: the embedded 135M model, not capable
    assert not settings.backend()[1].is_capable
    result = await classify_turn("Write a sonnet about autumn.", settings=settings)
    assert (result.letter, result.method) == ("G", "local")


async def test_auto_with_a_capable_backend_keeps_the_llm_answer_when_trusted(fake_server, warm_local):
    fake_server.responder = lambda body: Reply("H")
    result = await classify_turn("Write a sonnet about autumn.", 
                                 settings=fake_settings(fake_server, trust="llm", capable=True))
    assert (result.letter, result.method) == ("H", "llm")
    assert len(fake_server.requests) == 1


async def test_auto_keeps_the_local_answer_when_trusted_and_notes_the_llm(fake_server, warm_local):
    fake_server.responder = lambda body: Reply("H")
    result = await classify_turn("Write a sonnet about autumn.", 
                                 settings=fake_settings(fake_server, trust="local", capable=True))
    assert (result.letter, result.method) == ("G", "local")
    assert "llm said H" in result.detail


async def test_auto_skips_a_backend_marked_not_capable(fake_server, warm_local):
    result = await classify_turn("Flip a coin.", settings=fake_settings(fake_server, capable=False))
    assert (result.letter, result.method) == ("C", "local")
    assert fake_server.requests == []


async def test_auto_reports_the_local_answer_first_when_the_llm_is_slow(fake_server, warm_local):
    fake_server.responder = lambda body: Reply("G", first_byte_delay=3.0)
    seen: list[Classification] = []
    result = await classify_turn("Write a haiku about snow.", settings=fake_settings(fake_server, capable=True),
                                 on_local=seen.append)
    assert [c.method for c in seen] == ["local"]
    assert (result.letter, result.method) == ("G", "llm")


async def test_llm_method_runs_against_any_backend_named_in_settings(fake_server):
    fake_server.responder = lambda body: Reply("B")
    result = await classify_turn("Name a country in Africa.", settings=fake_settings(fake_server, capable=False),
                                 method="llm")
    assert (result.letter, result.method) == ("B", "llm")


async def test_local_method_never_touches_the_backend(fake_server, warm_local):
    result = await classify_turn("Name a country in Africa.", settings=fake_settings(fake_server), method="local")
    assert result.method == "local"
    assert fake_server.requests == []


async def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown classify method"):
        await classify_turn("hi", settings=Settings(), method="magic")
