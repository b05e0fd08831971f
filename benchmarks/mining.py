"""Benchmark: dlspark's mining (FP-growth itemsets + rules) against mlxtend 0.23.1 and Borgelt's FP-growth in C
(`pyfim` 6.28, one thread), on the same baskets, side by side.

    ./dev bench mining                                           # 100k baskets at 0.001, 1M at 0.001
    ./dev bench mining --cases 100000:0.001 1000000:0.001 4000000:0.001
    ./dev bench mining --engines pfp mlxtend --cases 1000000:0.01 2000000:0.01 4000000:0.01
    ./dev bench mining --engines pfp spark mlxtend --cases 100000:0.001

Baskets are synthetic: about 10 distinct items each from 1000 products with Zipf-like popularity, written once
to Parquet. Each engine runs in its own child process on the same file, so the peak memory printed is that of the
largest single process (for Spark: its JVM, in local mode driver and executors together). Times cover mining the
itemsets and deriving the rules, both counted; reading the baskets is not timed for any engine. The per-core
ratio is dlspark's time times its task slots over pyfim's one-thread time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MIN_CONFIDENCE = 0.1037  # not a ratio of small counts: no rule sits exactly on it in either engine


def make_baskets(n: int, path: Path, seed: int = 1, products: int = 1000, mean_size: int = 10) -> None:
    """Write n baskets (order_id, items: list of distinct product ids) to one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(products) + 5.0)
    cdf = np.cumsum(weights) / weights.sum()
    sizes = np.clip(rng.poisson(mean_size, n), 2, 3 * mean_size)
    draws = np.searchsorted(cdf, rng.random((n, 3 * mean_size + 8)), side="right")
    names = np.array([f"p{i:04d}" for i in range(products)])
    items = []
    for row, size in zip(draws, sizes, strict=True):
        distinct = list(dict.fromkeys(row.tolist()))[:size]
        items.append(sorted(names[distinct].tolist()))
    table = pa.table({"order_id": [f"o{i}" for i in range(n)], "items": items})
    pq.write_table(table, path, row_group_size=200_000)


def run_mlxtend(path: str, support: float) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq
    from mlxtend.frequent_patterns import association_rules, fpgrowth
    from mlxtend.preprocessing import TransactionEncoder

    baskets = pq.read_table(path, columns=["items"]).column("items").to_pylist()
    encoder = TransactionEncoder()
    onehot = pd.DataFrame.sparse.from_spmatrix(
        encoder.fit(baskets).transform(baskets, sparse=True), columns=encoder.columns_
    )
    started = time.perf_counter()
    itemsets = fpgrowth(onehot, min_support=support, use_colnames=True)
    rules = association_rules(itemsets, metric="confidence", min_threshold=MIN_CONFIDENCE)
    rules = rules[rules["consequents"].apply(len) == 1]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "itemsets": len(itemsets), "rules": len(rules), "peak_gb": peak_gb(), "cores": 1}


def run_pyfim(path: str, support: float) -> dict:
    """Borgelt's FP-growth in C: the itemsets, then the rules (each rule's support is that of all its items)."""
    import math

    import fim
    import pyarrow.parquet as pq

    baskets = pq.read_table(path, columns=["items"]).column("items").to_pylist()
    needed = -math.ceil(support * len(baskets))  # negative: an absolute count of baskets, as dlspark counts it
    started = time.perf_counter()
    itemsets = fim.fpgrowth(baskets, target="s", supp=needed, zmax=20, report="a")
    rules = fim.arules(baskets, supp=needed, conf=MIN_CONFIDENCE * 100, zmin=2, zmax=20, report="aC", mode="o")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "itemsets": len(itemsets), "rules": len(rules), "peak_gb": peak_gb(), "cores": 1}


