"""Whether a server may classify prompts and judge answer pairs: a short self-check, not blind trust.

A weak server (a small model behind llama.cpp) answers "Write a haiku about autumn."
with a haiku instead of a letter, or cuts a YES/NO off. So before `auto` lets a
server classify or judge, it must answer a few built-in prompts and pairs whose
answers are known, read with the same strict parsers the real work uses. The
result is kept per server and model (a hash of base_url + model) in the cache dir, so the
check runs once. `capable = true/false` in the config overrides it; the embedded
model never classifies or judges.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import BackendConfig, Settings, cache_dir
from .paths import write_private

log = logging.getLogger(__name__)

CHECK_VERSION = 1  # bump when the items change: older cached results are then ignored
CACHE_FILE = "capability.json"

# Prompts whose category no reasonable reader doubts.
CLASSIFY_ITEMS = [
    ("What is the capital of France?", "A"),
    ("Write a haiku about autumn.", "G"),
    ("Flip a coin and tell me whether it landed heads or tails.", "C"),
    ("Solve for x and show your steps: 2x + 3 = 11.", "D"),
]
# (prompt, category, response 1, response 2, equivalent)
JUDGE_ITEMS = [
    ("What is the capital of France?", "A", "The capital of France is Paris.",
     "Paris is France's capital and its largest city.", True),
    ("What is the capital of France?", "A", "The capital of France is Paris.", "The capital of France is Lyon.", False),
    ("Write a haiku about autumn.", "G",
     "Crimson maple leaves\nletting go without a sound\nthe branch holds the sky",
     "My grandfather's rake\nscrapes the same patch of the lawn\nhe is gone; it stays", False),
    ("Flip a coin and tell me whether it landed heads or tails.", "C", "It landed on heads.",
     "Flipping... the coin shows heads!", True),
]
CLASSIFY_PASS = 3  # of 4: one honest slip is allowed, an unreadable reply is not


@dataclass
class Capability:
    classify: bool
    judge: bool
    source: str  # config | embedded | self-check | unchecked
    detail: str

    @property
    def summary(self) -> str:
        """One line for `config check` and the status bar."""
        if self.source == "unchecked":
            return "not checked yet (checked before it first classifies or judges)"
        if self.classify and self.judge:
            state = "capable"
        elif self.classify or self.judge:
            state = f"capable for {'classifying' if self.classify else 'judging'} only"
        else:
            state = "not capable: the local classifier and judge are used"
        return f"{state} ({self.source}: {self.detail})" if self.detail else f"{state} ({self.source})"


def capability_hint(config: BackendConfig) -> str:
    """A few words for the status bar: who classifies and judges for this backend."""
    known = cached(config)
    if known.source == "unchecked":
        return "self-check pending"
    if known.classify and known.judge:
        return "classify+judge: server" + (" (config)" if known.source == "config" else " (self-check passed)")
    if known.classify or known.judge:
        return f"{'classify' if known.classify else 'judge'}: server, {'judge' if known.classify else 'classify'}: local"
    return "classify+judge: local" + (" (config)" if known.source == "config" else " (self-check failed)")


def _key(config: BackendConfig) -> str:
    """A hash of base_url|model: a URL may carry a password (https://user:pass@host), kept off disk."""
    return hashlib.sha256(f"{config.base_url}|{config.model or ''}".encode()).hexdigest()


def declared(config: BackendConfig) -> Capability | None:
    """What the config decides without asking the server: an explicit `capable`, or the embedded model."""
    if config.capable is not None:
        return Capability(config.capable, config.capable, "config", f"capable = {str(config.capable).lower()}")
    if config.kind != "openai":
        return Capability(False, False, "embedded", "the embedded model is too small to classify or judge")
    return None


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached(config: BackendConfig) -> Capability:
    """The capability known without a request: declared, else the cached self-check, else "unchecked"."""
    known = declared(config)
    if known:
        return known
    item = _read_cache().get(_key(config))
    if isinstance(item, dict) and item.get("version") == CHECK_VERSION:
        try:
            return Capability(bool(item["classify"]), bool(item["judge"]), "self-check", str(item["detail"]))
        except KeyError:
            pass
    return Capability(False, False, "unchecked", "")


def _store(config: BackendConfig, result: Capability) -> None:
    data = _read_cache()
    data[_key(config)] = {**asdict(result), "version": CHECK_VERSION, "checked_at": time.time()}
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(data, indent=1))  # atomic, own temp name: two instances never tear it
    except OSError as exc:  # a read-only cache costs a re-check next time, nothing more
        log.warning("cannot save the capability check: %s", exc)


