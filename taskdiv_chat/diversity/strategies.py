"""How each regeneration strategy asks the model for another answer.

temperature      the same request again; randomness does the rest
general-icr      earlier answers stay in the conversation, then "Can you generate a different answer?"
anchored-icr     the same, but the request is the category's own meaning of "different"
general-system   k answers in one call: "Generate {k} responses that represent diverse values."
anchored-system  k answers in one call with the category's k_instruction

`additions` adds our extensions to the paper's prompts (taxonomy.ADDITIONS: the key elements
earlier answers used, D's final-answer line); on by default, as the chat uses them; `bench`
turns them off unless asked. `layout` is how an in-context regeneration is laid out in
messages (LAYOUTS); "turns" is the paper's, others suit small models (see backends/local.py).

When the context window is tight, the oldest earlier answers are left out first
(then the oldest history); BuiltRequest.trimmed and .note say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import taxonomy
from ..backends.base import Message
from ..config import STRATEGIES
from ..taxonomy import Category
from ..tokens import ANSWER_RESERVE, count_messages, trim_to_fit
from .elements import key_elements

ICR_STRATEGIES = ("general-icr", "anchored-icr")
# turns    prompt, answer, request, answer, request ... (the paper's)
# restate  the same, each request preceded by the prompt again
# system   the request as the system prompt; the prompt repeated as each user turn
# single   one user turn: the prompt, the earlier answers numbered, the request
# example  restate, after a one-exchange demonstration (taxonomy.LAYOUT_EXAMPLE)
LAYOUTS = ("turns", "restate", "system", "single", "example")
SYSTEM_STRATEGIES = ("general-system", "anchored-system")
DEFAULT_STRATEGY = "anchored-icr"


@dataclass
class BuiltRequest:
    messages: list[Message]
    trimmed: int = 0  # earlier answers left out to fit the context window
    note: str = ""  # what was adapted, for the UI and the report ("" when nothing)


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    return strategy


def used_key_elements(category: Category | None, earlier: list[str], prompt: str = "") -> dict[str, list[str]]:
    """Key elements the earlier answers already used, per element name, in first-use order.

    Only for categories with key elements (E, G, H); {} otherwise.
    """
    if category is None or not category.key_elements:
        return {}
    used: dict[str, list[str]] = {name: [] for name in category.key_elements}
    for answer in earlier:
        for name, values in key_elements(category.letter, answer, prompt).items():
            for value in values:
                if name in used and value and value not in used[name]:
                    used[name].append(value)
    return {name: values for name, values in used.items() if values}


def regen_turn(strategy: str, category: Category | None, used: dict[str, list[str]] | None = None,
               additions: bool = True) -> str:
    """The user turn that asks for another answer."""
    if strategy == "anchored-icr" and category is not None:
        return taxonomy.anchored_regen_prompt(category, used, additions)
    return taxonomy.GENERAL_REGEN_PROMPT


def _icr_messages(layout: str, prompt: str, kept: list[str], plain: str, last: str) -> list[Message]:
    """The prompt, the earlier answers and the requests for another one, laid out as `layout` says."""
    if layout == "single":
        listed = "\n\n".join(f"{i}. {answer}" for i, answer in enumerate(kept, 1))
        return [{"role": "user", "content": taxonomy.SINGLE_TURN_LAYOUT.format(prompt=prompt, answers=listed,
                                                                                request=last)}]
    turns: list[Message] = [{"role": "user", "content": prompt}]
    for i, answer in enumerate(kept):
        request = last if i == len(kept) - 1 else plain
        if layout == "system":
            request = prompt
        elif layout in ("restate", "example"):
            request = f"{prompt}\n\n{request}"
        turns += [{"role": "assistant", "content": answer}, {"role": "user", "content": request}]
    if layout == "system":
        return [{"role": "system", "content": last}, *turns]
    if layout == "example":
        return [*taxonomy.layout_example(), *turns]
    return turns


def build_messages(strategy: str, *, history: list[Message], prompt: str, earlier: list[str],
                   category: Category | None, k: int = 1, context_window: int | None = None,
                   reserve: int = ANSWER_RESERVE, additions: bool = True, layout: str = "turns") -> BuiltRequest:
    """The messages that ask for the next answer (icr/temperature) or for k answers at once (system).

    history: the conversation before this prompt; earlier: answers already given to it.
    """
    check_strategy(strategy)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    notes: list[str] = []
    if category is None and strategy.startswith("anchored"):
        notes.append("no task category: plain (general) regeneration")
    if strategy in SYSTEM_STRATEGIES:
        anchored = category if strategy == "anchored-system" else None
        system: Message = {"role": "system", "content": taxonomy.k_system_prompt(max(1, k), anchored, additions)}
        messages = [system, *history, {"role": "user", "content": prompt}]
        return _fit(messages, 0, context_window, reserve, notes)
    if strategy == "temperature" or not earlier:
        return _fit([*history, {"role": "user", "content": prompt}], 0, context_window, reserve, notes)

    # In-context regeneration: every earlier answer, each followed by the request for another one.
    used = used_key_elements(category, earlier, prompt) if strategy == "anchored-icr" and additions else None
    plain = regen_turn(strategy, category, None, additions)
    last = regen_turn(strategy, category, used, additions)
    kept = list(earlier)
    trimmed = 0
    while True:
        laid = _icr_messages(layout, prompt, kept, plain, last)
        system = [m for m in laid if m["role"] == "system"]  # a system prompt stays first
        messages = [*system, *history, *(m for m in laid if m["role"] != "system")]
        if context_window is None or len(kept) <= 1 or count_messages(messages) <= context_window - reserve:
            break
        kept.pop(0)  # oldest earlier answer first
        trimmed += 1
    if trimmed:
        notes.append(f"{trimmed} earlier answer{'s' if trimmed > 1 else ''} left out to fit the "
                     f"{context_window}-token context")
    return _fit(messages, trimmed, context_window, reserve, notes)


def _fit(messages: list[Message], trimmed: int, window: int | None, reserve: int, notes: list[str]) -> BuiltRequest:
    """Drop the oldest history when even the kept answers do not fit."""
    if window is not None:
        messages, dropped = trim_to_fit(messages, window, reserve)
        if dropped:
            notes.append(f"{dropped} older message{'s' if dropped > 1 else ''} of the conversation left out")
    return BuiltRequest(messages=messages, trimmed=trimmed, note="; ".join(notes))


# --- splitting a k-at-once reply --------------------------------------------------------------

_HEADER = re.compile(
    r"(?im)^[ \t]*(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*(?:response|answer|option|solution|version|variant|idea|"
    r"story|poem|joke|take|approach|suggestion|perspective|draw|result)[ \t]*#?[ \t]*(\d+)[ \t]*(?:\*\*|__)?[ \t]*"
    r"[:.)\-–—]?[ \t]*(?:\*\*|__)?"
)
_NUMBERED = re.compile(r"(?m)^[ \t]*(?:\*\*)?(\d+)[.)][ \t]+")
_SEPARATOR = re.compile(r"(?m)^[ \t]*(?:-{3,}|\*{3,}|_{3,}|={3,})[ \t]*$")


def _split_at(text: str, matches: list[re.Match]) -> list[str]:
    parts = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        parts.append(text[match.end():end])
    return parts


def _sequential(matches: list[re.Match]) -> list[re.Match]:
    """The longest run of headers numbered 1, 2, 3, ... (ignoring numbers nested inside answers)."""
    run: list[re.Match] = []
    for match in matches:
        if int(match.group(1)) == len(run) + 1:
            run.append(match)
    return run


def _clean(parts: list[str]) -> list[str]:
    out = []
    for part in parts:
        part = _SEPARATOR.sub("", part).strip()
        part = re.sub(r"^(?:\*\*|__)\s*|\s*(?:\*\*|__)$", "", part).strip()
        if re.search(r"\w", part):
            out.append(part)
    return out


def split_k(text: str, k: int) -> list[str]:
    """Split a k-at-once reply into at most k answers.

    Tries, in order: "Response N:" style headers, a numbered list 1..k,
    separator lines (---), then paragraphs (a lead-in ending with ":" is dropped;
    extra paragraphs are merged so k remain). Returns fewer than k when the
    reply holds fewer.
    """
    text = text.strip()
    if not text or k < 1:
        return []
    if k == 1:
        header = _HEADER.match(text)
        return _clean([text[header.end():] if header else text])
    for pattern in (_HEADER, _NUMBERED):
        run = _sequential(list(pattern.finditer(text)))
        if len(run) >= 2:
            parts = _clean(_split_at(text, run))
            return parts[:k]
    pieces = _clean(_SEPARATOR.split(text))
    if len(pieces) < 2:
        pieces = _clean(re.split(r"\n[ \t]*\n", text))
    if len(pieces) > 1 and _lead_in(pieces[0], len(pieces) > k):
        pieces = pieces[1:]  # "Here are three answers:"
    if len(pieces) <= k:
        return pieces
    return _merge(pieces, k)


def _lead_in(piece: str, surplus: bool) -> bool:
    """A short introduction ending in ":" ("Here are 3 responses:"), not an answer of its own."""
    if not piece.rstrip().endswith(":") or len(piece.split()) > 20:
        return False
    return surplus or bool(re.search(r"(?i)\b(?:here|responses?|answers?|options?|solutions?|ideas?|following)\b", piece))


def _merge(pieces: list[str], k: int) -> list[str]:
    """Join consecutive pieces into k groups of similar length."""
    total = sum(len(p) for p in pieces)
    groups: list[list[str]] = [[]]
    done = 0
    for i, piece in enumerate(pieces):
        left_groups = k - len(groups)
        left_pieces = len(pieces) - i
        if groups[-1] and left_groups > 0 and (done >= total * len(groups) / k or left_pieces <= left_groups):
            groups.append([])
        groups[-1].append(piece)
        done += len(piece)
    return ["\n\n".join(g) for g in groups]


# --- does an answer talk about the request instead of doing the task? --------------------------


def _trigrams(text: str) -> set[tuple[str, str, str]]:
    from .text import STOPWORDS, words

    w = words(text)
    return {g for g in zip(w, w[1:], w[2:]) if any(x not in STOPWORDS for x in g)}


def echoes_request(answer: str, request: str, prompt: str) -> bool:
    """True when the answer repeats three words in a row of the regeneration request that the
    prompt does not contain ("I'll generate a new piece ...", "This question has one correct ...");
    the failure of small models that answer the instruction rather than the task."""
    return bool((_trigrams(answer) & _trigrams(request)) - _trigrams(prompt))
