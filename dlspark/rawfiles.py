"""Raw feed files read from their bytes: every record found is one row, good or quarantined, and none is lost.

Spark's own CSV and JSON readers decide what a record is and drop or multiply what they cannot parse (a quoted
newline splits a CSV record in two, a JSON line holding an array becomes several rows, a line `[]` vanishes). Here
each file is read whole by one Spark task and cut into records by dlspark itself:
- CSV: RFC 4180 records (a quoted field may hold newlines, delimiters and doubled quotes), fields matched to the
  feed's columns by the header's names, in any order;
- JSON lines: one line, one record, which must hold exactly one JSON object of scalar values;
- Parquet: the rows the footer lists.
Every record becomes exactly one row (its reason null when it is good), so the records counted in a file equal the
rows written for it, and ingest checks that identity per file after writing. A file that cannot be read at all
(a corrupt archive, text in another encoding than its feed's, a CSV header without a required column, a file too
large to read whole) is quarantined whole: its records, where they can be counted, or the file itself as one record.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dlspark.schemas import CANONICAL_FIELDS, INSTANT_FORMAT, REQUIRED_FIELDS

# What ingest quarantines a record for (clean's reasons follow in dlspark.cleaning).
RECORD_REASONS = {
    "invalid_utf8": "bytes that are not valid in the feed's encoding (UTF-8)",
    "invalid_encoding": "bytes that are not valid in the feed's encoding (another encoding than UTF-8)",
    "wrong_column_count": "a CSV record with more or fewer fields than its header",
    "unterminated_quote": "a CSV record whose quoted field is still open at the end of the file",
    "unparseable_record": "a CSV record that holds a NUL character, or that the parser cannot read",
    "invalid_json": "a line that is not JSON",
    "not_an_object": "a JSON line holding an array or a single value instead of one object",
    "several_values": "a JSON line holding more than one value",
    "trailing_garbage": "a JSON object followed by text that is not JSON",
    "duplicate_key": "a JSON object with the same key twice",
    "too_deeply_nested": "a JSON line nested deeper than Python's parser goes (about 1,000 levels), under any key",
    "nested_value": "a JSON object or array, or a Parquet list, struct or map, where a feed's scalar field belongs",
}
# What ingest quarantines a whole file for; the file's records (or the file, as one record) carry the reason.
FILE_REASONS = {
    "unreadable_file": "the file cannot be read from its filesystem",
    "corrupt_archive": "a compressed file (gzip, bzip2, xz, zstd, or a zip of one file) that does not decompress",
    "wrong_encoding": "text not in the feed's encoding (over 10% NUL bytes: UTF-16 or UTF-32 without a BOM, or binary)",
    "missing_column": "a CSV header (or Parquet schema) without a column the feed maps to a required field",
    "duplicate_column": "a CSV header naming a column the feed maps twice",
    "unreadable_parquet": "a Parquet file whose footer or data cannot be read",
    "file_too_large": "a file, or what it decompresses to, over ingest.max_file_mb: one task reads a file whole",
}


class TooLarge(Exception):
    """A file, or what it decompresses to, is over the size a task reads whole (ingest.max_file_mb)."""


@contextmanager
def _unzip(data: bytes) -> Iterator[Any]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        files = [member for member in archive.infolist() if not member.is_dir()]
        if len(files) != 1:
            raise ValueError(f"a zip archive of {len(files)} files: a raw file must be a zip of exactly one file")
        with archive.open(files[0]) as member:
            yield member


# Compressed files, known by their first bytes whatever their names (a file named for one that does not start
# with its bytes is corrupt): suffix, first bytes, the decompressing stream over the bytes.
ARCHIVES: tuple[tuple[str, tuple[bytes, ...], Callable[[bytes], Any]], ...] = (
    (".gz", (b"\x1f\x8b",), lambda data: gzip.GzipFile(fileobj=io.BytesIO(data))),
    (".bz2", (b"BZh",), lambda data: bz2.BZ2File(io.BytesIO(data))),
    (".xz", (b"\xfd7zXZ\x00",), lambda data: lzma.LZMAFile(io.BytesIO(data))),  # noqa: SIM115 (decompress closes it)
    (".zst", (b"\x28\xb5\x2f\xfd",), lambda data: pa.input_stream(pa.py_buffer(data), compression="zstd")),
    (".zip", (b"PK\x03\x04", b"PK\x05\x06"), _unzip),
)


def decompress(stream: Callable[[bytes], Any], data: bytes, limit: int | None) -> bytes:
    """What `data` decompresses to, read only up to `limit` bytes (None: all): a few kB can hold gigabytes."""
    with stream(data) as source:
        out = source.read() if limit is None else source.read(limit + 1)
    if limit is not None and len(out) > limit:
        raise TooLarge(f"it decompresses to more than {limit:,} bytes")
    return bytes(out)


BOMS = (  # UTF-32 before UTF-16: FF FE starts both
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
INVISIBLE = "\ufeff\u200b"  # a byte-order mark or zero-width space pasted around a value: not whitespace to Python
# What str.strip() removes: every character whose isspace() is true (a test checks the list).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
BATCH_ROWS = 20_000
PIECE = 1 << 22  # bytes decoded at a time (`decoded`); characters a piece of UTF-16/32 text (`pieces`)
FIELD_LIMIT = csv.field_size_limit()  # the csv module refuses a field longer than this

# One output row: the canonical fields as strings, then lineage, then the reason and the raw record.
ROW_FIELDS = [*CANONICAL_FIELDS, "feed", "source_file", "date", "_reason", "_record", "_raw"]
OUTPUT = pa.schema(
    [pa.field(name, pa.string()) for name in ROW_FIELDS[:-1]]
    + [pa.field("_raw", pa.binary()), pa.field("_file", pa.string())]
)
# The _file column carries one summary per file (JSON), on a row of its own whose other columns are null.


@dataclass(frozen=True)
class FeedSpec:
    """What a task needs of a feed to read its files (plain values, shipped to the executors)."""

    name: str
    format: str
    columns: dict[str, str]  # canonical field -> source field
    encoding: str = "utf-8"
    delimiter: str = ","
    fields: tuple[str, ...] = ()  # columns the feed declares but does not map (not reported as extra)
    max_bytes: int | None = None  # the most a file may hold, decompressed (ingest.max_file_mb); None: no limit

    @property
    def known(self) -> set[str]:
        return {*self.columns.values(), *self.fields}

    @property
    def required_sources(self) -> dict[str, str]:
        return {self.columns[f]: f for f in REQUIRED_FIELDS if f in self.columns}


@dataclass
class FileSummary:
    """What one file held: its records counted from its bytes, and how they were read."""

    feed: str
    path: str
    size: int
    records: int = 0  # records counted from the bytes (lines; RFC 4180 records; the footer's rows)
    blank: int = 0  # blank lines: not records
    rows: int = 0  # rows emitted for it (one per record)
    reason: str | None = None  # a file-level reason: the whole file is quarantined
    detail: str = ""  # what the reason is about (the missing column, the decoder's message)
    extra_columns: list[str] = field(default_factory=list)  # CSV/Parquet columns the feed does not map

    def to_json(self) -> str:
        """As JSON for the report, its texts as valid text (a header's undecodable bytes shown as U+FFFD) and of a
        readable size: the detail cut at 500 characters, at most 50 extra columns (a file that is no CSV at all
        can have a "header" of thousands)."""
        extra = [_shown(name) for name in self.extra_columns[:SHOWN_COLUMNS]]
        if len(self.extra_columns) > SHOWN_COLUMNS:
            extra.append(f"... and {len(self.extra_columns) - SHOWN_COLUMNS} more")
        return json.dumps({**self.__dict__, "detail": _shown(self.detail)[:500], "extra_columns": extra})


SHOWN_COLUMNS = 50


def _shown(text: str) -> str:
    """`text` as valid text: undecodable bytes (kept by surrogateescape) shown as U+FFFD, as in a quarantined
    record's text."""
    return _raw(text, "utf-8").decode("utf-8", "replace")


def clean_text(value: str) -> str:
    """A value without the Unicode whitespace (tabs, no-break spaces, ideographic spaces...) and zero-width marks
    around it."""
    value = value.strip()
    if value and (value[0] in INVISIBLE or value[-1] in INVISIBLE):
        value = value.strip(INVISIBLE).strip()
    return value


def clean_column(values: pa.Array) -> pa.Array:
    """clean_text of every value of a string array, at Arrow's speed: the whitespace trimmed in C, and the rare
    value that then starts or ends with an invisible mark finished in Python."""
    trimmed = pc.utf8_trim(values, characters=WHITESPACE)
    if pc.all(pc.string_is_ascii(trimmed)).as_py() is not False:
        return trimmed
    marked = pc.match_substring_regex(trimmed, f"^[{INVISIBLE}]|[{INVISIBLE}]$").to_pylist()
    if not any(marked):
        return trimmed
    cleaned = trimmed.to_pylist()
    return pa.array([clean_text(v) if m else v for v, m in zip(cleaned, marked, strict=True)], pa.string())


def read_file(spec: FeedSpec, path: str, size: int, date: str | None) -> Iterator[pa.RecordBatch]:
    """The rows of one file, in batches, then its summary row."""
    from dlspark import fs

    summary = FileSummary(spec.name, path, size)
    rows: list[list[Any]] = []
    data = None
    if spec.max_bytes is not None and size > spec.max_bytes:  # not read at all
        _too_large(summary, spec, f"it holds {size:,} bytes")
    else:
        try:
            data = fs.read_bytes(path)
        except OSError as err:
            summary.reason, summary.detail = "unreadable_file", str(err)[:300]
    records = _records(spec, path, data, summary) if data is not None else iter(())
    data = None  # _records holds the bytes (or their decompressed form) while it needs them
    for values, reason, raw in records:
        record = raw.decode("utf-8", "replace") if reason else None
        rows.append([*values, spec.name, path, date, reason, record, raw if reason else None, None])
        summary.rows += 1
        if len(rows) >= BATCH_ROWS:
            yield _batch(rows)
            rows = []
    if summary.reason and summary.rows == 0:  # nothing to count the file by: the file itself is the record
        summary.records = summary.rows = 1
        rows.append([*NOTHING, spec.name, path, date, summary.reason, None, None, None])
    rows.append([None] * (len(ROW_FIELDS) + 1))
    rows[-1][-1] = summary.to_json()
    yield _batch(rows)


def _batch(rows: list[list[Any]]) -> pa.RecordBatch:
    """The rows as a batch; the canonical values are cleaned here (clean_text), a column at a time."""
    columns = [pa.array(list(column), type=f.type) for column, f in zip(zip(*rows, strict=True), OUTPUT, strict=True)]
    columns[: len(CANONICAL_FIELDS)] = [clean_column(column) for column in columns[: len(CANONICAL_FIELDS)]]
    return pa.RecordBatch.from_arrays(columns, schema=OUTPUT)


# canonical values (not yet cleaned: _batch cleans them a column at a time), reason, the raw bytes of a bad record
Record = tuple[list[str | None], str | None, bytes]
NOTHING: list[str | None] = [None] * len(CANONICAL_FIELDS)  # the values of a record that is quarantined


def _records(spec: FeedSpec, path: str, data: bytes, summary: FileSummary) -> Iterator[Record]:
    for suffix, starts, stream in ARCHIVES:
        if data.startswith(starts) or (data and path.endswith(suffix)):  # an empty file is empty, whatever its name
            try:
                if not data.startswith(starts):
                    raise ValueError(f"the file is named {suffix} but does not start as one")
                data = decompress(stream, data, spec.max_bytes)
            except TooLarge as err:
                _too_large(summary, spec, str(err))
                return
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as err:
                summary.reason, summary.detail = "corrupt_archive", str(err)[:300]
                return
            break
    if spec.format == "parquet":
        yield from _parquet(spec, data, summary)
        return
    parts, encoding = _decode(spec, data, summary)
    if parts is None:
        yield from _whole_file(summary, data)
    elif spec.format == "csv":
        yield from _csv(spec, parts, encoding, summary)
    else:
        yield from _json_lines(spec, parts, encoding, summary)


def _too_large(summary: FileSummary, spec: FeedSpec, what: str) -> None:
    summary.reason = "file_too_large"
    summary.detail = (
        f"{what}, over ingest.max_file_mb ({(spec.max_bytes or 0) / 2**20:,.0f} MB): one task reads a file whole. "
        "Split the file, or raise ingest.max_file_mb where executors have the memory (about twice the size)"
    )


def _decode(spec: FeedSpec, data: bytes, summary: FileSummary) -> tuple[Iterator[str] | None, str]:
    """The file's text in pieces that end at line breaks (`decoded`; bytes the encoding cannot decode kept as lone
    surrogates), and the encoding used: a BOM says which; else the feed's. None when the bytes are not text in that
    encoding at all, a decision about the whole file made before any of it is read."""
    encoding, start = spec.encoding, 0
    for bom, named in BOMS:
        if data.startswith(bom):
            encoding, start = named, len(bom) if named == "utf-8" else 0
            break
    wide = encoding.replace("_", "-").lower().startswith(("utf-16", "utf-32"))
    # UTF-16 text is half NUL bytes; a stray NUL is one record's
    if not wide and data.count(b"\x00", start) * 10 > len(data) - start:
        summary.reason = "wrong_encoding"
        summary.detail = f"NUL bytes in a file of feed {spec.name} (encoding {spec.encoding}): UTF-16/32 without BOM?"
        return None, encoding
    try:
        if wide:  # decoded strictly, at once: text in them is whole or not at all
            return pieces(data.decode(encoding, "strict"), PIECE), encoding
        b"".decode(encoding)  # LookupError for a codec that is not a text encoding
        # UTF-8 leaves only bytes >= 0x80 undecoded, which surrogateescape keeps; another codec may fail on a byte
        # below 0x80, and that must make the whole file wrong_encoding before any of its records is read.
        if codecs.lookup(encoding).name != "utf-8":
            for _ in decoded(data, start, encoding, "\n", PIECE):
                pass
        return decoded(data, start, encoding, "\r\n" if spec.format == "csv" else "\n", PIECE), encoding
    except (UnicodeDecodeError, LookupError) as err:
        summary.reason, summary.detail = "wrong_encoding", str(err)[:300]
        return None, encoding


def decoded(data: bytes, start: int, encoding: str, breaks: str, size: int) -> Iterator[str]:
    """The text of `data[start:]`, decoded `size` bytes at a time by one incremental decoder (the same text as a
    whole decode, in a few MB of memory instead of up to four bytes a character of the whole file), in pieces that
    each end just after a line break: a line feed, or with "\r" in `breaks` also a carriage return that no line
    feed follows (a CSV reader's line breaks; a JSON-lines reader splits at line feeds only)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
    held: list[str] = []
    for at in range(start, max(len(data), start + 1), size):
        text = decoder.decode(data[at : at + size], final=at + size >= len(data))
        cut = text.rfind("\n") + 1
        if "\r" in breaks:
            cut = max(cut, text.rfind("\r", 0, len(text) - 1) + 1)  # a CR with a character after it in this text
        if cut:
            yield "".join([*held, text[:cut]])
            held = []
        held.append(text[cut:])
    if any(held):
        yield "".join(held)


def pieces(text: str, size: int) -> Iterator[str]:
    """`text` in consecutive pieces of about `size` characters, each ending just after a line feed (or at the end):
    a line boundary whatever the line endings (UTF-16 and UTF-32 text, decoded whole; `decoded` for the rest)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size - 1) + 1 or len(text)
        yield text[start:end]
        start = end


