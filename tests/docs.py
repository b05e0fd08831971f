"""The commands users copy from the project's pages, and which test runs each.

Every shell block (```bash) of the pages in PAGES is preceded by a marker line:
    <!-- tested: tests/test_x.py::test_name -->    that test runs the block's commands as the page writes them
    <!-- tested: .ci/run -->                        .ci/run runs each of them, word for word
    <!-- tested: .ci/run; tests/test_x.py::NAME --> each command that .ci/run does not run, the test runs
    <!-- not tested: why -->                        the reason a test cannot run it (a YARN cluster, a desktop)
`python tests/docs.py` prints every command with its marker (.ci/run shows that list); tests/test_docs.py fails
when a block has no marker, or a marker names a test that does not exist or does not read its page.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/operations.md")
MARKER = re.compile(r"^<!-- (tested: (?P<test>.+?)|not tested: (?P<why>.+?)) -->$")
BLOCK = re.compile(r"^```(bash|sh|shell)\n(?P<body>.*?)^```$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # of the opening fence
    commands: tuple[str, ...]
    test: str | None  # what runs it: "tests/FILE.py::NAME" or ".ci/run"
    why: str | None  # or why nothing does
    marker: str | None  # the marker line as written (None: missing)


def command_lines(body: str) -> list[str]:
    """The commands of a shell block: comments dropped, lines continued with a backslash joined."""
    commands, pending = [], ""
    for raw in body.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append((pending + line.strip()).strip())
        pending = ""
    return commands


def blocks(page: str) -> list[Block]:
    text = (REPO / page).read_text()
    found = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = [row for row in text[: match.start()].splitlines() if row.strip()]
        marker = MARKER.match(before[-1].strip()) if before else None
        found.append(
            Block(
                page,
                line,
                tuple(command_lines(match.group("body"))),
                marker.group("test") if marker else None,
                marker.group("why") if marker else None,
                marker.group(0) if marker else None,
            )
        )
    return found


def block(page: str, first: str) -> Block:
    """The block of `page` whose first command is `first` (how a test finds the commands it runs)."""
    matches = [b for b in blocks(page) if b.commands and b.commands[0] == first]
    if len(matches) != 1:
        raise LookupError(f"{page} has {len(matches)} shell blocks starting with {first!r}")
    return matches[0]


def runners(found: Block) -> list[str]:
    """What a block's marker says runs it: test ids and/or ".ci/run"."""
    return [item.strip() for item in (found.test or "").split(";") if item.strip()]


def run_by_ci(command: str) -> bool:
    """Whether .ci/run runs `command` word for word (as a whole command: at the end of one of its lines)."""
    return re.search(rf"(^|\s){re.escape(command)}[ \t]*$", (REPO / ".ci" / "run").read_text(), re.M) is not None


def runner_of(found: Block, command: str) -> str:
    if found.marker is None:
        return "NO MARKER"
    if found.why is not None:
        return f"not tested: {found.why}"
    named = runners(found)
    if ".ci/run" in named and run_by_ci(command):
        return ".ci/run"
    return "; ".join(item for item in named if item != ".ci/run") or "nothing"


def listing() -> str:
    rows = []
    for page in PAGES:
        for found in blocks(page):
            rows += [f"{page}:{found.line}  {command}  <- {runner_of(found, command)}" for command in found.commands]
    return "\n".join(rows)


if __name__ == "__main__":
    print("docs: the commands on the users' pages, and what runs each")
    print(listing())
    sys.exit(0)