def run_dlspark(path: str, support: float, master: str, engine: str, warm_up: bool) -> dict:
    sys.path.insert(0, str(REPO))
    from dlspark.config import MineConfig, SparkConfig
    from dlspark.session import build_session

    spark = build_session(
        SparkConfig(
            master=master,
            conf={"spark.driver.memory": "8g", "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "8"},
        )
    )
    cfg = MineConfig(
        engine=engine,
        min_support=support,
        min_confidence=MIN_CONFIDENCE,
        max_itemset_length=20,
        max_itemsets=50_000_000,
    )
    baskets = spark.read.parquet(path).repartition(spark.sparkContext.defaultParallelism).cache()
    n = baskets.count()
    if warm_up:  # as inside a pipeline, where earlier stages have warmed the JVM and the Python workers
        sample = baskets.limit(2000).cache()
        mine(sample, cfg.model_copy(update={"min_support": 0.01}), sample.count())
    started = time.perf_counter()
    n_itemsets, n_rules = mine(baskets, cfg, n)
    seconds = time.perf_counter() - started
    peak = peak_gb()  # before stopping: the JVM is one of this process's children
    cores = spark.sparkContext.defaultParallelism
    spark.stop()
    return {"seconds": seconds, "itemsets": n_itemsets, "rules": n_rules, "peak_gb": peak, "cores": cores}


def mine(baskets, cfg, n: int) -> tuple[int, int]:
    """dlspark's mining as the stage runs it: item counts, guard rail, itemsets, rules; returns both counts."""
    from dlspark.mining.itemsets import association_rules, check_minable, frequent_itemsets, item_counts

    counts = item_counts(baskets).cache()
    check_minable(baskets, counts, cfg)
    itemsets = frequent_itemsets(baskets, counts, cfg, n).cache()
    n_itemsets = itemsets.count()
    n_rules = association_rules(itemsets, cfg.min_confidence).count()
    itemsets.unpersist()
    counts.unpersist()
    return n_itemsets, n_rules


def peak_gb() -> float:
    """The largest peak resident memory (VmHWM) of this process and its children (Spark's JVM), in GB."""
    me = os.getpid()
    pids = [me] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == me]
    return max(_vm_hwm_kb(pid) for pid in pids) / 1024 / 1024


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(engine: str, path: str, support: float, master: str, warm_up: bool) -> dict:
    """Run one engine in a fresh process; it reports its time, counts and peak memory (largest process)."""
    result = subprocess.run(
        [sys.executable, __file__, "--child", engine, path, str(support), master, str(warm_up)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        engine, path, support, master = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
        warm_up = sys.argv[6] == "True"
        if engine == "mlxtend":
            figures = run_mlxtend(path, support)
        elif engine == "pyfim":
            figures = run_pyfim(path, support)
        else:
            figures = run_dlspark(path, support, master, engine, warm_up)
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["100000:0.001", "1000000:0.001"], help="BASKETS:SUPPORT")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["pfp", "mlxtend", "pyfim"],
        choices=["pfp", "spark", "mlxtend", "pyfim"],
        help="pfp: dlspark's default engine; spark: dlspark with pyspark's own FPGrowth; pyfim: Borgelt's C code",
    )
    parser.add_argument("--master", default="local[*]")
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="mine a 2000-basket sample untimed first (JIT, Python workers), as inside a pipeline",
    )
    parser.add_argument("--dir", default="/tmp/dlspark-mining-bench")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)

    print(
        f"{'baskets':>10} {'support':>8} {'engine':>8} {'seconds':>8} {'peak GB':>8} {'itemsets':>9} {'rules':>8}"
        "  ratios"
    )
    for case in args.cases:
        n, support = int(case.split(":")[0]), float(case.split(":")[1])
        path = Path(args.dir) / f"baskets-{n}.parquet"
        if not path.exists():
            make_baskets(n, path)
        results = {engine: child(engine, str(path), support, args.master, args.warm_up) for engine in args.engines}
        for engine, r in results.items():
            ratios = []
            if engine not in ("mlxtend", "pyfim") and "mlxtend" in results:
                ratios.append(f"{r['seconds'] / results['mlxtend']['seconds']:.2f}x mlxtend's time")
            if engine != "pyfim" and "pyfim" in results:
                fim = results["pyfim"]["seconds"]
                per_core = r["seconds"] * r["cores"] / fim
                ratios.append(f"{r['seconds'] / fim:.2f}x pyfim's time, {per_core:.2f}x per core")
            ratio = "; ".join(ratios)
            print(
                f"{n:>10,} {support:>8} {engine:>8} {r['seconds']:>8.1f} {r['peak_gb']:>8.2f} "
                f"{r['itemsets']:>9,} {r['rules']:>8,}  {ratio}",
                flush=True,
            )
        counts = {(r["itemsets"], r["rules"]) for r in results.values()}
        print(f"{'':>10} {'':>8} {'':>8} same itemset and rule counts in every engine: {len(counts) == 1}", flush=True)


if __name__ == "__main__":
    main()
