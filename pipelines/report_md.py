"""Render the evaluation report (the dict from :func:`pipelines.report.compute_report`) as
Markdown that embeds its PNG plots by relative path."""

from __future__ import annotations

import math

CONVENTION_TEXT = {
    "empty=1": "lists with no relevant item count as 1 (LightGBM, allRank)",
    "empty=0": "lists with no relevant item count as 0 (TF-Ranking, Rax)",
    "dropped": "lists with no relevant item are left out",
}


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_markdown(report: dict) -> str:
    """The whole report as Markdown."""
    s = report["settings"]
    d = report["data"]
    base = report["baseline"]
    level = round(100 * s["confidence"])
    out = [
        "# Offline evaluation report",
        "",
        f"Test data: {', '.join(f'`{f}`' for f in d['files'])}: {d['rows']:,} rows, "
        f"{d['queries']:,} queries ({d['queries_without_relevant']} with no relevant item).",
        "",
        "Systems: "
        + "; ".join(f"**{x['name']}** ({x['kind']}: `{x['source']}`)" for x in report["systems"])
        + f". Baseline: **{base}**.",
        "",
        f"Means over queries with {level}% percentile-bootstrap intervals ({s['n_bootstrap']} "
        f"resamples of the queries, seed {s['seed']}). Ties: {s['ties']}; ERR top grade "
        f"{s['err_max_grade']:g}.",
        "",
    ]
    for conv, by_system in report["metrics"].items():
        out += [f"## Metrics, {conv}: {CONVENTION_TEXT.get(conv, conv)}", ""]
        rows = [
            [name]
            + [f"{_num(ci['mean'])} [{_num(ci['low'])}, {_num(ci['high'])}]" for ci in m.values()]
            for name, m in by_system.items()
        ]
        out += [*_table(["system", *s["metrics"]], rows), ""]
    conv = s["convention"]
    sig = report["significance"].get(conv, {})
    if sig:
        out += [
            f"## Significance against {base} ({conv})",
            "",
            f"Mean difference (system - {base}) with its {level}% bootstrap interval; p-values "
            f"of a two-sided paired randomisation (sign-flip) test with {s['n_permutations']} "
            "resamples (exact when all sign vectors fit) and of a paired t-test.",
            "",
        ]
        rows = []
        for name, by_metric in sig.items():
            for metric, t in by_metric.items():
                rows.append(
                    [
                        name,
                        metric,
                        f"{_num(t['delta'], 4)} [{_num(t['delta_low'])}, {_num(t['delta_high'])}]",
                        _p(t["p_randomization"]),
                        _p(t["p_ttest"]),
                        str(t["n"]),
                    ]
                )
        out += _table(
            ["system", "metric", "difference", "p (randomisation)", "p (t)", "queries"], rows
        )
        out += [""]
    plots = report.get("plots", {})
    if plots.get("ndcg_at_k"):
        out += [f"## NDCG@k ({conv})", "", f"![NDCG@k per system]({plots['ndcg_at_k']})", ""]
    for name, queries in report.get("queries", {}).items():
        out += [f"## {name} against {base}: per-query NDCG@10 ({conv})", ""]
        if name in plots.get("delta", {}):
            out += [f"![NDCG@10 differences of {name}]({plots['delta'][name]})", ""]
        for label, key in (("Gained most", "gained"), ("Lost most", "lost")):
            entries = queries[key]
            out += [f"{label}:", ""]
            if not entries:
                out += ["(none)", ""]
                continue
            rows = [
                [f"`{q['qid']}`", _num(q["baseline"]), _num(q["model"]), f"{q['delta']:+.4f}"]
                for q in entries
            ]
            out += [*_table(["query", base, name, "difference"], rows), ""]
    return "\n".join(out).rstrip() + "\n"
