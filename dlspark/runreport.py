"""The run report: reports/<run>/index.html with PNG figures, written at the end of `dlspark pipeline` and the demo.

One page a person can open after a scheduled run: records per stage and why rows were set aside, duplicates and
product merges, the top rules, the training curves, the evaluation against the baselines, seconds per stage.
Everything comes from the stage reports (the published `_report.json` of a stage the run skipped).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from dlspark import fs
from dlspark.layout import Layout
from dlspark.plots import plot_training, save_png
from dlspark.plots import pyplot as _pyplot
from dlspark.report import StageReport


def write_run_report(reports: list[StageReport], root: Layout, notes: str = "") -> str:
    """Write reports/<run>/index.html and its figures; returns the page's path."""
    run = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = root.path("reports", run)
    by_stage = {r.stage: r for r in reports}
    sections = [_stages_table(reports), _figure(out, "records.png", "Records per stage", _records(reports))]
    if any(r.quarantined for r in reports):
        sections.append(_figure(out, "quarantine.png", "Quarantine reasons", _reasons(reports)))
        reasons = [[r.stage, k, v] for r in reports for k, v in sorted(r.quarantined.items(), key=lambda x: -x[1])]
        sections.append(_table(["stage", "reason", "records"], reasons, text_columns=2))
    whole_files = by_stage["ingest"].details.get("files_quarantined") if "ingest" in by_stage else None
    if whole_files:
        rows = [[f["path"], f["reason"], f["detail"], f["size"], f["records"]] for f in whole_files]
        header = ["file", "reason", "detail", "bytes", "records"]
        sections.append("<h2>Files quarantined whole</h2>" + _table(header, rows, text_columns=3))
    if "dedup" in by_stage:
        sections.append(_dedup(by_stage["dedup"]))
    if "mine" in by_stage:
        sections.append(_rules(by_stage["mine"].details.get("top_rules", [])))
    log_path = f"{root.model}/training_log.csv"
    if "train" in by_stage and fs.exists(log_path):
        from dlspark.train.driver import read_log

        plot_training(read_log(log_path), f"{out}/training.png")
        sections.append(_image("Training curves", "training.png"))
    if "evaluate" in by_stage:
        evaluation = by_stage["evaluate"].details["evaluation"]
        sections.append(_evaluation(evaluation))
        sections.append(_figure(out, "evaluation.png", "Model against the baselines", _evaluation_bars(evaluation)))
        if "promotion" in by_stage["evaluate"].details:
            sections.append(_promotion(by_stage["evaluate"].details["promotion"]))
    sections.append(_figure(out, "seconds.png", "Seconds per stage", _seconds(reports)))
    if notes:
        sections.append(f"<h2>Notes</h2><pre>{html.escape(notes)}</pre>")
    page = _PAGE.format(run=run, root=html.escape(root.root), body="\n".join(sections))
    fs.write_bytes(f"{out}/index.html", page.encode())
    return f"{out}/index.html"


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>dlspark run {run}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td.text,th.text{{text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>dlspark run {run}</h1><p>Data root: <code>{root}</code></p>
{body}
</body></html>
"""


def _table(header: list[str], rows: list[list[Any]], text_columns: int = 1) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        shown = f"{value:,}" if isinstance(value, int) else f"{value:.4f}" if isinstance(value, float) else value
        kind = ' class="text"' if i < text_columns else ""
        return f"<{tag}{kind}>{html.escape(str(shown))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _stages_table(reports: list[StageReport]) -> str:
    rows = [
        [
            r.stage,
            r.rows_in,
            r.rows_out,
            r.quarantined_total,
            sum(r.removed.values()),
            "skipped (up to date)" if r.skipped else f"{r.seconds:.1f}",
            r.started_at,
        ]
        for r in reports
    ]
    header = ["stage", "rows in", "rows out", "quarantined", "removed", "seconds", "ran at"]
    return "<h2>Stages</h2>" + _table(header, rows)


def _figure(out: str, name: str, title: str, figure: Any) -> str:
    save_png(figure, f"{out}/{name}")
    return _image(title, name)


def _image(title: str, name: str) -> str:
    return f'<h2>{html.escape(title)}</h2><img src="{name}" alt="{html.escape(title)}">'


def _records(reports: list[StageReport]) -> Any:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.5))
    stages = [r.stage for r in reports]
    positions = range(len(stages))
    axis.bar([p - 0.2 for p in positions], [r.rows_in for r in reports], 0.4, label="rows in")
    axis.bar([p + 0.2 for p in positions], [r.rows_out for r in reports], 0.4, label="rows out")
    axis.set_xticks(list(positions), stages)
    axis.set_ylabel("records")
    axis.legend()
    return figure


def _reasons(reports: list[StageReport]) -> Any:
    plt = _pyplot()
    reasons = [(f"{r.stage}: {k}", v) for r in reports for k, v in sorted(r.quarantined.items(), key=lambda x: x[1])]
    figure, axis = plt.subplots(figsize=(9, 0.35 * len(reasons) + 1))
    axis.barh([name for name, _ in reasons], [count for _, count in reasons])
    axis.set_xlabel("records quarantined")
    return figure


def _dedup(report: StageReport) -> str:
    details = {k: v for k, v in report.details.items() if not isinstance(v, dict | list)}
    rows = [[k.replace("_", " "), v] for k, v in {**report.removed, **details}.items()]
    return "<h2>Duplicates and product merges</h2>" + _table(["figure", "value"], rows)


def _rules(rules: list[dict[str, Any]]) -> str:
    rows = [
        [
            " + ".join(rule["antecedent_names"]) + "  \u2192  " + rule["consequent_names"][0],
            float(rule["lift"]),
            float(rule["confidence"]),
            float(rule["support"]),
            rule["conviction"] if isinstance(rule["conviction"], str) else float(rule["conviction"]),
        ]
        for rule in rules
    ]
    return "<h2>Top rules by lift</h2>" + _table(["rule", "lift", "confidence", "support", "conviction"], rows)


def _evaluation(evaluation: dict[str, Any]) -> str:
    metrics = evaluation["metrics"]
    names = list(next(iter(metrics.values())))
    rows = [[who, *(float(values[m]) for m in names)] for who, values in metrics.items()]
    title = f"<h2>Evaluation on the test split ({evaluation['examples']:,} examples)</h2>"
    return title + _table(["recommender", *names], rows)


def _promotion(entry: dict[str, Any]) -> str:
    """The decision, and where there was a current model, both models on the same test examples with the interval."""
    from dlspark.train.versions import describe

    decision = f"<h2>Promotion</h2><p>Model {entry['version']}: {html.escape(describe(entry))}</p>"
    comparison = entry.get("comparison")
    if not comparison:
        return decision
    names = list(comparison["challenger"])
    rows = [
        [f"{entry['version']} (new)", *(float(comparison["challenger"][m]) for m in names)],
        [f"{entry['current_before']} (current before)", *(float(comparison["champion"][m]) for m in names)],
    ]
    low, high = comparison["interval"]
    gate = (
        f"<p>Difference in {html.escape(comparison['metric'])}: {comparison['difference']:+.4f}, "
        f"{100 * comparison['confidence']:.0f}% paired bootstrap interval [{low:+.4f}, {high:+.4f}]; promoted unless "
        f"the whole interval is below -{comparison['margin']} (the margin). Test labels the current model never saw: "
        f"{comparison['champion_unseen_labels']:,}.</p>"
    )
    return decision + _table(["model", *names], rows) + gate


def _evaluation_bars(evaluation: dict[str, Any]) -> Any:
    plt = _pyplot()
    metrics = evaluation["metrics"]
    names = list(next(iter(metrics.values())))
    figure, axis = plt.subplots(figsize=(9, 3.5))
    width = 0.8 / len(metrics)
    for i, (who, values) in enumerate(metrics.items()):
        axis.bar([p + i * width for p in range(len(names))], [values[m] for m in names], width, label=who)
    axis.set_xticks([p + width * (len(metrics) - 1) / 2 for p in range(len(names))], names)
    axis.legend()
    return figure


def _seconds(reports: list[StageReport]) -> Any:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3))
    axis.bar([r.stage for r in reports], [0 if r.skipped else r.seconds for r in reports])
    axis.set_ylabel("seconds (0: skipped)")
    return figure
