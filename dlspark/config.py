"""Typed, validated configuration: conf/base.yaml, then the environment's file, then --set overrides.

Everything is checked before any Spark work starts; a bad key fails with its dotted name and its value.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dlspark.digest import short_hash
from dlspark.errors import ConfigError
from dlspark.layout import Layout
from dlspark.schemas import CANONICAL_FIELDS, REQUIRED_FIELDS

DEFAULT_CONFIG = Path("conf/local.yaml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkConfig(_Section):
    """How to build the SparkSession. Under spark-submit, `master` is ignored: spark-submit's --master wins."""

    master: str = "local[*]"
    app_name: str = "dlspark"
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    executor_python: str | None = Field(
        None, description="Python the executors run; local masters default to the driver's own interpreter."
    )
    ship_package: bool = Field(False, description="Zip the dlspark package and add it to the executors' path.")
    conf: dict[str, str] = {}


class DataConfig(_Section):
    """One data root; every stage reads and writes below it (see docs/stages.md, 'Data layout')."""

    root: str
    date: dt.date | None = Field(
        None,
        description="Set by --date: ingest, clean and dedup process only this day's raw files and replace only "
        "its partitions (a daily incremental run); empty: every day.",
    )

    @property
    def layout(self) -> Layout:
        """Where every dataset lives under the root."""
        return Layout.at(self.root)


