"""Mutated hostile files, with a fixed seed: whatever their bytes, ingest, clean and dedup finish, and every record
is accounted for (each stage also checks its own counts per file and raises when they do not add up).

`DLSPARK_FUZZ_SEED=N ./dev test tests/test_fuzz.py` tries other mutations (seeds 1 to 4 and 2026 pass).
"""

import gzip
import os
import random

import pytest
from test_hostile_inputs import CASES, MARKETPLACE, write_case

from conftest import ansi_mode, make_config

# Bytes that change how a file is read: quotes, NUL, carriage returns, byte-order marks, undecodable bytes,
# delimiters, JSON brackets, a gzip magic number.
INSERTS = [b'"', b"\x00", b"\r", b"\r\n", b"\n", b"\xef\xbb\xbf", b"\xff\xfe", b"\xe9", b",", b";", b"{", b"}"]
INSERTS += [b"\x1f\x8b"]
# The hostile files to mutate (not the one over the size limit: mutations of it would only be quarantined whole).
SOURCES = [(name, feed, data) for name, (feed, data, _, _) in sorted(CASES.items()) if "too_large" not in name]


def mutate(data: bytes, generator: random.Random) -> bytes:
    """One to four random edits: a byte flipped, a cut, an insert from INSERTS, a span repeated; sometimes gzipped."""
    data = bytearray(data)
    for _ in range(generator.randint(1, 4)):
        at = generator.randrange(len(data) + 1)
        edit = generator.choice(["flip", "cut", "insert", "repeat"])
        if edit == "flip" and data:
            data[min(at, len(data) - 1)] = generator.randrange(256)
        elif edit == "cut":
            del data[at:]
        elif edit == "insert":
            data[at:at] = generator.choice(INSERTS) * generator.randint(1, 3)
        else:
            data[at:at] = data[at : at + generator.randint(1, 200)] * generator.randint(1, 3)
    return gzip.compress(bytes(data)) if generator.random() < 0.1 else bytes(data)


@pytest.mark.parametrize("ansi", [True, False], ids=["ansi-on", "ansi-off"])
def test_mutated_files_are_read_without_a_crash_and_every_record_is_accounted_for(spark, tmp_path, ansi):
    from dlspark.pipeline import run_stages

    generator = random.Random(int(os.environ.get("DLSPARK_FUZZ_SEED", "2026")))
    files = 240
    for i in range(files):
        name, feed, data = generator.choice(SOURCES)
        raw = data.encode() if isinstance(data, str) else data
        write_case(tmp_path, f"m{i:03d}-{name}", feed, mutate(raw, generator))
    cfg = make_config(tmp_path, MARKETPLACE)
    with ansi_mode(spark, ansi):
        ingest, clean, dedup = run_stages(["ingest", "clean", "dedup"], spark, cfg)
    assert ingest.details["files"] == files
    assert ingest.rows_in > files  # records were found, not only whole files quarantined
    assert all(report.balanced() for report in (ingest, clean, dedup))
    assert ingest.rows_in == clean.rows_out + ingest.quarantined_total + clean.quarantined_total
    assert dedup.rows_in == clean.rows_out
    assert ingest.rows_out > 0 and clean.rows_out > 0 and dedup.rows_out > 0


@pytest.mark.parametrize("piece", [1, 2, 7, 64])
def test_files_read_in_pieces_of_text_give_the_same_rows_as_read_whole(tmp_path, monkeypatch, piece):
    """A file is decoded and read into lines a piece at a time (rawfiles.PIECE bytes) to spare memory: whatever
    the size of the pieces, every mutated file gives the same rows, raw bytes and summary, row for row."""
    from dlspark import rawfiles
    from dlspark.stages.ingest import feed_spec

    cfg = make_config(tmp_path, MARKETPLACE)
    generator = random.Random(int(os.environ.get("DLSPARK_FUZZ_SEED", "2026")) + piece)
    for i in range(60):
        name, feed, data = generator.choice(SOURCES)
        raw = mutate(data.encode() if isinstance(data, str) else data, generator)
        path = tmp_path / f"m{i:03d}"
        path.write_bytes(raw)
        spec = feed_spec(feed, cfg.feeds[feed], cfg.ingest.max_file_mb)

        def rows(spec=spec, path=path, raw=raw):
            return [b.to_pydict() for b in rawfiles.read_file(spec, str(path), len(raw), "2026-01-05")]

        whole = rows()
        monkeypatch.setattr(rawfiles, "PIECE", piece)
        assert rows() == whole, name
        monkeypatch.undo()
