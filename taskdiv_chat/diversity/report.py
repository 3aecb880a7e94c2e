"""How a set of answers to one prompt differ, judged the way the prompt's category wants.

analyze() judges every pair, groups equivalent answers with union-find (the
paper's count of functionally unique answers), adds the generic metrics, the
final-answer agreement for A and D, and a verdict with a status for the UI
badge. quick_report() gives the generic metrics alone, for showing at once
while the judge is still working.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from itertools import combinations

from ..backends.base import BackendError
from ..taxonomy import Category, Wants
from .answers import answers_match
from .judge import LocalJudge, Verdict
from .metrics import extract_final_answer, generic_metrics, similarity_matrix

log = logging.getLogger(__name__)


class UnionFind:
    """Disjoint sets over 0..n-1; groups come out ordered by their first member."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)  # the smaller index stays the root

    def groups(self) -> list[list[int]]:
        by_root: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            by_root.setdefault(self.find(i), []).append(i)
        return sorted(by_root.values(), key=lambda g: g[0])


@dataclass
class DiversityReport:
    category: str | None  # letter, None outside the taxonomy
    wants: str  # "same" | "same-answer-new-strategy" | "different"
    n: int
    groups: list[list[int]]
    unique: int
    newest_is_new: bool | None  # None with a single answer
    newest_duplicates: int | None  # the earlier answer the newest one repeats
    pairwise: list[list[bool | None]]  # pairwise[i][j]: answers i and j are equivalent (None: unknown)
    similarity: list[list[float]]  # embedding cosine
    generic: dict
    answers_agree: bool | None  # A and D: do the final answers agree (None: not applicable/unknown)
    final_answers: list[str | None]
    status: str  # good | warning | bad
    reason: str  # one line for the badge tooltip
    badge_text: str
    judge: str = ""  # which judge decided
    reasons: dict[str, str] = field(default_factory=dict)  # "i,j" -> why the judge decided so
    unknown_pairs: int = 0  # pairs whose verdict could not be read, left out of the groups
    cross_model: dict | None = None  # answers from several models: crossmodel.CrossModel as a dict

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DiversityReport":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def quick_report(answers: list[str]) -> dict:
    """Generic metrics only (no judge): vocabulary/embedding diversity, compression ratio, similarity matrix.

    Synchronous and CPU-bound: from an event loop, run it with asyncio.to_thread.
    """
    sim = similarity_matrix(answers)
    return {"n": len(answers), "generic": generic_metrics(answers, sim),
            "similarity": [[round(float(x), 4) for x in row] for row in sim]}


def _agreement(letter: str | None, prompt: str, answers: list[str]) -> tuple[bool | None, list[str | None]]:
    if letter not in ("A", "D"):
        return None, [None] * len(answers)
    finals = [extract_final_answer(a, letter, prompt) for a in answers]
    known = [f for f in finals if f]
    if len(known) < 2:
        return None, finals
    # "everest" and "mount everest" agree: whole-word containment, as the judge compares them
    return all(answers_match(x, y) for x, y in combinations(known, 2)), finals


def verdict(category: Category | None, n: int, unique: int, agree: bool | None) -> tuple[str, str, str]:
    """(status, one-line reason, badge text) for what the category wants and what happened."""
    if n < 2:
        return "good", "one answer so far: regenerate to compare", "1 answer"
    count = f"{unique}/{n} unique"
    wants = category.wants if category else Wants.DIFFERENT
    if wants == Wants.SAME:
        if agree is False or (agree is None and unique > 1):
            return "warning", "answers DIFFER: a question with one correct answer should get the same one", "answers DIFFER"
        return "good", f"all {n} answers agree, as a question with one correct answer should", "answers agree"
    if wants == Wants.SAME_ANSWER_NEW_STRATEGY:
        strategies = f"{unique}/{n} strategies"
        if agree is False:
            return "warning", f"final answers DIFFER ({strategies}): a problem with one answer should get the same one", \
                "answers DIFFER"
        tail = "answers agree" if agree else "answers unchecked"
        if unique == 1:
            return "bad", f"the same strategy every time ({tail})", f"{strategies} · {tail}"
        if unique < n:
            return "warning", f"{unique} different strategies in {n} answers ({tail})", f"{strategies} · {tail}"
        return "good", f"a different strategy every time ({tail})", f"{strategies} · {tail}"
    if unique == 1:
        return "bad", f"all {n} answers are functionally the same", count
    if unique < n:
        return "warning", f"{n - unique} of {n} answers repeat an earlier one", count
    return "good", f"all {n} answers are functionally different", count