class FeedConfig(_Section):
    """One raw feed: where its files are, their format, and which source field holds each canonical field."""

    format: Literal["csv", "json", "parquet"]
    path: str = Field(description="Directory under raw/ holding date=YYYY-MM-DD/ folders of files.")
    fields: list[str] | None = Field(
        None, description="CSV: the columns a file may hold (checked against columns); files are read by header name."
    )
    columns: dict[str, str] = Field(description="canonical field -> source field")
    encoding: str = Field("utf-8", description="The files' text encoding; a byte-order mark (UTF-8/16/32) wins.")
    time_format: str | None = Field(None, description="Spark datetime pattern; empty means ISO 8601.")
    options: dict[str, str] = Field({}, description="CSV: sep, the one-character delimiter (default ',').")

    @property
    def delimiter(self) -> str:
        """A CSV feed's delimiter: options.sep (or options.delimiter), else a comma."""
        return self.options.get("sep", self.options.get("delimiter", ","))

    @field_validator("path")
    @classmethod
    def _inside_raw(cls, path: str) -> str:
        parts = path.replace("\\", "/").split("/")
        if path.startswith(("/", "~")) or "://" in path or ".." in parts or not path.strip("/. "):
            raise ValueError(
                "must be a directory below data.root/raw/, e.g. 'tills'; a path outside the data root is refused "
                "(point data.root at the data instead)"
            )
        return path

    @model_validator(mode="after")
    def _check_mapping(self) -> FeedConfig:
        unknown = sorted(set(self.columns) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical field(s) {unknown} in columns; known: {list(CANONICAL_FIELDS)}")
        missing = [f for f in REQUIRED_FIELDS if f not in self.columns]
        if missing:
            raise ValueError(f"columns must map the required field(s) {missing}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(
                f"encoding {self.encoding!r} is not a text encoding Python knows (e.g. utf-8, cp1252)"
            ) from None
        unknown_options = sorted(set(self.options) - {"sep", "delimiter"})
        if unknown_options or (self.options and self.format != "csv"):
            raise ValueError(
                f"options {unknown_options or sorted(self.options)} not understood: dlspark reads raw files itself and "
                "takes one option, sep (a CSV feed's delimiter); encoding and time_format are keys of the feed itself"
            )
        if len(self.delimiter) != 1 or self.delimiter in '"\r\n':
            raise ValueError(
                f"options.sep {self.delimiter!r} must be one character, not a quote or a line break "
                '(a tab: sep: "\\t" in the YAML file, in double quotes)'
            )
        if self.fields is not None:
            absent = sorted(set(self.columns.values()) - set(self.fields))
            if absent:
                raise ValueError(f"columns name source field(s) {absent} that are not in fields {self.fields}")
        return self


class IngestConfig(_Section):
    """Reading the raw files."""

    max_file_mb: int | None = Field(
        2048,
        ge=1,
        description="The most a raw file may hold, decompressed, in MiB: one task reads a file whole, so a larger "
        "one is quarantined whole (file_too_large) instead of exhausting the task's memory. Empty: no limit.",
    )


class CleanConfig(_Section):
    """Validation bounds; a row outside them is quarantined with the rule's name as its reason."""

    max_quantity: int = Field(10_000, gt=0, lt=2**31)
    max_unit_price: float = Field(1_000_000.0, gt=0, le=1e9)
    min_date: dt.date = Field(dt.date(1970, 1, 1), description="Event times before this day are time_out_of_range.")
    max_date: dt.date = Field(dt.date(2100, 1, 1), description="Event times from this day on are time_out_of_range.")

    @model_validator(mode="after")
    def _check_dates(self) -> CleanConfig:
        if self.min_date >= self.max_date:
            raise ValueError(f"min_date {self.min_date} must come before max_date {self.max_date}")
        return self


class DedupConfig(_Section):
    """Replay removal and product resolution (MinHash LSH over character shingles of normalised names)."""

    shingle_size: int = Field(3, ge=2, le=8)
    bands: int = Field(16, ge=1, description="LSH bands; more bands find more candidate pairs.")
    rows_per_band: int = Field(2, ge=1, description="MinHash values per band; more rows, fewer candidates.")
    min_similarity: float = Field(0.5, gt=0, le=1, description="Jaccard similarity needed to merge two ids.")
    same_category: bool = Field(True, description="Only compare products of the same category (blocking).")
    same_sizes: bool = Field(True, description="Only merge names whose sizes ('1l', '6pk') agree.")
    max_word_edits: int = Field(
        2, ge=0, description="Letter edits allowed between the words two names do not share (a swap is 2)."
    )
    driver_names: int = Field(
        50_000,
        ge=0,
        description="Up to this many distinct product names, similar names are found on the driver (the same "
        "MinHash LSH, in numpy); above it, by Spark jobs.",
    )
    driver_components_pairs: int = Field(
        1_000_000,
        ge=0,
        description="Up to this many similar-name pairs, products are joined on the driver in one pass "
        "(scipy); above it, by rounds of Spark jobs.",
    )
    max_iterations: int = Field(20, ge=1, description="Cap on connected-components rounds (of Spark jobs).")
    seed: int = 42


class MineConfig(_Section):
    """Association mining with FP-growth, and the guard rail that refuses a run that would explode."""

    engine: Literal["pfp", "spark"] = Field(
        "pfp", description="pfp: parallel FP-growth with dlspark's local miner; spark: pyspark.ml.fpm.FPGrowth."
    )
    min_support: float = Field(0.01, gt=0, le=1)
    min_confidence: float = Field(0.2, ge=0, le=1)
    num_partitions: int | None = Field(
        None,
        ge=1,
        description="FP-growth's item groups (partitions); empty means the task slots (pfp) or Spark's default.",
    )
    max_itemset_length: int = Field(5, ge=2, description="Itemsets longer than this are not kept (or used for rules).")
    max_itemsets: int = Field(
        2_000_000, ge=1, description="Refuse to mine when the itemsets could be more than this (an upper bound)."
    )
    window_days: int | None = Field(None, ge=1, description="Mine only the last N days up to end_date.")
    end_date: dt.date | None = Field(None, description="Last day mined; empty means the last day in events/.")
    top_rules: int = Field(10, ge=1, description="How many rules (by lift) the report and the CLI show.")
    recommendations: int = Field(10, ge=1, description="How many products a recommender returns per basket.")


ROW_GROUP_ROWS = (1024, 65_536)  # the bounds of `shards.rows_per_row_group: auto` (docs/training.md)
ROW_GROUPS_PER_READER = 4  # what `auto` aims for: each reader shuffles across at least this many row groups


class ShardsConfig(_Section):
    """Training examples (basket completion) split by time and written as Parquet shards for Petastorm."""

    test_days: int = Field(2, ge=1, description="The last N days are the test split.")
    val_days: int = Field(1, ge=1, description="The N days before the test days are the validation split.")
    window_days: int | None = Field(None, ge=1, description="Use only the last N days of events/ (all: empty).")
    max_items: int = Field(16, ge=1, description="Input products kept per example (a basket's first N lines).")
    max_products: int | None = Field(
        None, ge=1, description="Vocabulary cap: the N products most bought in training; the rest are 'unknown'."
    )
    max_customers: int | None = Field(
        None, ge=1, description="Vocabulary cap: the N customers with most training orders; the rest are 'unknown'."
    )
    rows_per_row_group: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="Rows per Parquet row group (the readers read, shuffle and shard whole row groups); auto: sized "
        "from the training rows and the trainer's readers (train.workers in barrier mode), within 1,024..65,536.",
    )
    end_date: dt.date | None = Field(None, description="Last day used; empty means the last day in events/.")
    rows_per_file: int = Field(1_048_576, ge=1, description="Rows per shard file (at least one file per split).")
    seed: int = 17
    rule_folds: int = Field(
        4,
        ge=1,
        description="Training examples get rule features mined without their own day: the training days in this "
        "many folds, each mined on the others (1: rules of all training days, as for validation and test).",
    )


