"""The paper's classifier: the chat model reads the category list and answers with one letter.

Models rarely answer with the bare letter alone ("**G**", "Answer: G", "G. Creative
Writing", "I'd say Creative Writing", a <think> block first), so `parse_letter` reads
the answer the way a person would; what it cannot read falls back to the local
classifier, and the result says so.
"""

from __future__ import annotations

import asyncio
import re

from .. import taxonomy
from ..backends.base import Backend, BackendError, Message
from .followup import follow_up_source
from .result import Classification

MAX_TOKENS = 24  # a letter, or a letter and the category name; more is chatter we do not need
CLEAN = 1.0  # confidence of a bare-letter answer
EXTRACTED = 0.8  # confidence of a letter dug out of a longer answer

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.S | re.I)
_NOISE = re.compile(r"[*_`#\"'“”‘’«»\[\](){}<>]")
_BARE = re.compile(r"\s*(?:category|letter|answer)?\s*[:\-]?\s*([A-Ha-h])\s*[.)\]:!]?\s*", re.I)
_LABELLED = re.compile(r"\b(?:answer|category|letter|classification|class|label|choice|option)\s*"
                       r"(?:is|would be|:|=|-|–)?\s*(?:category\s+|letter\s+|option\s+)?([A-Ha-h])\b(?!['’\w])", re.I)
_LEADING = re.compile(r"^\s*([A-H])\s*(?:[.):\]]|\s[-–—]|$)")
_STANDALONE = re.compile(r"(?<![\w'’-])([A-H])(?![\w'’])")
# Distinctive pieces of each category name, as a model might write them.
_NAMES = {
    "A": ("well-specified singular", "well specified singular", "well-specified"),
    "B": ("underspecified singular", "under-specified singular", "underspecified"),
    "C": ("random generation",),
    "D": ("problem-solving objective", "problem solving objective"),
    "E": ("problem-solving subjective", "problem solving subjective"),
    "F": ("encyclopedia inquiry", "encyclopedic inquiry", "encyclopedia"),
    "G": ("creative writing",),
    "H": ("advice or opinion", "advice/opinion", "advice and opinion"),
}


def parse_letter(answer: str) -> str | None:
    """The category letter in a model's answer, or None when there is none or it is ambiguous."""
    text = _THINK.sub(" ", answer or "")
    text = _NOISE.sub(" ", text).strip()
    if not text:
        return None
    if m := _BARE.fullmatch(text):
        return m.group(1).upper()
    if m := _LABELLED.search(text):
        return m.group(1).upper()
    if m := _LEADING.match(text):
        return m.group(1)
    lowered = text.lower()
    named = {letter for letter, names in _NAMES.items() if any(n in lowered for n in names)}
    if len(named) == 1:
        return named.pop()
    # Capital letters standing alone; "A" followed by a lower-case word is the article ("A story ...").
    letters = {m.group(1) for m in _STANDALONE.finditer(text)
               if not (m.group(1) == "A" and re.match(r"\s+[a-z]", text[m.end():]))}
    return letters.pop() if len(letters) == 1 else None


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
        confidence = CLEAN if _BARE.fullmatch(_NOISE.sub(" ", answer).strip()) else EXTRACTED
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
