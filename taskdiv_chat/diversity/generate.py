"""Ask a backend for n more answers with one regeneration strategy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..backends.base import Backend, Completion, Message, collect
from ..taxonomy import Category
from ..tokens import answer_reserve
from .strategies import ICR_STRATEGIES, SYSTEM_STRATEGIES, build_messages, check_strategy, split_k


@dataclass
class GeneratedAnswer:
    text: str
    completion: Completion  # shared by the k answers of one k-at-once call
    trimmed: int  # earlier answers left out of the context for this one
    strategy: str
    note: str = ""
    messages: list[Message] = field(default_factory=list, repr=False)  # what was sent


async def generate_variants(backend: Backend, strategy: str, *, history: list[Message], prompt: str,
                            earlier: list[str], category: Category | None, n: int = 1,
                            on_text: Callable[[int, str], None] | None = None,
                            on_answer: Callable[[int, GeneratedAnswer], None] | None = None,
                            additions: bool = True, layout: str | None = None,
                            **sampling) -> list[GeneratedAnswer]:
    """n new answers to `prompt`, different from `earlier` the way `strategy` asks.

    temperature: n independent requests. icr: n requests in turn, each new answer
    joining the context of the next. system: one request for n answers, split
    (with one follow-up request for any that are missing). max_tokens in
    `sampling` is per answer, so a k-at-once request gets k times as many.
    on_text(index, delta) streams text; for k-at-once the index is that of the
    first answer of the call. on_answer(index, answer) fires as soon as each
    answer is complete (to save it before the next one starts; raising there stops the run).
    additions: our extensions to the paper's prompts (strategies module doc). layout: how an
    in-context regeneration is laid out; default: the backend's own `regen_layout`, else "turns".
    """
    check_strategy(strategy)
    layout = layout or getattr(backend, "regen_layout", "turns")
    window = getattr(backend, "context_window", None)
    reserve = answer_reserve(sampling.get("max_tokens"))
    results: list[GeneratedAnswer] = []

    async def ask(messages: list[Message], index: int, **params) -> Completion:
        callback = (lambda delta: on_text(index, delta)) if on_text else None
        return await collect(backend, messages, on_text=callback, **params)

    if strategy in SYSTEM_STRATEGIES:
        for _ in range(2):  # one follow-up call when the split comes back short
            missing = n - len(results)
            if missing <= 0:
                break
            per_answer = sampling.get("max_tokens")
            params = {**sampling, **({"max_tokens": per_answer * missing} if per_answer else {})}
            built = build_messages(strategy, history=history, prompt=prompt, earlier=earlier, category=category,
                                   k=missing, context_window=window, reserve=reserve * max(1, missing),
                                   additions=additions)
            completion = await ask(built.messages, len(results), **params)
            parts = split_k(completion.text, missing)
            note = built.note
            if len(parts) < missing:
                note = "; ".join(filter(None, [note, f"asked for {missing} answers in one reply, found {len(parts)}"]))
            for part in parts:
                results.append(GeneratedAnswer(part, completion, built.trimmed, strategy, note, built.messages))
                if on_answer:
                    on_answer(len(results) - 1, results[-1])
        return results

    context = list(earlier)
    for i in range(n):
        built = build_messages(strategy, history=history, prompt=prompt, earlier=context, category=category,
                               context_window=window, reserve=reserve, additions=additions, layout=layout)
        completion = await ask(built.messages, i, **sampling)
        text = completion.text.strip()
        results.append(GeneratedAnswer(text, completion, built.trimmed, strategy, built.note, built.messages))
        if on_answer:
            on_answer(i, results[-1])
        if strategy in ICR_STRATEGIES:
            context.append(text)
    return results