class ModelConfig(_Section):
    """Which Keras model to build, and its sizes."""

    kind: Literal["bag", "gru"] = Field(
        "bag", description="bag: mean of product embeddings + MLP; gru: a GRU over the basket's products."
    )
    embedding_dim: int = Field(32, ge=1, description="Size of the product embeddings.")
    customer_dim: int = Field(
        8, ge=1, description="Size of the customer embedding; small, as most customers have few orders to learn from."
    )
    customer_l2: float = Field(1e-3, ge=0, description="L2 penalty on the customer embedding (against memorising).")
    hidden_units: list[int] = Field([128], description="Dense layers after the basket, customer and rule inputs.")
    recurrent_units: int = Field(64, ge=1, description="GRU units (kind: gru).")
    dropout: float = Field(0.2, ge=0, lt=1)
    use_customer: bool = Field(True, description="Feed the customer's index (an embedding).")
    use_rules: bool = Field(True, description="Feed what the mined rules recommend for the input basket.")


class TrainConfig(_Section):
    """How the model is trained and where its artifacts go."""

    model: ModelConfig = ModelConfig()
    mode: Literal["driver", "barrier"] = Field(
        "driver", description="driver: Keras fit on the driver; barrier: one TensorFlow worker per Spark barrier task."
    )
    workers: int = Field(2, ge=1, description="barrier mode: TensorFlow workers (Spark barrier tasks).")
    attempts: int = Field(3, ge=1, description="barrier mode: submissions of the barrier job before giving up.")
    slots_wait_s: float = Field(60, ge=0, description="barrier mode: how long to wait for enough free task slots.")
    start_ahead_s: float = Field(
        1800,
        ge=0,
        description="barrier mode, pipeline runs: the workers start (and import TensorFlow) as the stage before "
        "train starts, and wait this long for the barrier job; 0: they start with the job.",
    )
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(256, ge=1)
    learning_rate: float = Field(0.003, gt=0)
    patience: int | None = Field(4, ge=1, description="Early stopping after N epochs without a better val_loss.")
    seed: int = 1
    reader: Literal["auto", "petastorm", "arrow"] = Field(
        "auto",
        description="What streams the shards into tf.data: petastorm, or dlspark's arrow reader (pyarrow.dataset "
        "row groups; for pyarrow >= 15, where Petastorm cannot run); auto: Petastorm wherever it imports.",
    )
    reader_pool: Literal["thread", "process", "dummy"] = Field("thread", description="Petastorm's reader pool.")
    reader_workers: int = Field(2, ge=1, description="Reader threads (Petastorm's workers, or the arrow reader's).")
    shuffle_row_groups: bool = True
    deterministic: bool = Field(
        False,
        description="TensorFlow op determinism, one thread and one Petastorm reader: the same weights from the same "
        "shards and settings, bit for bit, but slower (docs/training.md).",
    )
    prefetch: int = Field(4, ge=0, description="Training batches tf.data prepares ahead of the model.")
    top_k: list[int] = Field([1, 5, 10], description="Hit rate is reported at each of these k (MRR at the largest).")
    warm_start: bool = Field(
        True, description="Start from the current model's weights (models/current) where the vocabularies allow."
    )
    promotion_metric: str = Field(
        "hit@10", description="Test metric of the model that decides promotion: hit@K (K in top_k) or mrr@max(top_k)."
    )
    promotion_margin: float = Field(
        0.01,
        ge=0,
        description="Promote unless the new model is worse than the current one by more than this (in the "
        "promotion metric, both scored on the new test split) at promotion_confidence.",
    )
    promotion_confidence: float = Field(0.95, gt=0, lt=1, description="Of the paired bootstrap interval.")
    promotion_resamples: int = Field(1000, ge=100, description="Bootstrap resamples of the test examples.")

    @model_validator(mode="after")
    def _check_metric(self) -> TrainConfig:
        known = [f"hit@{k}" for k in self.top_k] + [f"mrr@{max(self.top_k)}"]
        if self.promotion_metric not in known:
            raise ValueError(f"promotion_metric {self.promotion_metric!r} is not one of the metrics reported: {known}")
        return self


