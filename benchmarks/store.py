"""Conversation store speed on a large history: 10,000 conversations, ~200,000 messages.

    .venv/bin/python benchmarks/store.py [--conversations 10000] [--repeat 21]

Builds the database in a temp dir (one executemany transaction through the real
schema and its full-text triggers), then prints medians of:
  open + list 50 recent      (target <= 50 ms)
  load a 200-message conversation with its variants (<= 20 ms)
  full-text search           (<= 100 ms), for a rare, a middling and a common word and two words
                             (newest 50 hits, each word a prefix, with snippets)
  one streaming flush         (<= 2 ms)
Each next to a baseline measured in the same run: the bare SQL doing the least
the operation needs, so the ratio shows what the store adds on top.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taskdiv_chat import taxonomy  # noqa: E402
from taskdiv_chat.store import Store  # noqa: E402

TURNS, VARIANTS = 5, 3  # per ordinary conversation: 5 x (1 user + 3 answers) = 20 messages
BIG_TURNS = 50  # the big conversation: 50 x 4 = 200 messages


def vocabulary() -> list[str]:
    """Real words (NoveltyBench prompts, the taxonomy), most frequent first: a Zipf-like corpus."""
    text = [c.definition + " " + " ".join(c.examples) + " " + c.regen_instruction for c in taxonomy.CATEGORIES]
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "noveltybench-curated.jsonl"
    if data.exists():
        for line in data.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text.append(row["prompt"] + " " + " ".join(row.get("prompt_paraphrases", [])))
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z]+", " ".join(text).lower()):
        counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: -counts[w])


class Words:
    def __init__(self, words: list[str], seed: int = 7):
        self.words = words
        self.weights = [1 / (rank + 1) for rank in range(len(words))]
        self.rng = random.Random(seed)

    def text(self, n: int) -> str:
        picked = self.rng.choices(self.words, self.weights, k=n)
        sentences = [" ".join(picked[i:i + 12]).capitalize() + "." for i in range(0, n, 12)]
        return " ".join(sentences)


def build(path: Path, conversations: int, words: Words) -> tuple[int, int]:
    """Fill the store's schema in one transaction; returns (big conversation id, messages)."""
    Store(path).close()  # the real schema, triggers and all
    db = sqlite3.connect(path, isolation_level=None)
    rng = words.rng
    now = time.time() - 86400 * 365
    params = json.dumps({"temperature": 1.0, "top_p": 0.9, "max_tokens": 512})
    usage = json.dumps({"prompt_tokens": 420, "completion_tokens": 180, "total_tokens": 600})
    timings = json.dumps({"first_token_s": 0.31, "total_s": 3.4})
    metrics = json.dumps({"n": 3, "category": "G", "wants": "different", "mean_pairwise_distance": 0.41,
                          "functional_diversity": 0.67, "judge": [{"pair": [1, 2], "equivalent": False},
                                                                  {"pair": [1, 3], "equivalent": True},
                                                                  {"pair": [2, 3], "equivalent": False}]})
    convs, msgs = [], []
    next_id = 1
    big = conversations // 2
    for cid in range(1, conversations + 1):
        created = now + cid * 3000
        convs.append((cid, f"Conversation {cid}: {words.text(4)}", created, created + 600, int(cid % 50 == 0)))
        parent = None
        for turn in range(BIG_TURNS if cid == big else TURNS):
            t = created + turn * 60
            user_id = next_id
            category = json.dumps({"letter": rng.choice(taxonomy.LETTERS), "confidence": 0.8, "method": "llm"})
            variant_ids = list(range(user_id + 1, user_id + 1 + VARIANTS))
            msgs.append((user_id, cid, "user", parent, words.text(rng.randint(8, 40)), t, t, category, None,
                         variant_ids[-1], turn + 1, None, None, None, None, None, None, None, None, None, None))
            for k, vid in enumerate(variant_ids):
                last = k == VARIANTS - 1
                msgs.append((vid, cid, "assistant", user_id, words.text(rng.randint(40, 220)), t + k, t + k + 3,
                             category, None, None, None, "done", "stop", None, "anchored-icr", "openai",
                             "gpt-4o-mini", params, usage, timings, metrics if last else None))
            parent = variant_ids[-1]
            next_id = variant_ids[-1] + 1
    db.execute("BEGIN")
    db.executemany("INSERT INTO conversations (id, title, created, updated, archived) VALUES (?, ?, ?, ?, ?)", convs)
    db.executemany("INSERT INTO messages (id, conversation_id, role, parent_id, text, created, updated, category, "
                   "category_override, active_variant_id, selected, status, finish_reason, error, strategy, "
                   "backend, model, params, usage, timings, metrics) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", msgs)
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return big, len(msgs)


