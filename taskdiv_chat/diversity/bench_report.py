"""report.md and the charts for `bench` and `score`: category x strategy tables (mean, 95 %
interval and number of prompts per cell), failures and truncations, self-classification
accuracy, and the quality-diversity view (the paper's Figure 3) as a table and a scatter chart."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from .. import taxonomy


def _cells(rows: list[dict], field: str, key=lambda r: (r["category"], r["strategy"])) -> dict:
    cells: dict = defaultdict(list)
    for r in rows:
        value = r.get(field)
        if value is not None:
            cells[key(r)].append(float(value))
    return cells


def aggregate(rows: list[dict], field: str) -> dict[tuple[str, str], float]:
    """Mean of `field` per (category, strategy), ignoring missing values."""
    return {k: sum(v) / len(v) for k, v in _cells(rows, field).items()}


def interval(values: list[float]) -> float | None:
    """Half-width of the 95 % t-interval of the mean (None for fewer than 2 values)."""
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))


def _letters(rows: list[dict]) -> list[str]:
    return sorted({r["category"] for r in rows}, key=lambda c: (c == taxonomy.OTHER, c))


def _label(letter: str) -> str:
    cat = taxonomy.get(letter)
    return f"{letter} {cat.short}" if cat else letter


def _table(rows: list[dict], field: str, strategies: list[str], fmt: str, with_interval: bool = False) -> str:
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    head = "| category | " + " | ".join(strategies) + " |\n|---|" + "---:|" * len(strategies) + "\n"

    def cell(values: list[float] | None) -> str:
        if not values:
            return "-"
        text = format(sum(values) / len(values), fmt)
        if with_interval:
            half = interval(values)
            text += (f" ± {half:{fmt[:-1]}f}" if half is not None else "") + f" ({len(values)})"
        return text

    by_cell = _cells(ok, field)
    body = "".join(f"| {_label(c)} | " + " | ".join(cell(by_cell.get((c, s))) for s in strategies) + " |\n"
                   for c in _letters(rows))  # a category whose sets all failed shows as "-"
    overall = _cells(ok, field, key=lambda r: r["strategy"])
    body += "| **all** | " + " | ".join(cell(overall.get(s)) for s in strategies) + " |\n"
    return head + body


def _failures_table(rows: list[dict], strategies: list[str]) -> str:
    head = "| category | " + " | ".join(strategies) + " |\n|---|" + "---:|" * len(strategies) + "\n"
    body = ""
    for c in _letters(rows) + ["all"]:
        cells = []
        for s in strategies:
            mine = [r for r in rows if r["strategy"] == s and (c == "all" or r["category"] == c)]
            failed = sum(r.get("status", "ok") != "ok" for r in mine)
            truncated = sum(r.get("truncated") or 0 for r in mine)
            cells.append(f"{failed} / {truncated}" if mine else "-")
        body += f"| {'**all**' if c == 'all' else _label(c)} | " + " | ".join(cells) + " |\n"
    return head + body


def _self_classification(rows: list[dict]) -> str:
    """Accuracy of the model's own label against the given category, per category (one row per prompt)."""
    by_prompt = {r["prompt_id"]: r for r in rows if r.get("self_category") and r.get("category_source") == "given"}
    if not by_prompt:
        return ""
    lines = ["| category | prompts | self-classified correctly | labels given |", "|---|---:|---:|---|"]
    hits = 0
    for c in _letters(list(by_prompt.values())):
        mine = [r for r in by_prompt.values() if r["category"] == c]
        right = sum(r["self_category"] == c for r in mine)
        hits += right
        said = ", ".join(sorted({r["self_category"] for r in mine}))
        lines.append(f"| {_label(c)} | {len(mine)} | {right}/{len(mine)} ({right / len(mine):.0%}) | {said} |")
    lines.append(f"| **all** | {len(by_prompt)} | {hits}/{len(by_prompt)} ({hits / len(by_prompt):.0%}) | |")
    return "\n".join(lines) + "\n"


