"""The data layout under one root (README, "Data layout"), and small-file I/O that works on any filesystem."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pyarrow import fs as pafs

from dlspark.errors import InputError

if TYPE_CHECKING:
    from dlspark.config import DataConfig

# What each stage output holds and which stage writes it, for messages about a missing input.
DATASETS = {
    "ingested": "ingested order lines (stage ingest)",
    "clean": "clean order lines (stage clean)",
    "events": "deduplicated events (stage dedup)",
    "products": "resolved products (stage dedup)",
    "shards": "training shards (stage shards)",
}


def _is_uri(path: str) -> bool:
    return "://" in path


@dataclass(frozen=True)
class Layout:
    """Paths of every dataset under `root`; a local root is made absolute so executors see the same place.

    `staged` redirects outputs (relative paths such as "clean" or "quarantine/stage=clean") to a staging
    directory while a stage writes them; everything else resolves under `root` (see pipeline.run_stage).
    """

    root: str
    staged: tuple[tuple[str, str], ...] = ()

    @classmethod
    def at(cls, root: str) -> Layout:
        return cls(root.rstrip("/") if _is_uri(root) else os.path.abspath(root))

    @classmethod
    def of(cls, data: DataConfig) -> Layout:
        """The layout a stage uses: its data root, with its own outputs redirected while it is staged."""
        return replace(cls.at(data.root), staged=tuple(sorted(data.staging.items())))

    def path(self, *parts: str) -> str:
        relative = "/".join(parts)
        for output, target in self.staged:
            if relative == output or relative.startswith(output + "/"):
                return target + relative[len(output) :]
        return "/".join([self.root, *parts])

    def unstaged(self, path: str) -> str:
        """The published path of a path inside a staged output."""
        for output, target in self.staged:
            if path == target or path.startswith(target + "/"):
                return f"{self.root}/{output}{path[len(target) :]}"
        return path

    @property
    def raw(self) -> str:
        return self.path("raw")

    @property
    def truth(self) -> str:
        return self.path("truth")

    @property
    def ingested(self) -> str:
        return self.path("ingested")

    @property
    def clean(self) -> str:
        return self.path("clean")

    @property
    def events(self) -> str:
        return self.path("events")

    @property
    def products(self) -> str:
        return self.path("products")

    @property
    def shards(self) -> str:
        return self.path("shards")

    @property
    def model(self) -> str:
        return self.path("model")

    @property
    def reports(self) -> str:
        return self.path("reports")

    def quarantine(self, stage: str | None = None) -> str:
        return self.path("quarantine", f"stage={stage}") if stage else self.path("quarantine")


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for a local path or a URI (file://, hdfs://, s3://), and the path within it."""
    return pafs.FileSystem.from_uri(path if _is_uri(path) else os.path.abspath(path))


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def write_bytes(path: str, data: bytes) -> None:
    fs, inner = filesystem(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(inner) as out:
        out.write(data)


def write_json(path: str, payload: Any) -> None:
    write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n").encode())


def replace_bytes(path: str, data: bytes) -> None:
    """Write a small file whole: to a temporary name beside it, then renamed over it (readers see old or new)."""
    write_bytes(f"{path}.tmp", data)
    move(f"{path}.tmp", path)


def replace_json(path: str, payload: Any) -> None:
    replace_bytes(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())


def read_bytes(path: str) -> bytes:
    fs, inner = filesystem(path)
    with fs.open_input_stream(inner) as src:
        return bytes(src.read())


def read_json(path: str) -> Any:
    fs, inner = filesystem(path)
    try:
        with fs.open_input_stream(inner) as src:
            return json.loads(src.read())
    except FileNotFoundError:
        raise InputError(f"{path} does not exist; run the stage that writes it first") from None


def listdir(path: str) -> list[str]:
    """The names of the entries of a directory (empty when it does not exist)."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    return sorted(info.base_name for info in fs.get_file_info(pafs.FileSelector(inner)))


def delete_dir(path: str) -> None:
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.NotFound:
        fs.delete_dir(inner)


def move(source: str, target: str) -> None:
    """Rename a file or directory (one metadata operation on a local disk, HDFS or a mounted volume)."""
    fs, inner = filesystem(source)
    _, target_inner = filesystem(target)
    fs.create_dir(target_inner.rsplit("/", 1)[0], recursive=True)
    fs.move(inner, target_inner)


def delete(path: str) -> None:
    """Delete a file or a directory tree, if it exists."""
    fs, inner = filesystem(path)
    kind = fs.get_file_info(inner).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(inner)
    elif kind != pafs.FileType.NotFound:
        fs.delete_file(inner)
