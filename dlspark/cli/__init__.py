"""The `dlspark` command; jobs/*.py call the same `main` under spark-submit."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from dlspark import __version__
from dlspark.config import DEFAULT_CONFIG, PipelineConfig, load_config
from dlspark.errors import DlsparkError
from dlspark.stages import STAGES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# What a stage command runs after its own stage, so that its output shows the result: `dlspark train` evaluates.
THEN = {"train": ["evaluate"]}


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="environment config file; conf/base.yaml beside it is read first (default: %(default)s)",
    )
    common.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set data.root=/tmp/dlspark (repeatable)",
    )
    common.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")

    dated = argparse.ArgumentParser(add_help=False)
    dated.add_argument(
        "--date",
        type=_day,
        metavar="YYYY-MM-DD",
        help="a daily incremental run: ingest, clean and dedup that day's raw files only, replacing its partitions; "
        "mine, shards and train use their window of days ending on it",
    )

    parser = argparse.ArgumentParser(prog="dlspark", description="Raw order-line feeds to rules and a model, on Spark.")
    parser.add_argument("--version", action="version", version=f"dlspark {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("generate", parents=[common], help="write demo raw feeds with ground truth")
    gen.add_argument("--out", required=True, help="data root to write raw/ and truth/ under")
    gen.add_argument("--orders", type=int, help="number of orders (default: generate.orders)")
    gen.add_argument("--seed", type=int, help="random seed; the same seed gives the same bytes")
    gen.add_argument("--days", type=int, help="days of data, one raw folder per day")

    for stage in STAGES.stages:
        then = "".join(f", then {name}" for name in THEN.get(stage.name, []))
        commands.add_parser(stage.name, parents=[common, dated], help=stage.help + then)

    pipe = commands.add_parser(
        "pipeline",
        parents=[common, dated],
        help="run the stages in order in one Spark application, skipping those already up to date",
    )
    names = STAGES.names
    pipe.add_argument("--from", dest="first", choices=names, default=names[0], help="first stage to run")
    pipe.add_argument("--to", dest="last", choices=names, default=names[-1], help="last stage to run")
    pipe.add_argument("--force", action="store_true", help="rerun the stages even when they are up to date")

    sched = commands.add_parser(
        "schedule",
        parents=[common],
        help="run every due day (`pipeline --date DAY`) in order, catching up missed days; then wait and repeat",
    )
    sched.add_argument("--once", action="store_true", help="one pass, then exit (for cron)")
    sched.add_argument(
        "--every", type=float, default=3600, metavar="SECONDS", help="seconds between passes (default: %(default)s)"
    )
    sched.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="ignore days before this one")
    sched.add_argument(
        "--until",
        type=_day,
        metavar="YYYY-MM-DD",
        help="last day to run (default: yesterday, UTC: a day runs once over)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="generate demo data, run every stage, and score the result against the truth",
    )
    demo.add_argument("--orders", type=int, help="number of orders (default: generate.orders)")
    demo.add_argument("--days", type=int, help="days of data (default: generate.days)")
    demo.add_argument("--seed", type=int, help="random seed (default: generate.seed)")
    return parser


def _generate_overrides(args: argparse.Namespace) -> list[str]:
    extra = [
        f"generate.{name}={value}"
        for name in ("orders", "seed", "days")
        if (value := getattr(args, name, None)) is not None
    ]
    if getattr(args, "out", None):
        extra.append(f"data.root={args.out}")
    return extra


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: expected YYYY-MM-DD, e.g. 2026-01-31") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    # Petastorm 0.13 uses pyarrow's legacy dataset API, which warns on every read (pyarrow < 15: docs/decisions.md).
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm\.")
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")  # Keras; Petastorm and tf.data shuffle
    try:
        cfg = load_config(args.config, [*args.overrides, *_generate_overrides(args)])
        if getattr(args, "date", None):
            cfg = cfg.for_day(args.date)
        if args.command == "schedule":  # it takes the lock for each pass, not while it sleeps
            return _schedule(cfg, args)
        from dlspark.runlock import run_lock

        with run_lock(cfg.data.root):
            return _run(args.command, cfg, args)
    except DlsparkError as err:
        print(f"dlspark: error: {err}", file=sys.stderr)
        return 2


def _run(command: str, cfg: PipelineConfig, args: argparse.Namespace) -> int:
    # Spark is imported here, after the configuration has been checked, so a bad key fails in a second.
    if command in STAGES.names:
        return _stages([command, *THEN.get(command, [])], cfg)
    if command == "pipeline":
        return _pipeline(STAGES.between(args.first, args.last), cfg, args.force)
    return _demo(command, cfg)


def _stages(names: list[str], cfg: PipelineConfig) -> int:
    """Run stages by name, whether or not they are up to date, in a Spark session when one needs it."""
    from dlspark.cli.console import print_run
    from dlspark.pipeline import check_inputs, run_stages

    check_inputs(names[0], cfg)
    with _session_if(any(STAGES[name].needs_spark(cfg) for name in names), cfg) as spark:
        print_run(run_stages(names, spark, cfg))
    return 0


def _demo(command: str, cfg: PipelineConfig) -> int:
    """`generate`, and `demo`: generate, run every stage, and score the result against the generator's truth."""
    from dlspark.cli.console import format_score, print_run
    from dlspark.demo.generate import generate
    from dlspark.pipeline import run_pipeline
    from dlspark.runreport import write_run_report
    from dlspark.session import spark_session

    root = cfg.data.layout
    with spark_session(cfg.spark) as spark:
        summary = generate(spark, cfg.generate, cfg.data.root)
        print(
            f"generated {summary['raw_records_total']:,} raw records ({summary['orders']:,} orders over "
            f"{summary['days']} days, {summary['bad_records']:,} bad, {summary['replay_copies']:,} replays) "
            f"under {root.raw} in {summary['seconds']} s"
        )
        if command == "generate":
            return 0
        from dlspark.demo.truth import score

        in_spark, on_driver = _split(STAGES.names, cfg)
        reports = run_pipeline(in_spark, spark, cfg)  # new raw data: every stage runs
        truth = format_score(score(spark, root))
    reports += run_pipeline(on_driver, None, cfg)
    print()
    print_run(reports, truth)
    print(
        f"\nOutputs under {root.root}: events/ products/ mining/ shards/ model/ reports/ clean/ quarantine/ "
        "(stage reports: */_report.json)"
    )
    print(f"Run report: {write_run_report(reports, root, notes=truth)}")
    return 0


