"""Score what the pipeline produced against the generator's ground truth (demo data only).

Everything is a Spark aggregation over truth/ and the stage outputs, so scoring scales with the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dlspark import fs
from dlspark.frames import one_row
from dlspark.layout import Layout
from dlspark.rawfiles import FILE_REASONS
from dlspark.report import report_path

GENERATED_EVENT_ID = r"(E\d{9}-\d{2})"
BAD_RECORDS_SCHEMA = "date string, feed string, file string, record int, kind string, event_id string"
FILES_SCHEMA = "file string, kind string, records int, bad_records int"
CASES_SCHEMA = "event_id string, case string"
RAW_FILE = r"(raw/[^/]+/date=[^/]+/[^/]+)$"  # a raw file's path below the data root, as truth/ names it
PRODUCTS_SCHEMA = (
    "product_id string, feed string, true_product_id string, name string, true_name string, category string"
)


@dataclass(frozen=True)
class TruthScore:
    planted_bad: int
    quarantined: int
    bad_caught_with_right_reason: int
    bad_caught_with_wrong_reason: int
    bad_missed: int
    good_quarantined: int
    expected_events: int
    events: int
    expected_replays_removed: int
    replays_removed: int
    duplicate_event_ids: int
    merge_precision: float
    merge_recall: float
    true_pairs: int
    predicted_pairs: int
    planted_groups: int
    planted_groups_found: int
    bad_files: int
    bad_files_quarantined: int  # with the right file-level reason
    reordered_files: int
    reordered_records_expected: int  # good records of the files whose header lists the columns in another order
    reordered_records_kept: int
    quoted_newlines: int  # good CSV records holding a quoted line break
    quoted_newlines_kept: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def quarantine_vs_truth(spark: SparkSession, root: Layout) -> DataFrame:
    """Planted bad records full-outer-joined to quarantine rows on event id: kind vs reason, side by side."""
    planted = (
        spark.read.schema(BAD_RECORDS_SCHEMA)
        .option("header", True)
        .option("recursiveFileLookup", True)  # the files carry their date; no partition column from the path
        .csv(root.path("truth", "bad_records"))
    )
    quarantined = (
        spark.read.parquet(root.quarantine())
        .where(~F.col("reason").isin(*FILE_REASONS))
        .select(
            F.coalesce(F.col("event_id"), F.regexp_extract("record", GENERATED_EVENT_ID, 1)).alias("event_id"),
            "reason",
            "stage",
        )
    )
    return planted.select("event_id", "kind").join(quarantined, "event_id", "full_outer")


def _truth_csv(spark: SparkSession, root: Layout, name: str, schema: str) -> DataFrame:
    return (
        spark.read.schema(schema)
        .option("header", True)
        .option("recursiveFileLookup", True)
        .csv(root.path("truth", name))
    )


def files_vs_truth(spark: SparkSession, root: Layout) -> tuple[int, int, int, int, int]:
    """(bad files planted, quarantined with the right reason, reordered files, their good records, those kept)."""
    planted = _truth_csv(spark, root, "files", FILES_SCHEMA)
    quarantined = (
        spark.read.parquet(root.quarantine("ingest"))
        .where(F.col("reason").isin(*FILE_REASONS))
        .select(F.regexp_extract("source_file", RAW_FILE, 1).alias("file"), F.col("reason").alias("kind"))
        .distinct()
    )
    bad = planted.where(F.col("kind") != "reordered_header")
    reordered = planted.where(F.col("kind") == "reordered_header")
    expected = int(one_row(reordered.agg(F.sum(F.col("records") - F.col("bad_records"))))[0] or 0)
    clean = spark.read.parquet(root.path("clean")).select(F.regexp_extract("source_file", RAW_FILE, 1).alias("file"))
    kept = clean.join(F.broadcast(reordered.select("file")), "file").count()
    return bad.count(), bad.join(quarantined, ["file", "kind"]).count(), reordered.count(), expected, kept


def quoted_newlines_kept(spark: SparkSession, root: Layout) -> tuple[int, int]:
    """(good records planted with a quoted line break, those found in clean/ as one record each)."""
    cases = _truth_csv(spark, root, "cases", CASES_SCHEMA).where("case = 'quoted_newline'").select("event_id")
    clean = spark.read.parquet(root.path("clean")).where(F.col("product_name").contains("\n")).select("event_id")
    return cases.distinct().count(), cases.join(clean, "event_id").distinct().count()


def truth_products(spark: SparkSession, root: Layout) -> DataFrame:
    """truth/products.csv: every source product id with the product it really is."""
    return spark.read.schema(PRODUCTS_SCHEMA).option("header", True).csv(root.path("truth", "products.csv"))


def pair_counts(assignments: DataFrame, group: str) -> int:
    """How many unordered pairs of ids share `group`."""
    sizes = assignments.groupBy(group).count()
    return int(one_row(sizes.agg(F.sum(F.col("count") * (F.col("count") - 1) / 2)))[0] or 0)


def merge_scores(spark: SparkSession, root: Layout) -> tuple[float, float, int, int]:
    """Pairwise precision and recall of product merges, over the source ids that appear in products/."""
    truth = truth_products(spark, root)
    found = spark.read.parquet(root.products).select("product_id", "canonical_product_id")
    both = found.join(truth.select("product_id", "true_product_id"), "product_id").cache()
    true_pairs = pair_counts(both, "true_product_id")
    predicted = pair_counts(both, "canonical_product_id")
    correct = pair_counts(both.withColumn("pair", F.concat_ws("|", "canonical_product_id", "true_product_id")), "pair")
    both.unpersist()
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    return precision, recall, true_pairs, predicted


def planted_groups_found(spark: SparkSession, root: Layout) -> tuple[int, int]:
    """(planted groups, groups found as a frequent itemset of their canonical products)."""
    groups = fs.read_json(root.path("truth", "planted.json"))["groups"]
    truth = truth_products(spark, root)
    canonical = (
        spark.read.parquet(root.products)
        .join(truth.select("product_id", "true_product_id"), "product_id")
        .groupBy("true_product_id")
        .agg(F.min("canonical_product_id").alias("canonical_product_id"))
    )
    members = spark.createDataFrame(
        [(g, p) for g, group in enumerate(groups) for p in group["true_product_ids"]],
        "group int, true_product_id string",
    )
    wanted = (
        members.join(canonical, "true_product_id")
        .groupBy("group")
        .agg(F.array_sort(F.collect_set("canonical_product_id")).alias("items"))
    )
    itemsets = spark.read.parquet(root.path("mining", "itemsets")).select("items")
    return len(groups), wanted.join(itemsets, "items").select("group").distinct().count()


def score(spark: SparkSession, root: Layout) -> TruthScore:
    summary = fs.read_json(root.path("truth", "summary.json"))
    joined = quarantine_vs_truth(spark, root)
    counts = one_row(
        joined.agg(
            F.sum(F.col("kind").isNotNull().cast("int")).alias("planted"),
            F.sum(F.col("reason").isNotNull().cast("int")).alias("quarantined"),
            F.sum((F.col("kind") == F.col("reason")).cast("int")).alias("right"),
            F.sum((F.col("kind") != F.col("reason")).cast("int")).alias("wrong"),
            F.sum((F.col("kind").isNotNull() & F.col("reason").isNull()).cast("int")).alias("missed"),
            F.sum((F.col("kind").isNull() & F.col("reason").isNotNull()).cast("int")).alias("good_quarantined"),
        )
    )
    events = spark.read.parquet(root.events)
    n_events = events.count()
    distinct_ids = events.select("event_id").distinct().count()
    dedup_report = fs.read_json(report_path(root.events))
    precision, recall, true_pairs, predicted_pairs = merge_scores(spark, root)
    n_groups, n_found = planted_groups_found(spark, root)
    bad_files, bad_files_right, reordered, reordered_expected, reordered_kept = files_vs_truth(spark, root)
    quoted, quoted_kept = quoted_newlines_kept(spark, root)
    return TruthScore(
        planted_bad=int(counts["planted"] or 0),
        quarantined=int(counts["quarantined"] or 0),
        bad_caught_with_right_reason=int(counts["right"] or 0),
        bad_caught_with_wrong_reason=int(counts["wrong"] or 0),
        bad_missed=int(counts["missed"] or 0),
        good_quarantined=int(counts["good_quarantined"] or 0),
        expected_events=int(summary["good_events"]),
        events=n_events,
        expected_replays_removed=int(summary["replay_copies"]),
        replays_removed=int(dedup_report["removed"]["replays"]),
        duplicate_event_ids=n_events - distinct_ids,
        merge_precision=round(precision, 4),
        merge_recall=round(recall, 4),
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        planted_groups=n_groups,
        planted_groups_found=n_found,
        bad_files=bad_files,
        bad_files_quarantined=bad_files_right,
        reordered_files=reordered,
        reordered_records_expected=reordered_expected,
        reordered_records_kept=reordered_kept,
        quoted_newlines=quoted,
        quoted_newlines_kept=quoted_kept,
    )
