"""Cold command-line runs: `taskdiv-chat classify "…"` and `judge --pairs` with one pair, each a new process.

Each command runs --runs times, alternating with a bare interpreter start (`python -c pass`,
the floor every command pays) so load changes hit both; the script prints medians, the
ratio to the floor and peak RSS. The config is empty (the built-in defaults: auto methods
with the embedded model as default backend, so both commands run their local, offline
path); the cache dir is shared, as on a machine where taskdiv-chat has run before.
Targets (issue 14): classify cold <= 3 s, judge with 1 pair cold <= 3 s.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cli_cold.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable
ROOT = Path(__file__).resolve().parents[1]
PAIR = {"category": "G", "prompt": "Write a two-sentence story about a lighthouse keeper.",
        "response_1": "Every night for forty years, old Tom lit the lamp for ships that never came. On his last night, "
                      "a single boat sailed in, carrying the daughter he had never met.",
        "response_2": "The keeper of the northern light collected messages in bottles for sixty winters. When she "
                      "died, the town found she had answered every one of them, and mailed none."}
TARGET = 3.0


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one run; fails loudly if the command fails."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # like proc.wait(), and the child's resource usage
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {text}")
    return seconds, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "one-pair.jsonl"
        pairs.write_text(json.dumps(PAIR) + "\n", encoding="utf-8")
        config = Path(tmp) / "config.toml"
        config.write_text("", encoding="utf-8")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TASKDIV_CONFIG": str(config),
               "TASKDIV_DATA_DIR": f"{tmp}/data", "TASKDIV_CACHE_DIR": f"{tmp}/cache",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        commands = {
            "python -c pass": [PY, "-c", "pass"],
            "classify": [PY, "-m", "taskdiv_chat", "classify", "What is the capital of France?"],
            "judge 1 pair": [PY, "-m", "taskdiv_chat", "judge", "--pairs", str(pairs)],
        }
        for command in commands.values():  # untimed: files in the page cache, caches filled
            run(command, env)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                results[name].append(run(command, env))
    floor = statistics.median(s for s, _ in results["python -c pass"])
    for name, values in results.items():
        seconds = statistics.median(s for s, _ in values)
        rss = statistics.median(r for _, r in values)
        verdict = "" if name.startswith("python") else \
            f"  target <= {TARGET:.0f} s: {'met' if seconds <= TARGET else 'NOT met'}"
        print(f"{name:15s} median {seconds:.2f} s ({seconds / floor:.1f}x the bare interpreter), peak RSS {rss:.0f} MiB"
              f"  (runs: {', '.join(f'{s:.2f}' for s, _ in values)}){verdict}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
