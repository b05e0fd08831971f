"""The stages, in the order they run: the one registry the runner, the CLI and the scheduler derive from.

Adding a stage: write its module (a `run(ctx) -> StageReport` function) and add one `Stage` entry here
(docs/development.md shows a whole example). Entries name their functions ("module:function"), imported when
a stage runs, so the CLI starts without importing Spark. No stage imports another: what two stages share lives
in a library below them (dlspark.cleaning, dlspark.mining, dlspark.datasets, dlspark.manifest, dlspark.train).
"""

from __future__ import annotations

from dlspark.config import SHARDS_SETTINGS
from dlspark.stage import Registry, Stage, lazy, never

STAGES = Registry(
    (
        Stage(
            "ingest",
            lazy("dlspark.stages.ingest:run"),
            help="raw/ -> ingested/ + quarantine/",
            writes=("ingested", "quarantine/stage=ingest"),
            settings=("feeds", "ingest"),
            by_day=("ingested", "quarantine/stage=ingest"),
            check=lazy("dlspark.stages.ingest:check_inputs"),
            source=lazy("dlspark.stages.ingest:raw_listing"),
        ),
        Stage(
            "clean",
            lazy("dlspark.stages.clean:run"),
            help="ingested/ -> clean/ + quarantine/",
            reads=("ingested",),
            writes=("clean", "quarantine/stage=clean"),
            settings=("feeds", "clean"),
            by_day=("clean", "quarantine/stage=clean"),
        ),
        Stage(
            "dedup",
            lazy("dlspark.stages.dedup:run"),
            help="clean/ -> events/ + products/",
            reads=("clean",),
            writes=("events", "products"),
            settings=("dedup",),
            by_day=("events",),
        ),
        Stage(
            "mine",
            lazy("dlspark.stages.mine:run"),
            help="events/ -> mining/ (itemsets, rules with full metrics, popularity)",
            reads=("events",),
            writes=("mining",),
            settings=("mining",),
        ),
        Stage(
            "shards",
            lazy("dlspark.stages.shards:run"),
            help="events/ -> shards/{train,val,test}/ (Parquet training examples for Petastorm) + manifest",
            reads=("events",),
            writes=("shards",),
            settings=SHARDS_SETTINGS,
        ),
        Stage(
            "train",
            lazy("dlspark.stages.train:run"),
            help="shards/ -> model/ (Keras, fed by Petastorm, on the driver or on barrier tasks)",
            reads=("shards",),
            writes=("model",),
            settings=("train",),
            needs_spark=lazy("dlspark.stages.train:needs_spark"),
            start_ahead=lazy("dlspark.stages.train:start_ahead"),
        ),
        Stage(
            "evaluate",
            lazy("dlspark.stages.evaluate:run"),
            help="model/ + shards/test -> hit rate and MRR of the model, the rules and popularity",
            reads=("model", "shards"),
            writes=("model/evaluation", "model/evaluation.json"),
            settings=("train",),
            needs_spark=never,
            ends_pipeline=lazy("dlspark.stages.evaluate:promote_model"),
        ),
    )
)