def _whole_file(summary: FileSummary, data: bytes) -> Iterator[Record]:
    """A file quarantined whole: each of its lines is a record with the file's reason."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    summary.records = len(lines)
    for line in lines:
        yield NOTHING, summary.reason, line


def _surrogate(text: str) -> bool:
    """True where the text holds a lone surrogate: no character, so no UTF-8 encodes it (checked in C).

    Decoded text holds one exactly where decoding left a byte it could not decode: the decoders here leave such a
    byte as a lone surrogate (surrogateescape), and the strict wide decoders (UTF-16, UTF-32) leave none.
    """
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_reason(encoding: str) -> str:
    return "invalid_utf8" if codecs.lookup(encoding).name == "utf-8" else "invalid_encoding"


def _raw(text: str, encoding: str) -> bytes:
    """The record's bytes as they were in the file."""
    try:
        return text.encode(encoding, "surrogateescape")
    except (UnicodeEncodeError, LookupError):
        return text.encode("utf-8", "surrogatepass")


def _canonical(sources: list[str | None], record: dict[str, Any]) -> list[str | None]:
    """The canonical fields of a record (source field -> value) as text; `sources` names the source field of each
    canonical field (None: the feed has none)."""
    return [v if v is None or type(v) is str else _scalar(v) for v in map(record.get, sources)]  # type: ignore[arg-type]