async def _judge(judge, prompt: str, category: Category | None, texts: list[tuple[str, str]]) -> list[Verdict]:
    if not texts:
        return []
    detailed = getattr(judge, "judge_pairs_detailed", None)
    if detailed:
        return await detailed(prompt, category, texts)
    return [Verdict(v, "") for v in await judge.judge_pairs(prompt, category, texts)]


async def judge_groups(judge, prompt: str, category: Category | None, answers: list[str],
                       finder: UnionFind) -> dict[tuple[int, int], Verdict]:
    """Verdicts for the pairs that decide the groups, the same groups as judging every pair.

    Answer by answer, each newcomer is compared with the members of every earlier
    group in waves (first members, then second members of the groups it did not
    join yet, ...): a pair whose two answers are already in one group is never
    asked, as in NoveltyBench's partition. Unknown verdicts join nothing.
    """
    verdicts: dict[tuple[int, int], Verdict] = {}
    for i in range(1, len(answers)):
        members: dict[int, list[int]] = {}
        for j in range(i):
            members.setdefault(finder.find(j), []).append(j)
        for wave in range(max(len(m) for m in members.values())):
            asked = [(m[wave], i) for m in members.values()
                     if len(m) > wave and finder.find(m[0]) != finder.find(i)]
            if not asked:
                break
            for pair, v in zip(asked, await _judge(judge, prompt, category,
                                                   [(answers[j], answers[k]) for j, k in asked])):
                verdicts[pair] = v
                if v.equivalent:
                    finder.union(*pair)
    return verdicts


async def analyze(prompt: str, category: Category | None, answers: list[str], judge) -> DiversityReport:
    """Judge the pairs and summarise how the answers differ (see the module doc).

    If an LLM judge fails (server down), the local judge takes over and the
    report says so in `judge`. Pairs the judge could not read are left out of
    the grouping and the badge counts them.
    """
    n = len(answers)
    finder = UnionFind(n)
    try:
        verdicts = await judge_groups(judge, prompt, category, answers, finder)
        judge_name = judge.describe() if hasattr(judge, "describe") else getattr(judge, "name", "judge")
    except BackendError as exc:
        log.warning("judge failed, using the local judge: %s", exc)
        fallback = LocalJudge()
        finder = UnionFind(n)
        verdicts = await judge_groups(fallback, prompt, category, answers, finder)
        judge_name = f"{fallback.describe()}; the LLM judge failed: {exc}"
    groups = finder.groups()

    equal: list[list[bool | None]] = [[i == j for j in range(n)] for i in range(n)]
    reasons = {}
    for i, j in combinations(range(n), 2):
        v = verdicts.get((i, j))
        if v is None:  # not asked: decided by the groups
            same = finder.find(i) == finder.find(j)
            v = Verdict(same, "in one group through other answers" if same else "in different groups")
        equal[i][j] = equal[j][i] = v.equivalent
        reasons[f"{i},{j}"] = v.reason
    unknown = sum(v.equivalent is None for v in verdicts.values())

    newest_is_new = newest_dup = None
    if n >= 2:
        dups = [j for j in range(n - 1) if finder.find(j) == finder.find(n - 1)]
        newest_is_new = not dups
        newest_dup = dups[0] if dups else None

    # Embedding is CPU work (and a ~9 s model load the first time): keep it off the event loop.
    sim = await asyncio.to_thread(similarity_matrix, answers)
    generic = await asyncio.to_thread(generic_metrics, answers, sim)
    letter = category.letter if category else None
    agree, finals = _agreement(letter, prompt, answers)
    status, reason, badge = verdict(category, n, len(groups), agree)
    if unknown:
        note = f"{unknown} pair{'s' if unknown > 1 else ''} unknown"
        reason = f"{reason}; {note}: the judge's reply was unreadable, those pairs are left out of the groups"
        badge = f"{badge} · {note}"
    return DiversityReport(
        category=letter,
        wants=(category.wants.value if category else Wants.DIFFERENT.value),
        n=n, groups=groups, unique=len(groups), newest_is_new=newest_is_new, newest_duplicates=newest_dup,
        pairwise=equal, similarity=[[round(float(x), 4) for x in row] for row in sim],
        generic=generic, answers_agree=agree, final_answers=finals,
        status=status, reason=reason, badge_text=badge, judge=judge_name, reasons=reasons, unknown_pairs=unknown,
    )
