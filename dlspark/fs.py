"""Small-file I/O on any filesystem Spark reaches (a local disk, HDFS, S3), through pyarrow's filesystem layer.

Every file dlspark reads or writes itself under data.root goes through here, so a root on HDFS works as one on disk.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from dlspark.errors import InputError


def is_uri(path: str) -> bool:
    return "://" in path


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for a local path or a URI (file://, hdfs://, s3://), and the path within it."""
    return pafs.FileSystem.from_uri(path if is_uri(path) else os.path.abspath(path))


def exists(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def is_dir(path: str) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type == pafs.FileType.Directory


def make_dirs(path: str) -> None:
    """Create a directory and its parents (nothing happens when it exists)."""
    fs, inner = filesystem(path)
    fs.create_dir(inner, recursive=True)


def open_output(path: str) -> pa.NativeFile:
    """A new file to write, its folders created, its bytes written as given (pyarrow would otherwise compress a
    .gz path itself)."""
    fs, inner = filesystem(path)
    fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
    return fs.open_output_stream(inner, compression=None)


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` as the file's bytes."""
    with open_output(path) as out:
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
    """A file's bytes as stored (a .gz file is not decompressed).

    A local file is read by Python's own file object, straight into one bytes object of its size; pyarrow's
    stream (any other filesystem) reads into a buffer first, which holds the file twice while it is copied."""
    fs, inner = filesystem(path)
    if isinstance(fs, pafs.LocalFileSystem):
        with open(inner, "rb") as src:
            return src.read()
    with fs.open_input_stream(inner, compression=None) as src:
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


def subdirectories(path: str) -> list[str]:
    """The names of the directories directly under `path` (empty when it does not exist)."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.Directory:
        return []
    entries = fs.get_file_info(pafs.FileSelector(inner))
    return sorted(entry.base_name for entry in entries if entry.type == pafs.FileType.Directory)


def walk_files(path: str) -> list[tuple[str, int, int]]:
    """Every file below `path` as (path relative to it, starting with '/', size, modification time in ns), sorted;
    empty when `path` does not exist."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
    return sorted(
        (info.path[len(inner) :], info.size or 0, info.mtime_ns or 0)
        for info in infos
        if info.type == pafs.FileType.File
    )


def copy(source: str, target: str) -> None:
    """Copy a file or a directory tree (across filesystems too)."""
    fs, inner = filesystem(source)
    target_fs, target_inner = filesystem(target)
    if fs.get_file_info(inner).type == pafs.FileType.Directory:
        target_fs.create_dir(target_inner, recursive=True)
        pafs.copy_files(inner, target_inner, fs, target_fs)
    else:
        write_bytes(target, read_bytes(source))


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
