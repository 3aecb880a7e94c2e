"""Judges of functional equivalence: are two answers to a prompt "the same" for its task?

llm    the paper's protocol: the model answers YES/NO at temperature 0 to
       taxonomy.judge_prompt (with the category's definition); pairs run
       concurrently up to a limit; verdicts are cached by content hash. A reply
       that is not a clear YES/NO is "unknown", never "different".
local  offline and category-aware. It first extracts what the category compares
       (core_text: A, B, C the answer or outcome, normalised; D the method; E, H
       the core recommendation; F the emphasis; G the whole piece), decides what
       rules can (different final answers, quantities after unit conversion,
       different outcomes, one answer swapped into the same template, a known
       epithet, disjoint strategies, opposite stances), and leaves the rest to a
       logistic model per category group over embeddings that discount the
       prompt's own contribution (for E-H also each point matched with the other
       answer's closest point, and what follows an opening both answers share), fitted on data/judge_calibration.jsonl and
       data/judge_hard_pairs.jsonl by `python -m taskdiv_chat.diversity.calibrate`.
auto   llm when the backend is capable (declared in the config, or it passed
       the cached capability self-check), else local.

Both judges call identical or near-identical answers equivalent without asking.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from ..config import METHODS as JUDGE_METHODS
from ..config import Settings, cache_dir
from ..taxonomy import Category, judge_prompt
from . import answers as _answers
from .features import (ALIGN_LETTERS, DISTINCT_LETTERS, Embedder, aligned_units, distinctive_texts, pair_features,
                       unshared_texts)
from .text import FILLER, NUMBER_WORDS, STOPWORDS, normalize_answer, plain, sentences, stem, words

MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_model.json"
SHORT_ANSWER_WORDS = 5
JUDGE_MAX_TOKENS = 1024  # a YES/NO after a reasoning model's <think> block (the paper's answer length)

# Used only when data/judge_model.json is missing (same shape as the fitted file).
_FALLBACK_MODEL = {"features": ["cos", "resid", "core"], "weights": [3.0, 3.0, 3.0], "bias": -5.0}


@dataclass
class Verdict:
    equivalent: bool | None  # None: the judge's reply was unreadable (the pair is left out of the grouping)
    reason: str  # why, in a few words ("final answers differ: 4 vs 5")


def short_answer_rule(a: str, b: str) -> bool | None:
    """NoveltyBench's shortcut: when both answers have at most 5 words, they are
    equivalent iff 2 x (shared unigrams) >= the longer answer's length. None otherwise."""
    wa, wb = words(a), words(b)
    if not wa or not wb or len(wa) > SHORT_ANSWER_WORDS or len(wb) > SHORT_ANSWER_WORDS:
        return None
    return 2 * len(set(wa) & set(wb)) >= max(len(wa), len(wb))


def _letter(category: Category | str | None) -> str | None:
    if category is None or isinstance(category, str):
        return category.upper() if category and len(category) == 1 else None
    return category.letter


_NEGATIONS = frozenset("not no never nor cannot none neither nothing nobody without yes".split()) | {
    w for w in STOPWORDS if w.endswith("n't")}
_HARMLESS = (STOPWORDS | FILLER) - _NEGATIONS - set(NUMBER_WORDS)