def _split(names: list[str], cfg: PipelineConfig) -> tuple[list[str], list[str]]:
    """The stages to run in the Spark session (up to the last that needs it), and those after it: driver-mode
    training runs once Spark has stopped, so TensorFlow has the memory."""
    needing = [i for i, name in enumerate(names) if STAGES[name].needs_spark(cfg)]
    cut = needing[-1] + 1 if needing else 0
    return names[:cut], names[cut:]


@contextmanager
def _session_if(needed: bool, cfg: PipelineConfig) -> Iterator[SparkSession | None]:
    """A SparkSession for the `with` block when `needed`, else None."""
    if not needed:
        yield None
        return
    from dlspark.session import spark_session

    with spark_session(cfg.spark) as spark:
        yield spark


def _pipeline(names: list[str], cfg: PipelineConfig, force: bool) -> int:
    """The stages up to date are skipped before Spark starts; the others run in one Spark session."""
    from dlspark.cli.console import print_run
    from dlspark.pipeline import check_inputs, run_pipeline
    from dlspark.runreport import write_run_report

    check_inputs(names[0], cfg)
    reports = run_pipeline(names, None, cfg, force, until_stale=True)
    in_spark, on_driver = _split(names[len(reports) :], cfg)
    if in_spark:
        with _session_if(True, cfg) as spark:
            reports += run_pipeline(in_spark, spark, cfg, force)
    reports += run_pipeline(on_driver, None, cfg, force)
    print_run(reports)
    print(f"\nRun report: {write_run_report(reports, cfg.data.layout)}")
    return 0


def _schedule(cfg: PipelineConfig, args: argparse.Namespace) -> int:
    """Catch-up days (the daily stages only) share one Spark session per pass; a day that runs the whole
    pipeline runs it as `dlspark pipeline --date` does."""
    from dlspark import schedule
    from dlspark.cli.console import format_reports
    from dlspark.pipeline import run_pipeline
    from dlspark.session import spark_session

    shared = ExitStack()
    sessions: list[Any] = []  # the pass's SparkSession, once a catch-up day has started it

    def run_day(names: list[str], day_cfg: PipelineConfig) -> None:
        if names == STAGES.daily():
            if not sessions:
                sessions.append(shared.enter_context(spark_session(cfg.spark)))
            print(format_reports(run_pipeline(names, sessions[0], day_cfg)))
        else:
            end_pass()
            _pipeline(names, day_cfg, force=False)

    def end_pass() -> None:
        shared.close()
        sessions.clear()

    since, until = (str(day) if day else None for day in (args.since, args.until))
    schedule.loop(cfg, run_day, since, until, 0 if args.once else args.every, after_pass=end_pass)
    return 0


if __name__ == "__main__":
    sys.exit(main())
