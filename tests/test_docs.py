"""The users' pages against the tests: every command a page shows is run by a test (or .ci/run) as written, or the
page says why not; and the README's demo and five-minute tour, run as written in a copy of the checkout."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess

import pytest

import docs
from conftest import REPO, limit


def problems_of(block: docs.Block) -> list[str]:
    """What is wrong with a block's marker: missing, naming a test that does not exist or does not read the block's
    page, or claiming .ci/run for commands .ci/run does not run."""
    where = f"{block.page}:{block.line}"
    if block.marker is None:
        return [f"{where}: no marker line before the block (<!-- tested: ... --> or <!-- not tested: why -->)"]
    if block.why is not None:
        return []
    problems, named = [], docs.runners(block)
    tests = [item for item in named if item != ".ci/run"]
    if ".ci/run" in named and not any(docs.run_by_ci(command) for command in block.commands):
        problems.append(f"{where}: .ci/run runs none of {list(block.commands)}")
    if not tests and not all(docs.run_by_ci(command) for command in block.commands):
        problems.append(f"{where}: no test is named for the commands .ci/run does not run")
    for test in tests:
        path, _, name = test.partition("::")
        source = (REPO / path).read_text() if (REPO / path).is_file() else ""
        functions = {node.name: node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)}
        if name not in functions:
            problems.append(f"{where}: the marker names {test}, which does not exist")
        elif block.page not in (ast.get_source_segment(source, functions[name]) or ""):
            problems.append(f"{where}: {test} does not read {block.page}")
    return problems


def test_every_command_on_the_users_pages_is_run_by_a_test_or_says_why_not():
    found = [block for page in docs.PAGES for block in docs.blocks(page)]
    assert len(found) >= 10 and all(block.commands for block in found)  # the parser sees the pages' blocks
    problems = [problem for block in found for problem in problems_of(block)]
    assert not problems, "\n".join(problems)


def test_a_block_without_a_marker_or_with_a_wrong_one_is_named():
    unmarked = docs.Block("README.md", 7, ("./dev demo",), None, None, None)
    assert "no marker" in problems_of(unmarked)[0]
    ghost = docs.Block("README.md", 7, ("./dev demo",), "tests/test_docs.py::test_nothing", None, "<!-- -->")
    assert "does not exist" in problems_of(ghost)[0]
    elsewhere = docs.Block("README.md", 7, ("./dev demo",), f"tests/test_docs.py::{problems_of.__name__}", None, "x")
    assert "does not read README.md" in problems_of(elsewhere)[0]
    claimed = docs.Block("README.md", 7, ("./dev nothing-of-the-sort",), ".ci/run", None, "<!-- -->")
    assert ".ci/run runs none" in problems_of(claimed)[0]


def test_shell_blocks_are_read_as_commands():
    body = "./dev demo     # builds it\n# a comment\nspark-submit --master yarn \\\n  jobs/pipeline.py --x 1\n\n"
    assert docs.command_lines(body) == ["./dev demo", "spark-submit --master yarn jobs/pipeline.py --x 1"]


@pytest.mark.integration
def test_the_readmes_demo_and_tour_run_as_written(tmp_path):
    """`./dev demo`, then every command of the five-minute tour, in a copy of the checkout (as a user's clone, with
    this checkout's virtual environments), word for word from README.md."""
    checkout = tmp_path / "dlspark"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    (checkout / ".venv").symlink_to(REPO / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "DLSPARK_SPARK"))}

    def run(command: str) -> str:
        result = subprocess.run(
            ["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True, timeout=limit(900)
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout + result.stderr

    two = docs.block("README.md", "./dev demo")
    demo = run(two.commands[0])
    assert re.search(r"bad records: (\d+) planted, \1 quarantined with the right reason", demo), demo[-3000:]
    assert "promoted to current" in demo
    tour = docs.block("README.md", "./dev dlspark pipeline")
    outputs = [run(command) for command in tour.commands]
    skipped, forced, listed, mined, daily = outputs
    assert "up to date" in skipped and not re.search(r"stage \w+: done", skipped)
    assert [stage for stage in ("mine", "shards", "train", "evaluate") if f"stage {stage}: done" in forced] == [
        "mine",
        "shards",
        "train",
        "evaluate",
    ]
    assert "date=2026-01-01" in listed.split()
    itemsets = [int(re.findall(r"mine: .*, itemsets (\d+)", output)[-1]) for output in (demo, mined)]
    assert "stage mine: done" in mined and itemsets[1] > itemsets[0]  # a lower support: more frequent itemsets
    assert "2026-01-14" in daily and "stage ingest: done" in daily
