"""The paper's classifier: the chat model reads the category list and answers with one letter.

The answer is read strictly (a weak server's "A-H\nThe Autumn of the World" is not
the letter A): after any <think> block it must be a bare letter ("G", "**G**",
"(G)"), "Answer: G", or a letter with its own category's name ("G. Creative
Writing"). Anything else falls back to the local classifier, and the result says so.
"""

from __future__ import annotations

import asyncio
import re

from .. import taxonomy
from ..backends.base import Backend, BackendError, Message
from .followup import follow_up_source
from .result import Classification

MAX_TOKENS = 512  # a letter, after a reasoning model's <think> block
CLEAN = 1.0  # confidence of a bare-letter answer
EXTRACTED = 0.8  # confidence of "Answer: G" or a letter with its category name

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_EMPHASIS = re.compile(r"[*_`\"'“”‘’]")
_BARE = re.compile(r"[(\[]?([A-Ha-h])[)\].]?")
_LABELLED = re.compile(r"(?:(?:the\s+)?(?:final\s+)?answer\s+is\s*:?|(?:final\s+)?(?:answer|category|letter)\s*[:=])"
                       r"\s*[(\[]?([A-Ha-h])[)\]]?(?:\s*[.:\-–—)]?\s*(.*))?", re.I | re.S)
_WITH_NAME = re.compile(r"([A-H])\s*(?:[.:)\-–—]\s*|\s)(.+)", re.S)


def _names_category(letter: str, text: str) -> bool:
    """Whether `text` is just the name of category `letter` ("Creative Writing", "(Creative Writing)")."""
    name = taxonomy.get(letter).name
    simple = lambda t: re.sub(r"[^a-z]+", " ", t.lower()).strip()  # noqa: E731
    return bool(simple(text)) and simple(text) == simple(name)


def parse_letter(answer: str) -> str | None:
    """The category letter in a model's answer, or None unless the answer is exactly a letter."""
    text = _THINK.sub(" ", answer or "")
    if re.search(r"(?i)<think>", text):  # cut off while thinking
        return None
    text = _EMPHASIS.sub("", text).strip()
    if m := _BARE.fullmatch(text):
        return m.group(1).upper()
    if m := _LABELLED.fullmatch(text):
        letter, rest = m.group(1).upper(), (m.group(2) or "").strip()
        return letter if not rest or _names_category(letter, rest) else None
    if (m := _WITH_NAME.fullmatch(text)) and _names_category(m.group(1), m.group(2).strip()):
        return m.group(1)
    return None


class LLMClassifier:
    """Classify with any chat backend at temperature 0; unreadable answers fall back to local."""

    def __init__(self, backend: Backend, local=None):
        self.backend = backend
        self._local = local  # a LocalClassifier for the fallback; the shared one when None

    def messages(self, text: str) -> list[Message]:
        return [{"role": "user", "content": taxonomy.classification_prompt(text)}]

    async def classify(self, text: str, context: list[Message] | None = None) -> Classification:
        source = follow_up_source(text, context)
        target = source or text
        try:
            completion = await self.backend.complete(self.messages(target), temperature=0, max_tokens=MAX_TOKENS)
        except BackendError as exc:
            return await self._fallback(text, context, f"{self.backend.name} failed ({exc.kind}: {exc})")
        answer = completion.text.strip()
        letter = parse_letter(answer)
        if letter is None:
            shown = answer if len(answer) <= 60 else answer[:57] + "..."
            return await self._fallback(text, context, f"unreadable answer from {self.backend.name}: {shown!r}")
        confidence = CLEAN if _BARE.fullmatch(_EMPHASIS.sub("", _THINK.sub(" ", answer)).strip()) else EXTRACTED
        detail = f"{self.backend.name} answered {answer[:40]!r}" if confidence < CLEAN else ""
        if source:
            detail = "; ".join(filter(None, ["follow-up: classified the turn it continues", detail]))
        return Classification(letter, confidence, "llm", detail)

    async def _fallback(self, text: str, context: list[Message] | None, why: str) -> Classification:
        if self._local is None:
            from .local import get_local_classifier

            self._local = get_local_classifier()
        local = await asyncio.to_thread(self._local.classify, text, context)
        return Classification(local.letter, local.confidence, "llm-fallback-local",
                              f"{why}; used the local classifier")