def timed(fn, repeat: int, cleanup=None) -> float:
    """Median milliseconds of fn() over `repeat` runs (after one warm-up run); cleanup(result) is not timed."""
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        result = fn()
        if i:
            samples.append((time.perf_counter() - start) * 1000)
        if cleanup:
            cleanup(result)
    return statistics.median(samples)


def row(name: str, ms: float, target: float, base: float | None = None) -> None:
    verdict = "ok" if ms <= target else "OVER TARGET"
    extra = f"   baseline {base:7.2f} ms  (x{ms / base:.1f})" if base else ""
    print(f"  {name:<54} {ms:8.2f} ms  (target <= {target:g} ms, {verdict}){extra}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskdiv-store-bench-") as tmp:
        path = Path(tmp) / "conversations.sqlite3"
        words = Words(vocabulary())
        start = time.perf_counter()
        big, n_messages = build(path, args.conversations, words)
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        print(f"built {args.conversations} conversations, {n_messages} messages, {size:.0f} MB "
              f"in {time.perf_counter() - start:.1f} s")
        print(f"medians of {args.repeat} runs:")

        def open_and_list():
            store = Store(path)
            assert len(store.list_conversations(50)) == 50
            return store

        def bare_open_and_list():
            db = sqlite3.connect(path)
            db.execute("SELECT id, title, updated FROM conversations ORDER BY updated DESC LIMIT 50").fetchall()
            return db

        close = lambda handle: handle.close()  # noqa: E731 -- closing is exit work, not startup
        row("open + list 50 recent", timed(open_and_list, args.repeat, close), 50,
            timed(bare_open_and_list, args.repeat, close))

        store = Store(path)
        loaded = store.load_conversation(big)
        assert len(loaded.turns) == BIG_TURNS and sum(len(t.variants) + 1 for t in loaded.turns) == 200
        bare = sqlite3.connect(path)
        row("load a 200-message conversation + variants", timed(lambda: store.load_conversation(big), args.repeat),
            20, timed(lambda: bare.execute("SELECT * FROM messages WHERE conversation_id = ?", (big,)).fetchall(),
                      args.repeat))

        ranked = words.words
        queries = {"rare word": ranked[len(ranked) * 3 // 4], "middling word": ranked[len(ranked) // 10],
                   "common word": ranked[5], "two words": f"{ranked[40]} {ranked[60]}"}
        for label, query in queries.items():
            assert store.search(query), query
            match = " ".join(f'"{w}"*' for w in query.split())
            n = bare.execute("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?", (match,)).fetchone()[0]
            baseline = timed(lambda: bare.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
                                                  "ORDER BY rowid DESC LIMIT 50", (match,)).fetchall(), args.repeat)
            row(f"search, {label} ({query!r}: {n} matches)", timed(lambda: store.search(query), args.repeat), 100,
                baseline)

        conv = store.create_conversation("flush benchmark")
        turn = store.add_user_turn(conv, "Write a long story.", None)
        writer = store.start_variant(turn, strategy="temperature", backend="local", model="m", params={})
        plain = sqlite3.connect(Path(tmp) / "plain.sqlite3", isolation_level=None)
        plain.execute("PRAGMA journal_mode=WAL")
        plain.execute("PRAGMA synchronous=NORMAL")
        plain.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, text TEXT)")
        plain.execute("INSERT INTO t VALUES (1, '')")
        flushes, bare_flushes = [], []
        delta = words.text(8) + " "
        for i in range(400):  # an answer growing to ~20 kB, one flush per 50-character delta
            writer._parts.append(delta)
            start = time.perf_counter()
            writer.flush()
            flushes.append((time.perf_counter() - start) * 1000)
            text = writer.text
            start = time.perf_counter()
            plain.execute("BEGIN IMMEDIATE")
            plain.execute("UPDATE t SET text = ? WHERE id = 1", (text,))
            plain.execute("COMMIT")
            bare_flushes.append((time.perf_counter() - start) * 1000)
        writer.finish("stop")
        row(f"one streaming flush (answer up to {len(writer.text) // 1000} kB)", statistics.median(flushes), 2,
            statistics.median(bare_flushes))
        print(f"  {'  90th percentile of the same flushes':<54} {statistics.quantiles(flushes, n=10)[-1]:8.2f} ms")
        store.close()
        bare.close()
        plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