# --- CSV -------------------------------------------------------------------------------------------------------


def csv_records(parts: Iterable[str], delimiter: str = ",") -> Iterator[tuple[str, bool]]:
    """The RFC 4180 records of a CSV text, each with its line ending, and whether its quote is still open at the
    end; a quote opens a quoted field only at the start of a field, as Python's csv module reads it.

    The text comes in parts that each end at a line break (`decoded`, `pieces`), read into lines by io.StringIO a
    part at a time (it copies what it reads, at four bytes a character). Lines without a quote are records as they
    are (the common case, at C speed); only lines with a quote, or inside a quoted field, are scanned character by
    character.
    """
    pending: list[str] = []
    quoted = False
    for line in (line for part in parts for line in io.StringIO(part, newline="")):
        if not quoted and '"' not in line:
            yield line, False
            continue
        pending.append(line)
        quoted = _still_quoted(line, quoted, delimiter)
        if not quoted:
            yield "".join(pending), False
            pending = []
    if pending:
        yield "".join(pending), True


def _still_quoted(line: str, quoted: bool, delimiter: str) -> bool:
    """Whether a quoted field is open at the end of `line`, given whether one was open at its start."""
    state = 2 if quoted else 0  # 0 field start, 1 unquoted field, 2 quoted field, 3 a quote inside a quoted field
    for ch in line:
        if state == 2:
            if ch == '"':
                state = 3
        elif state == 3:
            state = 2 if ch == '"' else 0 if ch == delimiter or ch in "\r\n" else 1
        elif ch == delimiter or ch in "\r\n":
            state = 0
        elif state == 0 and ch == '"':
            state = 2
        else:
            state = 1
    return state == 2