def quality_diversity(rows: list[dict], strategies: list[str]) -> dict[str, dict[str, float | None]]:
    """Per strategy: mean unique answers, vocabulary diversity and checklist quality (over all prompts)."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    out = {}
    for s in strategies:
        mine = [r for r in ok if r["strategy"] == s]
        out[s] = {}
        for field in ("unique", "vocabulary_diversity", "quality"):
            values = [float(r[field]) for r in mine if r.get(field) is not None]
            out[s][field] = sum(values) / len(values) if values else None
    return out


def _qd_table(view: dict, n: int) -> str:
    lines = [f"| strategy | unique (of {n}) | vocabulary diversity | checklist quality (1-5) |", "|---|---:|---:|---:|"]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for s, v in view.items():
        lines.append(f"| {s} | {fmt(v['unique'], '.2f')} | {fmt(v['vocabulary_diversity'], '.3f')} | "
                     f"{fmt(v['quality'], '.2f')} |")
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], out: Path, meta: dict, title: str = "taskdiv-chat bench") -> Path:
    strategies = [s for s in meta["strategies"] if any(r["strategy"] == s for r in rows)]
    settings = meta.get("settings") or {}
    n = meta["n"]
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    failed = len(rows) - len(ok)
    lines = [f"# {title}", ""]
    if meta.get("backend"):
        lines.append(f"- generator: {meta['backend']} (model {meta['model']}), layout {meta.get('layout', 'turns')}")
    if meta.get("source"):
        lines.append(f"- generations read from {meta['source']}")
    lines.append(f"- judge{'s (unique counts averaged over them)' if len(meta['judges']) > 1 else ''}: "
                 + "; ".join(meta["judges"]))
    if meta.get("quality_scorers"):
        lines.append(f"- checklist quality scored by: {', '.join(meta['quality_scorers'])}")
    if settings:
        cap = f"{settings['max_tokens']} max tokens per answer" if settings.get("max_tokens") else "no token cap"
        lines.append(f"- settings: n = {n}, temperature {settings.get('temperature')}, top-p {settings.get('top_p')}, "
                     f"{cap}, {settings.get('retries')} retries per failed set")
        lines.append("- prompts: " + (("the paper's protocol plus our additions: " + "; ".join(meta["additions"]))
                                       if meta.get("additions") else "the paper's protocol (no additions)")
                     + ("; anchored with the model's own category (--self-classify)"
                        if settings.get("self_classify") else ""))
    prompts = len({r["prompt_id"] for r in rows})
    lines.append(f"- {prompts} prompts x {len(strategies)} strategies"
                 + (f" from {meta['prompt_source']} ({meta['prompt_set_hash']})" if meta.get("prompt_source") else ""))
    last = meta.get("last_run") or {}
    if last:
        run = f"- last run: {last.get('sets', 0)} sets in {last.get('seconds', 0):.0f} s"
        conc = last.get("concurrency")
        if conc and conc.get("interrupted_streams"):
            run += (f"; the server interrupted {conc['interrupted_streams']} streams, concurrency "
                    f"{conc['start']} -> {conc['end']}")
        lines.append(run)
    if failed:
        lines.append(f"- **{failed} sets failed** (an empty, failed or interrupted answer, or a k-at-once reply short of n answers): not scored; rerun to retry")
    tokens = sum(r.get("completion_tokens") or 0 for r in ok)
    if tokens:
        lines.append(f"- {tokens} tokens generated in the scored sets")
    for note in meta.get("notes") or []:
        lines.append(f"- **warning:** {note}")
    lines += [
        "",
        f"## Mean functionally unique answers (out of {n})",
        "",
        "Each cell: mean ± half-width of the 95 % interval (number of prompts). A wants 1 (one correct "
        "answer); D wants the same final answer with different strategies; every other category wants "
        "as many as possible.",
        "",
        _table(rows, "unique", strategies, ".2f", with_interval=True),
    ]
    if "truncated" in (rows[0] if rows else {}) or failed:
        lines += ["## Failed sets / truncated answers (finish reason \"length\")", "",
                  _failures_table(rows, strategies)]
    lines += [
        "## Vocabulary diversity (1 - Jaccard, mean over pairs)", "",
        _table(rows, "vocabulary_diversity", strategies, ".3f"),
        "## Embedding diversity (1 - cosine, mean over pairs)", "",
        _table(rows, "embedding_diversity", strategies, ".3f"),
        "## Compression ratio (gzip of the n answers; higher = more repetitive)", "",
        _table(rows, "compression_ratio", strategies, ".2f"),
    ]
    agree_rows = [{**r, "agree": None if r.get("answers_agree") is None else float(r["answers_agree"])}
                  for r in ok if r["category"] in ("A", "D")]
    if agree_rows:
        lines += ["## Final answers agree (share of sets, A and D)", "", _table(agree_rows, "agree", strategies, ".0%")]
    has_quality = any(r.get("quality") is not None for r in ok)
    if has_quality:
        lines += ["## Checklist quality (1-5, mean)", "", _table(rows, "quality", strategies, ".2f")]
    accuracy = _self_classification(rows)
    if accuracy:
        lines += ["## Self-classification accuracy (the model's own label against the given one)", "", accuracy]
    view = quality_diversity(rows, strategies)
    lines += ["## Quality and diversity per strategy (the paper's Figure 3)", "", _qd_table(view, n)]
    if ok:
        chart = write_chart(ok, out / "chart.png", strategies, n)
        lines += ["## Charts", "", f"![mean unique answers]({chart.name})" if chart else f"_{NO_CHART}_", ""]
        if has_quality:
            scatter = write_scatter(view, out / "quality_diversity.png", n)
            lines += [f"![quality against diversity]({scatter.name})" if scatter else "", ""]
        else:
            lines += ["(no quality scores: run with --quality for the quality-diversity chart)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


NO_CHART = "no chart: matplotlib is not installed (pip install 'taskdiv-chat[bench]')"


def _pyplot():
    """matplotlib's pyplot, or None when the `bench` extra is not installed."""
    try:
        import matplotlib  # imported here: charts are an optional part of a run
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_chart(rows: list[dict], path: Path, strategies: list[str], n: int) -> Path | None:
    """The bar chart of mean unique answers; None when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        path.unlink(missing_ok=True)  # a chart of an earlier run would not match this report
        return None
    means = aggregate(rows, "unique")
    letters = _letters(rows)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(letters) + 2), 4), dpi=110)
    width = 0.8 / max(1, len(strategies))
    for k, strategy in enumerate(strategies):
        xs = [i + (k - (len(strategies) - 1) / 2) * width for i in range(len(letters))]
        ax.bar(xs, [means.get((c, strategy), 0) for c in letters], width, label=strategy)
    ax.set_xticks(range(len(letters)))
    ax.set_xticklabels([f"{c}\n{taxonomy.get(c).short}" if taxonomy.get(c) else c for c in letters])
    ax.set_ylim(0, n + 0.3)
    ax.set_ylabel(f"mean unique answers (of {n})")
    ax.set_title("Functionally unique answers per category and strategy")
    ax.legend(fontsize=8, ncol=min(5, len(strategies)), loc="upper center", bbox_to_anchor=(0.5, -0.18))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_scatter(view: dict, path: Path, n: int) -> Path | None:
    """Checklist quality (x) against functional and vocabulary diversity (y), one point per strategy."""
    plt = _pyplot()
    if plt is None:
        path.unlink(missing_ok=True)
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    panels = (("unique", f"mean functionally unique answers (of {n})"), ("vocabulary_diversity", "vocabulary diversity"))
    for ax, (field, label) in zip(axes, panels):
        for strategy, v in view.items():
            if v["quality"] is None or v[field] is None:
                continue
            ax.scatter(v["quality"], v[field], s=50)
            ax.annotate(strategy, (v["quality"], v[field]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel("checklist quality (1-5)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle("Quality against diversity per strategy")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
