"""What the CLI prints: stage tables, the top rules, the evaluation, the truth score, the promotion decision."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlspark.demo.truth import TruthScore
    from dlspark.report import StageReport


def format_reports(reports: list[StageReport]) -> str:
    """A small table a person can read: rows in and out of each stage, and why rows were set aside."""
    header = f"{'stage':<8} {'rows in':>11} {'rows out':>11} {'quarantined':>12} {'removed':>9} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for r in reports:
        seconds = "skipped" if r.skipped else f"{r.seconds:.1f}"
        lines.append(
            f"{r.stage:<8} {r.rows_in:>11,} {r.rows_out:>11,} {r.quarantined_total:>12,} "
            f"{sum(r.removed.values()):>9,} {seconds:>8}"
        )
    if any(r.skipped for r in reports):
        lines.append("  skipped: up to date (same inputs and settings); the figures are from its last run")
    for r in reports:
        if r.quarantined:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r.quarantined.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {r.stage} quarantine: {reasons}")
        if r.removed:
            lines.append("  " + r.stage + " removed: " + ", ".join(f"{k} {v:,}" for k, v in r.removed.items()))
        for whole in r.details.get("files_quarantined", []):
            lines.append(
                f"  {r.stage} quarantined the whole file {whole['path']} ({whole['reason']}: {whole['detail']})"
            )
        interesting = {
            k: v for k, v in r.details.items() if not k.startswith("rows_in.") and not isinstance(v, list | dict)
        }
        if interesting:
            lines.append(
                "  " + r.stage + ": " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in interesting.items())
            )
    return "\n".join(lines)


def format_rules(rules: list[dict[str, Any]]) -> str:
    """The top rules as a table: lift, confidence, support, and the rule in product names."""
    if not rules:
        return "No rules at this support and confidence (mining.min_support, mining.min_confidence)."
    lines = [f"{'lift':>7} {'conf':>5} {'support':>8} {'conviction':>10}  rule", "-" * 72]
    for rule in rules:
        conviction = rule["conviction"] if isinstance(rule["conviction"], str) else f"{rule['conviction']:.2f}"
        lines.append(
            f"{rule['lift']:>7.2f} {rule['confidence']:>5.2f} {rule['support']:>8.4f} {conviction:>10}  "
            f"{' + '.join(rule['antecedent_names'])}  ->  {rule['consequent_names'][0]}"
        )
    return "\n".join(lines)


def format_evaluation(result: dict[str, Any]) -> str:
    """The evaluation table: one row per recommender."""
    metrics = result["metrics"]
    names = list(next(iter(metrics.values())))
    header = f"{'recommender':<12}" + "".join(f"{n:>9}" for n in names)
    lines = [f"test split: {result['examples']:,} examples", header, "-" * len(header)]
    for recommender, row in metrics.items():
        lines.append(f"{recommender:<12}" + "".join(f"{row[n]:>9.4f}" for n in names))
    return "\n".join(lines)


def format_score(s: TruthScore) -> str:
    return "\n".join(
        [
            "Against the generator's ground truth:",
            f"  bad records: {s.planted_bad:,} planted, {s.bad_caught_with_right_reason:,} quarantined with the right "
            f"reason, {s.bad_caught_with_wrong_reason:,} with another reason, {s.bad_missed:,} missed; "
            f"{s.good_quarantined:,} good records quarantined",
            f"  replays: {s.replays_removed:,} removed of {s.expected_replays_removed:,} planted; "
            f"{s.events:,} events kept of {s.expected_events:,} expected; {s.duplicate_event_ids:,} duplicate ids left",
            f"  product merges: precision {s.merge_precision:.3f}, recall {s.merge_recall:.3f} "
            f"({s.predicted_pairs:,} id pairs merged, {s.true_pairs:,} true pairs)",
            f"  planted product groups: {s.planted_groups_found} of {s.planted_groups} found as frequent itemsets",
            f"  bad files: {s.bad_files:,} planted, {s.bad_files_quarantined:,} quarantined whole (right reason)",
            f"  CSV read by name: {s.reordered_records_kept:,} of {s.reordered_records_expected:,} good records kept "
            f"from {s.reordered_files:,} files with their columns in another order; "
            f"{s.quoted_newlines_kept:,} of {s.quoted_newlines:,} records with a quoted line break kept whole",
        ]
    )


def format_promotion(evaluate: StageReport) -> str:
    """The model version a pipeline kept, and whether it became current."""
    from dlspark.train.versions import describe

    entry = evaluate.details["promotion"]
    return f"\nModel {entry['version']} (models/{entry['version']}): {describe(entry)}"


def print_run(reports: list[StageReport], truth: str | None = None) -> None:
    """The summary of a run: the stage table, the top rules, the truth score, the evaluation and the promotion."""
    by_stage = {report.stage: report for report in reports}
    print(format_reports(reports))
    if "mine" in by_stage:
        print()
        print(format_rules(by_stage["mine"].details["top_rules"]))
    if truth:
        print()
        print(truth)
    if "evaluate" in by_stage:
        print()
        print(format_evaluation(by_stage["evaluate"].details["evaluation"]))
        if "promotion" in by_stage["evaluate"].details:
            print(format_promotion(by_stage["evaluate"]))
