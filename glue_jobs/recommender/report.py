"""The training report: one self-contained HTML page with inline SVG charts (no plotting
library, so it renders the same from Glue, EMR or a laptop)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from glue_jobs.contracts import NEVER_PLAY_AGAIN, REPORT_FILE
from glue_jobs.recommender.metrics import RATING_BUCKETS, RunMetrics

WIDTH, HEIGHT, PAD = 560, 220, 40
COLOURS = ("#2f6db5", "#e07b39", "#3a9c5b", "#b54a6d", "#7b5cb8")


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> str:
    """Vertical bars with their values written on top."""
    if not bars:
        return f"<h3>{html.escape(title)}</h3><p>No data.</p>"
    top = max(v for _, v in bars) or 1.0
    slot = (WIDTH - 2 * PAD) / len(bars)
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 40}" width="{WIDTH}" role="img" '
             f'aria-label="{html.escape(title)}">']
    for i, (label, value) in enumerate(bars):
        h = (HEIGHT - 2 * PAD) * value / top
        x = PAD + i * slot + slot * 0.1
        y = HEIGHT - PAD - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" '
                     f'fill="{COLOURS[0]}"><title>{html.escape(label)}: {value:g}{unit}</title></rect>')
        parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{y - 4:.1f}" font-size="10" '
                     f'text-anchor="middle">{_short(value)}</text>')
        parts.append(f'<text x="{x + slot * 0.4:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
                     f'text-anchor="middle" transform="rotate(30 {x + slot * 0.4:.1f} '
                     f'{HEIGHT - PAD + 14})">{html.escape(label)}</text>')
    parts.append(f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>')
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], x_label: str,
               y_label: str) -> str:
    """One line per series over a shared numeric x axis (log-spaced x values are fine)."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<h3>{html.escape(title)}</h3><p>No data.</p>"
    xs = sorted({p[0] for p in points})
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    span = (y_hi - y_lo) or 1.0

    def sx(x: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * (xs.index(x) / max(len(xs) - 1, 1))

    def sy(y: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (y - y_lo) / span

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT + 20}" width="{WIDTH}" role="img" '
             f'aria-label="{html.escape(title)}">']
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(pts))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in pts:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                         f'<title>{html.escape(name)}, {x_label}={x:g}: {y:.4f}</title></circle>')
        parts.append(f'<text x="{WIDTH - PAD + 4}" y="{PAD + 14 * i}" font-size="11" '
                     f'fill="{colour}">{html.escape(name)}</text>')
    for x in xs:
        parts.append(f'<text x="{sx(x):.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{x:g}</text>')
    parts.append(f'<text x="{PAD}" y="{PAD - 8}" font-size="10">{html.escape(y_label)} '
                 f'({y_lo:.4g} .. {y_hi:.4g})</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT + 10}" font-size="11" '
                 f'text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def _short(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.3g}"


def _metrics_table(metrics: RunMetrics) -> str:
    test, base, k = metrics.test, metrics.baselines, metrics.k
    model, pop = test.ranking, base.popularity
    rows = [
        ("RMSE (lower is better)", test.rmse, base.bias_rmse, base.global_mean_rmse),
        ("MAE", test.mae, base.bias_mae, base.global_mean_mae),
        (f"precision@{k}", model.precision_at_k, pop.precision_at_k, None),
        (f"recall@{k}", model.recall_at_k, pop.recall_at_k, None),
        (f"NDCG@{k}", model.ndcg_at_k, pop.ndcg_at_k, None),
        (f"MAP@{k}", model.map_at_k, pop.map_at_k, None),
    ]

    def cell(v: Any) -> str:
        return "&ndash;" if v is None else f"{v:.4f}"

    body = "".join(f"<tr><td>{html.escape(n)}</td><td>{cell(m)}</td><td>{cell(b)}</td><td>{cell(g)}</td></tr>"
                   for n, m, b, g in rows)
    return ("<table><tr><th>metric (test split)</th><th>model</th><th>bias / popularity baseline</th>"
            f"<th>global mean</th></tr>{body}</table>")


def model_choice(metrics: RunMetrics) -> str:
    """Which model won on validation, and by how much, from the grid ("" when the run measured
    none, or no bias-only candidate: implicit feedback, a reused run)."""
    metric, best = metrics.selection_metric, metrics.best_params
    grid = [g for g in metrics.grid if metric in g and g[metric] is not None]
    bias = [g[metric] for g in grid if g["rank"] == 0]
    als = [g for g in grid if g["rank"] != 0]
    if not bias or not als:
        return ""
    lower_better = metric == "rmse"
    top = (min if lower_better else max)(als, key=lambda g: g[metric])
    if best.rank == 0:
        gap = (top[metric] - bias[0]) / (bias[0] or 1) if lower_better else (bias[0] - top[metric]) / (top[metric] or 1)
        return (f"The bias-only model (rank 0, no factors) won on validation {metric} ({bias[0]:.4g}): the best "
                f"ALS candidate (rank {top['rank']}, regParam {top['reg_param']:g}, {top[metric]:.4g}) was "
                f"{gap:.1%} worse.{blend_line(metrics)}")
    won = next(g for g in als if (g["rank"], g["reg_param"]) == (best.rank, best.reg_param))
    gain = (bias[0] - won[metric]) / (bias[0] or 1) if lower_better else (won[metric] - bias[0]) / (bias[0] or 1)
    return (f"ALS rank {best.rank}, regParam {best.reg_param:g} won on validation {metric} ({won[metric]:.4g}), "
            f"{gain:.1%} better than the bias-only model ({bias[0]:.4g})."
            f"{shrinkage_line(metrics)}{blend_line(metrics)}")


def blend_line(metrics: RunMetrics) -> str:
    """" Ranked with the implicit companion ..." or why not, when the run had a blend stage, else ""."""
    curve = metrics.blend_curve
    if not curve:
        return ""
    unblended, best = curve[0], max(curve, key=lambda p: p["ndcg_at_k"])
    k, chosen = metrics.k, metrics.best_params.blend_weight
    if chosen > 0:
        return (f" The ranking blends in the implicit companion at weight {chosen:g} (--blend-weights; validation "
                f"NDCG@{k} {best['ndcg_at_k']:.4g} against {unblended['ndcg_at_k']:.4g} unblended).")
    return (f" The implicit companion did not rank better on validation (NDCG@{k} {best['ndcg_at_k']:.4g} at best "
            f"against {unblended['ndcg_at_k']:.4g} unblended): not blended.")


def shrinkage_line(metrics: RunMetrics) -> str:
    """" Biases shrunk by 100 ..." when several --bias-reg values were tried, else ""."""
    curve, metric = metrics.bias_reg_curve, metrics.selection_metric
    chosen = next((p for p in curve if p["bias_reg"] == metrics.best_params.bias_reg), None)
    if chosen is None or metric not in chosen:
        return ""
    first = curve[0]
    return (f" Biases shrunk by {chosen['bias_reg']:g} (--bias-reg; {metric} {chosen[metric]:.4g} against "
            f"{first[metric]:.4g} at {first['bias_reg']:g}); the bias baseline's by "
            f"{metrics.baselines.bias_reg if metrics.baselines.bias_reg is not None else chosen['bias_reg']:g}.")


def similar_line(metrics: RunMetrics) -> str:
    """How many artists got a similar-artists list ("fans also like"), or why none did."""
    n = metrics.counts
    if n.similar_lists:
        return f"Similar artists: {n.similar_lists:,} artists got a list ({n.similar_artists:,} rows)."
    if metrics.best_params.rank == 0:
        return "Similar artists: none this run (rank 0: no artist factors to compare)."
    return "Similar artists: none this run (no two artists with enough ratings, --min-artist-ratings)."


def _share(v: float | None) -> str:
    return "&ndash;" if v is None else f"{v:.1%}"


def _count(v: int | None) -> str:
    return "&ndash;" if v is None else f"{v:,}"


def input_section(metrics: RunMetrics) -> str:
    """This run's input profile beside the published run's it was compared with (the input guard),
    the previous run's report linked (runs sit side by side under a runs root)."""
    now, found = metrics.input_profile, metrics.input_guard
    if now is None:
        return ""
    before = found.previous_profile if found else None
    prev_id = found.previous_run_id if found else None
    head = "previous run"
    if prev_id:
        link = f"../{html.escape(prev_id)}/{REPORT_FILE}"
        head = f'previous run <a href="{link}">{html.escape(prev_id)}</a>'
    rows = [("learnable ratings", _count(now.ratings), _count(found.previous_ratings if found else None)),
            ("users", _count(now.users), _count(before.users if before else None)),
            ("artists", _count(now.artists), _count(before.artists if before else None)),
            (f"share of {NEVER_PLAY_AGAIN} (never play again)", _share(now.never_play_again_share),
             _share(before.never_play_again_share if before else None)),
            ("quarantined share of input rows", _share(now.quarantine_share),
             _share(before.quarantine_share if before else None))]
    rows += [(f"ratings {label}", _share(share), _share(before.shares[i] if before else None))
             for i, (label, share) in enumerate(zip(RATING_BUCKETS, now.shares, strict=True))]
    body = "".join(f"<tr><td>{html.escape(n)}</td><td>{a}</td><td>{b}</td></tr>" for n, a, b in rows)
    return (f"<h3>Input, beside the previous run</h3><p>{html.escape(guard_line(metrics))}</p>"
            f"<table><tr><th>input</th><th>this run</th><th>{head}</th></tr>{body}</table>")


def guard_line(metrics: RunMetrics) -> str:
    """The input guard's verdict in a sentence."""
    found = metrics.input_guard
    if found is None:
        return "Input guard: not run (a run from before the guard)."
    if found.verdict == "not compared":
        return f"Input guard: {found.reason}."
    tvd = "n/a" if found.histogram_tvd is None else f"{found.histogram_tvd:.3f}"
    verdict = "refused, overridden with --allow-shrink" if found.overridden else found.verdict
    return (f"Input guard: {verdict} ({found.reason}): learnable ratings {-(found.drop or 0.0):+.1%} "
            f"(refused below {-(found.max_shrink or 0.0):.0%}), histogram total variation distance {tvd} "
            f"(refused above {found.max_histogram_shift:g}).")


def render(metrics: RunMetrics, rating_hist: list[tuple[str, int]],
           score_hist: list[tuple[str, int]], score_title: str = "Recommendation scores") -> str:
    metric = metrics.selection_metric
    series: dict[str, list[tuple[float, float]]] = {}
    for cand in metrics.grid:
        if cand["rank"] == 0:  # the bias-only model has no regParam: model_choice states its figure
            continue
        series.setdefault(f"rank {cand['rank']}", []).append((cand["reg_param"], cand[metric]))
    best, gate, origin = metrics.best_params, metrics.quality_gate, metrics.tuning
    grid_title = f"Validation {metric} over the grid"
    if origin.reused:  # this run measured no grid: the run that tuned holds it
        chosen = f"tuning reused from {origin.reused_from}: {origin.reason}"
        grid_chart = f"<h3>{html.escape(grid_title)}</h3><p>Not measured: {html.escape(chosen)}.</p>"
    else:
        chosen = f"chosen on validation {metric}"
        grid_chart = line_chart(grid_title, series, "regParam", metric)
    q_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in metrics.quarantine.items())
    c_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in asdict(metrics.counts).items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Recommender run {html.escape(metrics.run_id)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.grid{{display:flex;flex-wrap:wrap;gap:2em}}</style></head>
<body><h1>Recommender run {html.escape(metrics.run_id)}</h1>
<p>Feedback: {html.escape(metrics.feedback)}. Best parameters: rank {best.rank},
regParam {best.reg_param} ({html.escape(chosen)}).
{html.escape(model_choice(metrics))}
Quality gate: <strong>{'passed' if gate.passed else 'failed'}</strong>.
Catalog coverage of the top-{metrics.top_n}: {metrics.catalog_coverage:.1%}.
{html.escape(similar_line(metrics))}</p>
{_metrics_table(metrics)}
<div class="grid">
<div>{grid_chart}</div>
<div>{bar_chart('Rating distribution (ratings learned from)', rating_hist)}</div>
<div>{bar_chart(score_title, score_hist)}</div>
<div>{bar_chart('Stage timings (s)', list(metrics.timings_s.items()), ' s')}</div>
</div>
<div class="grid"><div>{input_section(metrics)}</div><div><h3>Counts</h3><table>{c_rows}</table></div>
<div><h3>Quarantined rows by reason</h3><table>{q_rows}</table></div></div>
</body></html>
"""