def near_identical(a: str, b: str) -> bool:
    """Identical text up to case, spacing, punctuation and Markdown, or a couple of harmless words
    apart (an article, a filler word, a spelling variant): always equivalent, nobody asked."""
    wa, wb = words(a), words(b)
    if wa == wb:
        return bool(wa) or a.strip() == b.strip()
    longer = max(len(wa), len(wb))
    if longer < 8 or abs(len(wa) - len(wb)) > max(2, longer // 30):
        return False
    changed = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        left, right = wa[i1:i2], wb[j1:j2]
        changed += max(len(left), len(right))
        respelled = (op == "replace" and len(left) == len(right) == 1 and not left[0].isdigit()
                     and SequenceMatcher(None, left[0], right[0]).ratio() >= 0.8 and len(left[0]) > 4)
        respelled = respelled or "".join(left) == "".join(right)  # "lifelong" / "life-long"
        if not respelled and not all(w in _HARMLESS for w in left + right):
            return False
    return changed <= max(2, longer // 30)


# --- local -----------------------------------------------------------------------------------


GROUPS = {"A": "answer", "B": "answer", "C": "answer", "D": "method", "E": "advice", "H": "advice",
          "F": "emphasis", "G": "creative"}
FEATURES = ["cos", "resid", "core", "lex", "rule", "distinct", "align", "rest"]


def group_of(letter: str | None) -> str:
    return GROUPS.get(letter or "", "other")


def load_model(path: Path = MODEL_FILE) -> dict:
    """{group: {features, weights, bias}}; the fallback when the fitted file is missing or old."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data["groups"]
    except (OSError, ValueError, KeyError):
        return {"*": dict(_FALLBACK_MODEL)}


_FILLER_OPENING = re.compile(r"(?i)^(?:sure|certainly|of course|great question|good question|absolutely|"
                             r"here(?:'s| is| are)|there are (?:several|many|a few)|it depends|okay|ok|well|hi|hello)\b")


def _substantive_sentences(text: str) -> list[str]:
    """Sentences without the chatter that opens many model answers ("Sure! Here are a few ideas:")."""
    found = [s for s in sentences(text) if not (_FILLER_OPENING.match(s) and len(s.split()) < 14)
             and not s.rstrip().endswith(":")]
    return found or sentences(text)


def core_text(letter: str | None, text: str, prompt: str = "") -> str:
    """What the category compares, as text to embed.

    A, B, C: the answer or outcome, normalised; D: the method (the words, without
    the numbers); E, H: the core recommendation (the opening advice and any bold
    headline); F: the emphasis (the opening sentences); G: the whole piece ("": the
    answer itself, so it is not embedded twice).
    """
    clean = plain(text)
    if letter in ("A", "B", "C"):
        found = (_answers.fact_candidates(clean, prompt) if letter == "A" else
                 _answers.pick_candidates(clean, prompt) if letter == "B" else
                 _answers.outcome_candidates(clean, prompt))
        return " ".join(found[:1]) or " ".join(_substantive_sentences(clean)[:1])
    if letter == "D":
        method = re.sub(r"[\d=+\-−×÷*/^().,:;√%$²³½]+", " ", clean)
        return " ".join(method.split()[:40])
    if letter in ("E", "H"):
        bold = re.findall(r"\*\*([^*]{3,80})\*\*", text)[:2]
        return " ".join([*bold, *_substantive_sentences(clean)[:1]])
    if letter == "F":
        return " ".join(_substantive_sentences(clean)[:2])
    return ""  # G and the rest: the whole answer is what counts (already embedded)


# Names of one thing that a sentence embedding does not link (epithets, nicknames, formulas), in the
# normalised form the extractors give (no articles, no "of"): canonical, then its other names.
ALIASES = [
    "william shakespeare, shakespeare, bard, bard avon, swan avon", "new york city, new york, nyc, big apple",
    "mars, red planet", "venus, morning star, evening star", "earth, blue planet", "saturn, ringed planet",
    "michael jackson, king pop", "elvis presley, elvis, king rock roll, king rock n roll", "paris, city light",
    "rome, eternal city", "chicago, windy city", "las vegas, vegas, sin city", "los angeles, la, city angels",
    "new orleans, big easy, nola", "united states, usa, us, america, united states america",
    "united kingdom, uk, britain, great britain", "carbon dioxide, co2, co 2", "water, h2o, h 2 o",
    "sodium chloride, nacl, table salt, salt", "abraham lincoln, lincoln, honest abe",
    "margaret thatcher, thatcher, iron lady", "napoleon bonaparte, napoleon, little corporal",
    "albert einstein, einstein", "isaac newton, newton", "leonardo da vinci, da vinci, leonardo",
    "george washington, washington, father his country", "ireland, emerald isle", "japan, land rising sun",
    "netherlands, holland", "michael jordan, jordan, his airness", "wayne gretzky, gretzky, great one",
    "usain bolt, bolt, lightning bolt", "winston churchill, churchill, british bulldog",
    "mahatma gandhi, gandhi, bapu", "martin luther king jr, martin luther king, mlk",
    "john f kennedy, kennedy, jfk", "franklin d roosevelt, roosevelt, fdr", "pacific ocean, pacific",
    "atlantic ocean, atlantic", "mount everest, everest, sagarmatha, chomolungma",
]
_ALIASES = [[form.strip() for form in line.split(",")] for line in ALIASES]


def _alias_key(answer: str) -> str | None:
    """The canonical name an answer stands for, when it is a known name or epithet."""
    padded = f" {answer} "
    for forms in _ALIASES:
        if any(f" {form} " in padded for form in forms):
            return forms[0]
    return None


def _swapped_words(prompt: str, a: str, b: str, min_ratio: float = 0.5) -> tuple[str, str] | None:
    """Two answers on one template that name different things in the same place ("Atomic number 8 belongs
    to oxygen." / "... to nitrogen."): the two words, else None. Same-valued numbers and plurals are no swap."""
    wa, wb = words(a), words(b)
    matcher = SequenceMatcher(None, wa, wb, autojunk=False)
    if min(len(wa), len(wb)) < 2 or matcher.ratio() < min_ratio:
        return None
    asked = {stem(w) for w in words(prompt)}
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "replace":
            continue
        left, right = ([w for w in side if w not in STOPWORDS and w not in FILLER and stem(w) not in asked]
                       for side in (wa[i1:i2], wb[j1:j2]))
        if (left and right and {stem(w) for w in left} != {stem(w) for w in right}
                and normalize_answer(" ".join(wa[i1:i2])) != normalize_answer(" ".join(wb[j1:j2]))):
            return " ".join(left), " ".join(right)
    return None


class _Judge:
    """What both judges offer; each implements judge_pairs_detailed()."""

    async def equivalent(self, prompt: str, category: Category | str | None, a: str, b: str) -> bool | None:
        return (await self.judge_pairs(prompt, category, [(a, b)]))[0]

    async def judge_pairs(self, prompt: str, category: Category | str | None,
                          pairs: list[tuple[str, str]]) -> list[bool | None]:
        return [v.equivalent for v in await self.judge_pairs_detailed(prompt, category, pairs)]

    async def judge_pairs_detailed(self, prompt: str, category: Category | str | None,
                                   pairs: list[tuple[str, str]]) -> list[Verdict]:
        raise NotImplementedError


class LocalJudge(_Judge):
    """Offline, category-aware judge; needs only the embedded sentence-embedding model."""

    name = "local"

    def __init__(self, model: dict | None = None):
        self.model = model or load_model()

    def describe(self) -> str:
        return "local (rules + calibrated embedding model)"

    async def judge_pairs_detailed(self, prompt: str, category: Category | str | None,
                                   pairs: list[tuple[str, str]]) -> list[Verdict]:
        # Embedding is CPU work: keep it off the event loop so a UI stays responsive.
        return await asyncio.to_thread(self.judge_sync, prompt, category, pairs)

    def judge_sync(self, prompt: str, category: Category | str | None,
                   pairs: list[tuple[str, str]]) -> list[Verdict]:
        letter = _letter(category)
        answers = list(dict.fromkeys(t for pair in pairs for t in pair))
        cores = {t: core_text(letter, t, prompt) for t in answers}
        extra = [t for a, b in pairs for t in distinctive_texts(cores[a] or a, cores[b] or b, prompt)
                 if letter in DISTINCT_LETTERS and not near_identical(a, b)]
        units = [u for t in answers for u in aligned_units(t)] if letter in ALIGN_LETTERS else []
        units += [t for a, b in pairs for t in (unshared_texts(a, b) or ()) if letter in ALIGN_LETTERS]
        vec = Embedder([prompt, *answers, *cores.values(), *extra, *units]) if pairs else None
        return [self.decide(prompt, letter, a, b, vec, cores) for a, b in pairs]

    def score(self, letter: str | None, feats: dict) -> float:
        """Probability that two answers are equivalent, from the category group's calibrated model."""
        model = self.model.get(group_of(letter)) or self.model.get("*") or _FALLBACK_MODEL
        z = model["bias"] + sum(w * (feats.get(name) if feats.get(name) is not None else 0.5)
                                for name, w in zip(model["features"], model["weights"]))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def decide(self, prompt: str, letter: str | None, a: str, b: str, vec, cores: dict | None = None) -> Verdict:
        verdict, feats = self.rules(prompt, letter, a, b, vec, cores)
        if verdict is not None:
            return verdict
        p = self.score(letter, feats)
        return Verdict(p >= 0.5, f"similarity model p={p:.2f} (core {feats['core']:.2f}, "
                                 f"beyond the prompt {feats['resid']:.2f}, shared words {feats['lex']:.2f})")

    def rules(self, prompt: str, letter: str | None, a: str, b: str, vec,
              cores: dict | None = None) -> tuple[Verdict | None, dict]:
        """The category's rules; (None, features) when they cannot decide and the similarity model must.

        feats["rule"] carries what a rule found without deciding (1 same, 0 different, None unknown).
        """
        if near_identical(a, b):
            return Verdict(True, "same text"), {}
        cores = cores or {}
        core_a = cores.get(a) or core_text(letter, a, prompt)
        core_b = cores.get(b) or core_text(letter, b, prompt)
        verdict, rule = self._by_rule(prompt, letter, a, b)
        if verdict is not None:
            return verdict, {}
        if letter in ("E", "H"):  # one recommendation swapped into the same sentence ("Paint it light" / "dark")
            swapped = _swapped_words(prompt, plain(a), plain(b), min_ratio=0.6)
            if swapped:
                return Verdict(False, f"a different recommendation in the same words: {swapped[0]} vs {swapped[1]}"), {}
        feats = pair_features(letter, prompt, a, b, vec, core_a, core_b)
        feats["rule"] = rule
        if letter == "D":
            feats["rule"] = feats.get("strategy")
            if feats["rule"] == 0.0:
                return Verdict(False, "same answer, different strategies"), feats
        if letter == "H":
            for key in ("stance", "option"):
                if feats.get(key) == 0.0:
                    return Verdict(False, f"different {key}"), feats
            feats["rule"] = next((feats[k] for k in ("option", "recommendation", "stance") if feats.get(k) is not None),
                                 None)
        return None, feats

    @staticmethod
    def _by_rule(prompt: str, letter: str | None, a: str, b: str) -> tuple[Verdict | None, float | None]:
        """A/B/C: compare the extracted answers; D: different final answers are different.

        (verdict, None) when a rule decides; (None, 1/0/None) for the model otherwise.
        """
        if letter == "D":
            fa, fb = _answers.problem_answer(a, prompt), _answers.problem_answer(b, prompt)
            if fa and fb and not _answers.answers_match(fa, fb) and not (
                    _answers.concludes_with(a, fb) or _answers.concludes_with(b, fa)):  # one misread: not decided
                return Verdict(False, f"final answers differ: {fa} vs {fb}"), None
            return None, None
        if letter not in ("A", "B", "C"):
            return None, None
        a, b = plain(a), plain(b)
        swapped = _swapped_words(prompt, a, b) if letter in ("A", "B") else None
        if swapped:
            return Verdict(False, f"one answer put in place of another: {swapped[0]} vs {swapped[1]}"), None
        if letter == "C":
            ca, cb = _answers.outcome_candidates(a, prompt), _answers.outcome_candidates(b, prompt)
            same = _answers.outcomes_equal(ca, cb)
        else:
            extract = _answers.fact_candidates if letter == "A" else _answers.pick_candidates
            ca, cb = extract(a, prompt), extract(b, prompt)
            same = _answers.same_answer(ca, cb)
            if same is False and (len(ca) == 1 and ca[0] in cb or len(cb) == 1 and cb[0] in ca):
                same = True  # a bare answer named inside a longer one ("Saturn." / "..., the ringed Saturn.")
        if same is None:
            return None, None
        shown = f"{ca[0]}" if same else f"{ca[0]} vs {cb[0]}"
        if same:
            return Verdict(True, f"same answer: {shown}"), None
        ka = {k for k in map(_alias_key, ca[:3]) if k}
        kb = {k for k in map(_alias_key, cb[:3]) if k}
        if ka & kb:
            return Verdict(True, f"same answer under another name: {ca[0]} / {cb[0]}"), None
        numeric = re.compile(r"-?[\d.,/]+%?(?: \S+)?")
        if letter == "C" or (numeric.fullmatch(ca[0]) and numeric.fullmatch(cb[0])):
            return Verdict(False, f"different answer: {shown}"), None
        return None, 0.0


# --- llm -------------------------------------------------------------------------------------


_YES_NO = re.compile(r"(?:(?:final\s+)?(?:answer|verdict)\s*[:=]\s*)?(yes|no)(?:\s*(?:[.,!;:)\]—–-]|\n).*)?\s*", re.I | re.S)


def parse_yes_no(text: str) -> bool | None:
    """YES -> True, NO -> False; None (unknown) for anything else.

    After any complete <think> block the reply must open with YES or NO, alone or
    followed by punctuation ("No.", "**YES**", "Answer: NO", "No, they differ."). A reply cut off
    while thinking, or prose that merely contains "no", is unknown, never "different".
    """
    text = re.sub(r"(?is)<think>.*?</think>", " ", text or "")
    if re.search(r"(?i)<think>", text):
        return None
    text = re.sub(r"[*_`\"'“”]", "", text).strip()
    match = _YES_NO.fullmatch(text)
    return None if match is None else match.group(1).lower() == "yes"


def _cache_lines(path: Path) -> list[str]:
    """The verdict cache's lines; none when it is missing or unreadable. Damaged bytes spoil only
    their own line (skipped by the caller), not the whole cache or the judge's start."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


class LLMJudge(_Judge):
    """The paper's judge: a capable model answers YES/NO per pair at temperature 0."""

    name = "llm"

    def __init__(self, backend, concurrency: int = 4, cache_path: str | Path | None = None, *,
                 max_tokens: int = JUDGE_MAX_TOKENS, owns_backend: bool = False):
        self.backend = backend
        self.concurrency = max(1, concurrency)
        self.max_tokens = max_tokens
        self.cache_path = Path(cache_path) if cache_path else None
        self.owns_backend = owns_backend
        self._cache: dict[str, bool] = {}
        self._semaphore: asyncio.Semaphore | None = None
        self.calls = 0  # requests actually sent (cache and short-answer hits excluded)
        self.unparsed = 0  # replies with neither YES nor NO (verdict unknown)
        if self.cache_path:
            for line in _cache_lines(self.cache_path):
                try:
                    item = json.loads(line)
                    self._cache[item["key"]] = bool(item["equivalent"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash: skip it

    def describe(self) -> str:
        return f"llm ({self.backend.name}/{self.backend.model})"

    def key(self, prompt: str, letter: str | None, a: str, b: str) -> str:
        payload = json.dumps([self.backend.model, letter, prompt, a, b], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    async def judge_pairs_detailed(self, prompt: str, category: Category | str | None,
                                   pairs: list[tuple[str, str]]) -> list[Verdict]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        cat = category if isinstance(category, Category) else None
        if cat is None and isinstance(category, str):
            from ..taxonomy import get

            cat = get(category)
        return list(await asyncio.gather(*(self._judge(prompt, cat, a, b) for a, b in pairs)))

    async def _judge(self, prompt: str, category: Category | None, a: str, b: str) -> Verdict:
        if near_identical(a, b):
            return Verdict(True, "same text")
        short = short_answer_rule(a, b)
        if short is not None:
            return Verdict(short, "short answers: unigram overlap")
        key = self.key(prompt, category.letter if category else None, a, b)
        if key in self._cache:
            return Verdict(self._cache[key], "cached verdict")
        async with self._semaphore:
            completion = await self.backend.complete(
                [{"role": "user", "content": judge_prompt(prompt, category, a, b)}],
                temperature=0, max_tokens=self.max_tokens)
        self.calls += 1
        verdict = parse_yes_no(completion.text)
        if verdict is None:
            self.unparsed += 1
            return Verdict(None, f"unreadable reply {completion.text[:40]!r}: verdict unknown")
        self._cache[key] = verdict
        if self.cache_path:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"key": key, "equivalent": verdict}) + "\n")
        return Verdict(verdict, f"model said {'YES' if verdict else 'NO'}")

    async def aclose(self) -> None:
        if self.owns_backend:
            await self.backend.aclose()


def resolve_method(settings: Settings, method: str | None = None, backend_name: str | None = None) -> tuple[str, str]:
    """(local|llm|check, judge backend name) for a requested method.

    auto picks by the backend's capability: declared in the config or found by the
    cached self-check; "check" when the self-check has not run yet. The [judge]
    backend, when set, judges instead of the chat backend.
    """
    from ..capability import cached

    method = method or settings.judge.method
    if method not in JUDGE_METHODS:
        raise ValueError(f"unknown judge {method!r}; choose one of: {', '.join(JUDGE_METHODS)}")
    name, config = settings.backend(settings.judge.backend or backend_name)
    if method == "auto":
        known = cached(config)
        method = "check" if known.source == "unchecked" else "llm" if known.judge else "local"
    return method, name


def make_judge(settings: Settings, method: str | None = None, backend_name: str | None = None):
    """The judge the settings ask for: LocalJudge, or LLMJudge on its own backend (closed by aclose()).

    A server whose capability is not known yet gets a CheckedJudge: it runs the
    self-check before the first pair and then judges with the LLM or locally.
    """
    method, name = resolve_method(settings, method, backend_name)
    if method == "local":
        return LocalJudge()
    if method == "check":
        return CheckedJudge(settings, name)
    from ..backends import make_backend

    return LLMJudge(make_backend(settings, name), concurrency=settings.judge.concurrency,
                    cache_path=cache_dir() / "judge-cache.jsonl", owns_backend=True)


class CheckedJudge(_Judge):
    """auto on a server not checked yet: the self-check decides, once, between the LLM and the local judge."""

    name = "auto"

    def __init__(self, settings: Settings, backend_name: str):
        self.settings, self.backend_name = settings, backend_name
        self.inner = None
        self.why_local = ""
        self._setting_up = asyncio.Lock()  # concurrent first calls must build one inner judge, not one each

    def describe(self) -> str:
        if self.inner is None:
            return f"auto (self-check of {self.backend_name} pending)"
        return self.inner.describe() + (f"; {self.why_local}" if self.why_local else "")

    async def judge_pairs_detailed(self, prompt: str, category: Category | str | None,
                                   pairs: list[tuple[str, str]]) -> list[Verdict]:
        if self.inner is None:
            async with self._setting_up:
                if self.inner is None:
                    await self._set_up()
        return await self.inner.judge_pairs_detailed(prompt, category, pairs)

    async def _set_up(self) -> None:
        from ..capability import ensure

        capability = await ensure(self.settings, self.backend_name)
        if capability.judge:
            self.inner = make_judge(self.settings, "llm", self.backend_name)
        else:
            self.inner = LocalJudge()
            self.why_local = f"{self.backend_name} {capability.summary}"

    async def aclose(self) -> None:
        await close_judge(self.inner)


async def close_judge(judge) -> None:
    closer = getattr(judge, "aclose", None)
    if closer:
        await closer()