def _csv(spec: FeedSpec, parts: Iterator[str], encoding: str, summary: FileSummary) -> Iterator[Record]:
    records = csv_records(parts, spec.delimiter)
    first = next(records, None)
    if first is None:
        return
    header = [clean_text(name) for name in (csv_fields(first[0], spec.delimiter) or [])]
    positions = {name: i for i, name in enumerate(header)}
    mapped = set(spec.columns.values())  # a column the feed does not map may repeat (two unnamed columns: "a,b,,")
    duplicates = sorted({name for name in header if name in mapped and header.count(name) > 1})
    missing = [source for source in spec.required_sources if source not in positions]
    summary.extra_columns = [name for name in header if name and name not in spec.known]
    if duplicates or missing:
        summary.reason = "duplicate_column" if duplicates else "missing_column"
        summary.detail = (
            f"header {header} names {duplicates} twice"
            if duplicates
            else (f"header {header} lacks {', '.join(f'{s} ({spec.required_sources[s]})' for s in missing)}")
        )
    reason_for_text = _text_reason(encoding)
    picks = [positions.get(spec.columns[name]) if name in spec.columns else None for name in CANONICAL_FIELDS]
    for record, unterminated in records:
        if not record.strip("\r\n"):
            summary.blank += 1
            continue
        summary.records += 1
        if summary.reason:
            yield NOTHING, summary.reason, _raw(record, encoding)
            continue
        fields = csv_fields(record, spec.delimiter)
        reason = None
        if _surrogate(record):
            reason = reason_for_text
        elif unterminated:
            reason = "unterminated_quote"
        elif fields is None or "\x00" in record:  # Python's csv reads a NUL; it is no text a feed should hold
            reason = "unparseable_record"
        elif len(fields) != len(header):
            reason = "wrong_column_count"
        if reason or fields is None:
            yield NOTHING, reason, _raw(record, encoding)
        else:
            yield [None if i is None else fields[i] for i in picks], None, b""


