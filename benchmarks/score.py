"""`taskdiv-chat score` speed: 100 prompts x 10 generations with the local judge (target: <= 2 min
on 2 cores), against a baseline measured in the same run: embedding the same 1000 generations once.

    python benchmarks/score.py [--prompts 100] [--n 10] [--repeats 1]

The generations are made up here (sentences drawn from a fixed pool, seeded), so the run is
offline and never touches NoveltyBench's published generations (held out to check the command).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from taskdiv_chat.diversity.bench import BUILTIN_PROMPTS, read_prompts  # noqa: E402

POOL = [
    "A lighthouse keeper finds a message in a bottle", "the storm rolls in over the harbour",
    "she decides to sail alone at dawn", "the old dog waits by the gate every evening",
    "a robot learns to paint with its broken arm", "the village celebrates the first snow",
    "I recommend starting with a paper planner", "a calendar app syncs across devices",
    "rainwater barrels keep the garden green", "drip irrigation saves most of the water",
    "the answer is 12 because 3 times 4 is 12", "listing every case gives the same count",
    "Kenya is a country in East Africa", "Ghana lies on the Gulf of Guinea",
    "the Industrial Revolution began with coal and steam", "trade networks spread the new ideas",
    "a haiku about neon signs and quiet rain", "the train hums through fields of wheat",
]


def make_file(path: Path, prompts: int, n: int) -> None:
    rng = random.Random(7)
    source = read_prompts(BUILTIN_PROMPTS)
    with path.open("w", encoding="utf-8") as f:
        for i in range(prompts):
            p = source[i % len(source)]
            gens = [". ".join(rng.sample(POOL, rng.randint(3, 6))) + "." for _ in range(n)]
            f.write(json.dumps({"id": f"p{i}", "prompt": p.prompt, "category": p.category, "model": "synthetic",
                                "generations": gens}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gens = Path(tmp) / "generations.jsonl"
        make_file(gens, args.prompts, args.n)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKDIV_DATA_DIR": tmp, "TASKDIV_CACHE_DIR": tmp,
               "TASKDIV_CONFIG": str(Path(tmp) / "none.toml")}
        texts = [g for line in gens.read_text().splitlines() for g in json.loads(line)["generations"]]
        base, runs = [], []
        for _ in range(args.repeats):
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", "import sys, json; from taskdiv_chat.embeddings import embed; "
                            "embed(json.load(open(sys.argv[1])))", _dump(texts, tmp)], env=env, check=True)
            base.append(time.monotonic() - started)
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "taskdiv_chat", "score", str(gens), "--judge", "local",
                            "--out", str(Path(tmp) / "out")], env=env, check=True, stdout=subprocess.DEVNULL)
            runs.append(time.monotonic() - started)
    b, r = statistics.median(base), statistics.median(runs)
    print(f"score {args.prompts} prompts x {args.n} generations, local judge: median {r:.1f} s "
          f"(target <= 120 s); baseline (embed the {len(texts)} generations once, same process start): "
          f"{b:.1f} s; ratio {r / b:.1f}x")


def _dump(texts: list[str], tmp: str) -> str:
    path = Path(tmp) / "texts.json"
    path.write_text(json.dumps(texts), encoding="utf-8")
    return str(path)


if __name__ == "__main__":
    main()