class GenerateConfig(_Section):
    """Demo data: sizes and rates of what the generator plants."""

    orders: int = Field(20_000, gt=0)
    days: int = Field(14, gt=0)
    seed: int = 7
    start_date: dt.date = dt.date(2026, 1, 1)
    products: int = Field(300, ge=20)
    customers: int = Field(2_000, gt=0)
    groups: int = Field(10, ge=1)
    group_rate: float = Field(0.3, ge=0, le=1, description="Share of orders that contain a planted group.")
    replay_rate: float = Field(0.02, ge=0, le=1)
    bad_rate: float = Field(0.01, ge=0, le=0.5)
    orders_per_file: int = Field(200_000, gt=0)


class PipelineConfig(_Section):
    spark: SparkConfig = SparkConfig()
    data: DataConfig
    feeds: dict[str, FeedConfig]
    ingest: IngestConfig = IngestConfig()
    clean: CleanConfig = CleanConfig()
    dedup: DedupConfig = DedupConfig()
    mining: MineConfig = MineConfig()
    shards: ShardsConfig = ShardsConfig()
    train: TrainConfig = TrainConfig()
    generate: GenerateConfig = GenerateConfig()

    @model_validator(mode="after")
    def _check_feeds(self) -> PipelineConfig:
        if not self.feeds:
            raise ValueError("at least one feed is needed under 'feeds'")
        return self

    def for_day(self, day: dt.date) -> PipelineConfig:
        """The configuration of a daily run of `day` (what --date sets): that day's raw files, and the mining and
        shards windows ending on it."""
        return self.model_copy(
            update={
                "data": self.data.model_copy(update={"date": day}),
                "mining": self.mining.model_copy(update={"end_date": day}),
                "shards": self.shards.model_copy(update={"end_date": day}),
            }
        )


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> PipelineConfig:
    """Load base.yaml (beside the file), the file itself, then `key=value` overrides, and validate the result."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; pass --config conf/local.yaml (or another env file)")
    merged: dict[str, Any] = {}
    base = path.parent / "base.yaml"
    if base.is_file() and base.resolve() != path.resolve():
        merged = _read_yaml(base)
    merged = _deep_merge(merged, _read_yaml(path))
    merged.setdefault("data", {})  # so that a missing root is reported as data.root, the key to set
    for item in overrides:
        _apply_override(merged, item)
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_describe(err, path)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(merged: dict[str, Any], item: str) -> None:
    """Set one `section.key=value`; free-form maps (spark.conf, options) take the rest of the dotted name as key."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set data.root=/tmp/dlspark")
    parts = _split_key(key.strip())
    node = merged
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = _parse_value(raw.strip())