def csv_fields(record: str, delimiter: str) -> list[str] | None:
    """The fields of one record, or None when it does not parse as exactly one record. A record without a quote
    is split as it is (what Python's csv module reads it as, at C speed), unless it is long enough for the csv
    module to refuse a field."""
    if '"' not in record and len(record) < FIELD_LIMIT:
        text = record.rstrip("\r\n")
        return text.split(delimiter) if text else []
    try:
        rows = list(csv.reader([record.rstrip("\r\n")], delimiter=delimiter, strict=False))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


# --- JSON lines ------------------------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _DuplicateKey
    return found


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Numbers keep the text they were written with ("2.50" stays "2.50"); NaN and Infinity are not JSON.
DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_float=str, parse_int=str, parse_constant=_not_a_number
)


def json_value(line: str) -> tuple[Any, str | None]:
    """The one JSON object a line holds, or the reason it does not hold exactly one."""
    text = line.strip()
    try:
        value, end = DECODER.raw_decode(text)
    except _DuplicateKey:
        return None, "duplicate_key"
    except ValueError:
        return None, "invalid_json"
    except RecursionError:
        return None, "too_deeply_nested"
    rest = text[end:].strip()
    if rest:
        try:
            DECODER.raw_decode(rest)
        except (RecursionError, _DuplicateKey):  # a second value, however malformed inside
            pass
        except ValueError:
            return None, "trailing_garbage"
        return None, "several_values"
    if not isinstance(value, dict):
        return None, "not_an_object"
    return value, None


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_lines(spec: FeedSpec, parts: Iterator[str], encoding: str, summary: FileSummary) -> Iterator[Record]:
    reason_for_text = _text_reason(encoding)
    sources = [spec.columns.get(name) for name in CANONICAL_FIELDS]
    for line in (line for part in parts for line in _lines(part)):
        if not line.strip():
            summary.blank += 1
            continue
        summary.records += 1
        if _surrogate(line):
            yield NOTHING, reason_for_text, _raw(line + "\n", encoding)
            continue
        value, reason = json_value(line)
        if reason is None:
            reason = _unmappable(line, value, spec.columns.values())
        if reason:
            yield NOTHING, reason, _raw(line + "\n", encoding)
        else:
            yield _canonical(sources, value), None, b""