async def self_check(backend) -> Capability:
    """Ask the built-in items; raise BackendError when the server cannot be reached."""
    from . import taxonomy
    from .classify.llm import MAX_TOKENS as CLASSIFY_TOKENS
    from .classify.llm import parse_letter
    from .diversity.judge import JUDGE_MAX_TOKENS, parse_yes_no

    async def ask(content: str, max_tokens: int) -> str:
        completion = await backend.complete([{"role": "user", "content": content}], temperature=0,
                                            max_tokens=max_tokens)
        return completion.text

    classify_replies = await asyncio.gather(*(ask(taxonomy.classification_prompt(p), CLASSIFY_TOKENS)
                                              for p, _ in CLASSIFY_ITEMS))
    judge_replies = await asyncio.gather(*(ask(taxonomy.judge_prompt(p, taxonomy.get(c), a, b), JUDGE_MAX_TOKENS)
                                           for p, c, a, b, _ in JUDGE_ITEMS))
    letters = [parse_letter(r) for r in classify_replies]
    verdicts = [parse_yes_no(r) for r in judge_replies]
    right_letters = sum(got == want for got, (_, want) in zip(letters, CLASSIFY_ITEMS))
    right_verdicts = sum(got == item[-1] for got, item in zip(verdicts, JUDGE_ITEMS))
    can_classify = None not in letters and right_letters >= CLASSIFY_PASS
    can_judge = right_verdicts == len(JUDGE_ITEMS)
    problems = []
    for reply, letter in zip(classify_replies, letters):
        if letter is None:
            problems.append(f"unreadable category reply {_shown(reply)}")
            break
    for reply, verdict in zip(judge_replies, verdicts):
        if verdict is None:
            problems.append(f"unreadable YES/NO reply {_shown(reply)}")
            break
    detail = (f"{right_letters}/{len(CLASSIFY_ITEMS)} categories, {right_verdicts}/{len(JUDGE_ITEMS)} verdicts right"
              + (f"; {'; '.join(problems)}" if problems else ""))
    return Capability(can_classify, can_judge, "self-check", detail)


def _shown(reply: str) -> str:
    from .sanitize import for_display

    text = " ".join(reply.split())
    return repr(for_display(text if len(text) <= 40 else text[:37] + "..."))


_running: dict[tuple[int, str], asyncio.Task] = {}


async def ensure(settings: Settings, name: str | None = None, backend=None) -> Capability:
    """The capability of a backend, running (and caching) the self-check the first time.

    backend: an open backend for that name (else one is made and closed). A server
    that cannot be reached is not capable now, and is checked again next time.
    The check runs as its own task, shielded: a caller cancelled while waiting does not
    cancel it for the others asking at the same time (the classifier and the judge).
    """
    name, config = settings.backend(name)
    known = cached(config)
    if known.source != "unchecked":
        return known
    slot = (id(asyncio.get_running_loop()), _key(config))
    task = _running.get(slot)
    if task is None:
        task = asyncio.create_task(_check(settings, name, config, backend))
        _running[slot] = task
        task.add_done_callback(lambda done: _finished(slot, done))
    return await asyncio.shield(task)


def _finished(slot: tuple[int, str], task: asyncio.Task) -> None:
    del _running[slot]
    if not task.cancelled():
        task.exception()  # retrieved: no "never retrieved" warning when every caller was cancelled


async def _check(settings: Settings, name: str, config: BackendConfig, backend) -> Capability:
    from .backends import make_backend
    from .backends.base import BackendError

    own = backend is None
    backend = backend or make_backend(settings, name)
    try:
        result = await self_check(backend)
    except BackendError as exc:
        return Capability(False, False, "self-check", f"the server failed the check ({exc}); will retry")
    finally:
        if own:
            await backend.aclose()
    _store(config, result)
    log.info("capability of %s: %s", name, result.summary)
    return result