def _split_key(key: str) -> list[str]:
    words = key.split(".")
    parts: list[str] = []
    model: Any = PipelineConfig
    i = 0
    while i < len(words):
        parts.append(words[i])
        field = model.model_fields.get(words[i]) if isinstance(model, type) and issubclass(model, BaseModel) else None
        i += 1
        if field is None:
            continue  # unknown key: validation will name it
        model = field.annotation
        if typing.get_origin(model) is dict:
            value_type = typing.get_args(model)[1]
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                if i < len(words):  # the map's key, then the model's fields
                    parts.append(words[i])
                    i += 1
                model = value_type
            else:
                if i < len(words):  # free-form map: the rest is one key
                    parts.append(".".join(words[i:]))
                return parts
    return parts


def _parse_value(raw: str) -> Any:
    """Lists and maps are YAML (`[a, b]`); scalars stay strings and the field's type converts them."""
    if raw[:1] in "[{":
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set value {raw!r} is not valid YAML: {err}") from None
    if raw in ("null", "~"):
        return None
    return raw


def _describe(err: ValidationError, path: Path) -> str:
    lines = [f"invalid configuration (from {path} and --set):"]
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        given = problem.get("input")
        if problem["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (value {given!r}); check its spelling against conf/base.yaml")
        elif problem["type"] == "missing":
            lines.append(f"  {key}: required but not set; add it to the config file or pass --set {key}=...")
        else:
            message = problem["msg"].removeprefix("Value error, ")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)


def config_hash(cfg: PipelineConfig) -> str:
    """A short, stable fingerprint of the whole configuration, for reports."""
    return short_hash(cfg.model_dump_json())


# What the shards depend on: the row groups are sized for the trainer's readers when rows_per_row_group is auto.
SHARDS_SETTINGS = ("shards", "mining", "train.mode", "train.workers")


def row_group_rows(train_rows: int, cfg: PipelineConfig) -> int:
    """Rows per row group of the shards: the setting, or for `auto` enough row groups for every reader of the
    training split (train.workers in barrier mode, else one) to shuffle across ROW_GROUPS_PER_READER of them, within
    ROW_GROUP_ROWS, and never fewer row groups than readers (Petastorm gives each barrier worker whole row groups)."""
    if cfg.shards.rows_per_row_group != "auto":
        return cfg.shards.rows_per_row_group
    readers = cfg.train.workers if cfg.train.mode == "barrier" else 1
    low, high = ROW_GROUP_ROWS
    aimed = -(-train_rows // (readers * ROW_GROUPS_PER_READER))
    return max(1, min(max(aimed, low), high, -(-train_rows // readers)))


def settings_hash(cfg: PipelineConfig, settings: Iterable[str]) -> str:
    """A short fingerprint of some of the configuration (what a stage's result depends on): whole sections
    ("mining") and single keys ("train.workers")."""
    whole = cfg.model_dump(mode="json")
    chosen: dict[str, Any] = {s: whole[s] for s in settings if "." not in s}
    for key in (s for s in settings if "." in s):
        value = whole
        for word in key.split("."):
            value = value[word]
        chosen[key] = value
    return short_hash(json.dumps(chosen, sort_keys=True))