def _lines(text: str) -> list[str]:
    """The lines of a JSON-lines text, without their line feeds (a last line may lack one)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the line feed that ends the last line
    return lines


def _unmappable(line: str, record: dict[str, Any], sources: Iterable[str]) -> str | None:
    """Why the values of a JSON object's mapped fields cannot be fields: an object or array (nested_value), or a
    string holding a lone surrogate ("\\ud800": JSON, but no text; invalid_json). Each check looks at the values
    only where the line's text allows the case (the line holds no lone surrogate of its own)."""
    if ("[" in line or line.count("{") > 1) and any(isinstance(record.get(s), dict | list) for s in sources):
        return "nested_value"
    if "\\u" in line and any(isinstance(v, str) and _surrogate(v) for v in (record.get(s) for s in sources)):
        return "invalid_json"
    return None


# --- Parquet ---------------------------------------------------------------------------------------------------


def _parquet(spec: FeedSpec, data: bytes, summary: FileSummary) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        summary.records = parquet.metadata.num_rows  # the footer's count
        names = parquet.schema_arrow.names
        missing = [source for source in spec.required_sources if source not in names]
        summary.extra_columns = [name for name in names if name not in spec.known]
        if missing:
            summary.reason, summary.detail = "missing_column", f"schema {names} lacks {missing}"
        wanted = [source for source in dict.fromkeys(spec.columns.values()) if source in names]
        table = parquet.read(columns=wanted)
        columns = {name: parquet_texts(table.column(name)) for name in wanted}
    except (pa.ArrowException, OSError, ValueError) as err:
        summary.reason, summary.detail = "unreadable_parquet", str(err)[:300]
        summary.records = 0
        return
    sources = [spec.columns.get(name) for name in CANONICAL_FIELDS]
    for i in range(table.num_rows):
        record = {name: values[i] for name, values in columns.items()}
        bad = summary.reason or next((v.reason for v in record.values() if isinstance(v, Untextable)), None)
        if bad:
            shown = {name: v.value if isinstance(v, Untextable) else v for name, v in record.items()}
            yield NOTHING, bad, json.dumps(shown, default=str).encode()
        else:
            yield _canonical(sources, record), None, b""


@dataclass(frozen=True)
class Untextable:
    """A Parquet value that has no text: why (a record reason), and the value as shown in the quarantine."""

    reason: str
    value: Any


def parquet_texts(column: pa.ChunkedArray) -> list[Any]:
    """A Parquet column's values as text (None for null), whatever its type: a timestamp as an ISO 8601 instant in
    UTC (`INSTANT_FORMAT`; one without a time zone is taken to be in UTC, as the session reads times; a date is
    its midnight); a list, struct or map value, or bytes that are not UTF-8, as an `Untextable`."""
    kind = column.type
    if pa.types.is_nested(kind):
        return [None if v is None else Untextable("nested_value", v) for v in column.to_pylist()]
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        unit = kind.unit if pa.types.is_timestamp(kind) else "s"
        return pc.strftime(column.cast(pa.timestamp(unit, "UTC")), INSTANT_FORMAT).to_pylist()
    try:
        return pc.cast(column, pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # bytes that are not UTF-8; a type Arrow cannot cast
        return [None if v is None else _text(v) for v in column.to_pylist()]


def _text(value: Any) -> str | Untextable:
    if not isinstance(value, bytes):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return Untextable("invalid_utf8", value.decode("utf-8", "backslashreplace"))
