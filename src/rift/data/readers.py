"""Reading CSV, TSV, JSON-lines, JSON-array and Parquet files, and folders written by ``datasets.save_to_disk``,
into records that remember their line (row) number, for precise error messages."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

from rift.data.examples import DataError
from rift.inputs import note_read

Record = tuple[int, dict[str, object]]  # (1-based line number where the row starts, column -> value)

FORMATS = (".csv", ".tsv", ".jsonl", ".json")  # each also as .gz
BINARY_FORMATS = (".parquet",)
DATASET_FOLDER = "a folder written by datasets.save_to_disk"


def read_text(path: Path) -> str:
    """The file decoded as UTF-8 (gunzipped if it ends in .gz); a bad byte is reported with its line and offset."""
    note_read(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read the file ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte offset {e.start}); "
            "save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark (Excel) is not part of the first column's name


def file_format(path: Path) -> str:
    """'.csv', '.tsv', '.jsonl' or '.json', looking through a final .gz."""
    if path.is_dir():
        return "dataset"
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    fmt = suffixes[0].lower() if suffixes else ""
    if fmt in BINARY_FORMATS and path.suffix != ".gz":
        return fmt
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown file type; use one of {', '.join(FORMATS)} (optionally .gz), "
                        f"{', '.join(BINARY_FORMATS)}, or {DATASET_FOLDER}")
    return fmt


def read_records(path: Path, columns: Sequence[str], *, fieldnames: Sequence[str] | None = None) -> list[Record]:
    """Rows of a CSV/TSV (header row, or `fieldnames` for a headerless file) or JSON-lines file.

    Every name in `columns` must be present; blank lines are skipped (they hold no row).
    """
    fmt = file_format(path)
    if fmt in ("dataset", ".parquet"):
        records = _read_rows(path, fmt, columns)
        if not records:
            raise DataError(f"{path}: holds no examples")
        return records
    text = read_text(path)
    if fmt == ".json" and text.lstrip().startswith("["):
        records = _read_json_array(path, text, columns)
    elif fmt in (".jsonl", ".json"):
        records = _read_jsonl(path, text, columns)
    else:
        records = _read_table(path, text, "\t" if fmt == ".tsv" else ",", columns, fieldnames)
    if not records:
        raise DataError(f"{path}: the file holds no examples")
    return records


def _read_table(
    path: Path, text: str, delimiter: str, columns: Sequence[str], fieldnames: Sequence[str] | None
) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    kind = "TSV" if delimiter == "\t" else "CSV"
    records: list[Record] = []
    header = list(fieldnames) if fieldnames is not None else None
    start = 1
    try:
        for fields in reader:
            if fields:
                if header is None:
                    header = fields
                    repeated = sorted({name for name in header if header.count(name) > 1})
                    if repeated:  # a row would keep only the last of them
                        raise DataError(f"{path}, line {start}: the header names column {repeated[0]!r} more than once")
                    _check_columns(f"{path}", "column", columns, header)
                elif len(fields) != len(header):
                    raise DataError(f"{path}, line {start}: {len(fields)} fields, but the header has {len(header)}")
                else:
                    records.append((start, dict(zip(header, fields))))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}, line {start}: malformed {kind} row ({e})") from None
    return records


def _read_jsonl(path: Path, text: str, columns: Sequence[str]) -> list[Record]:
    records: list[Record] = []
    for line, row in enumerate(text.split("\n"), 1):
        if not row.strip():
            continue
        try:
            obj = json.loads(row)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}, line {line}: malformed JSON ({e.msg}, column {e.colno}); each line must be one JSON object"
            ) from None
        records.append((line, _json_object(f"{path}, line {line}", obj, columns, "one JSON object per line")))
    return records


def _read_json_array(path: Path, text: str, columns: Sequence[str]) -> list[Record]:
    """A JSON array of objects; the record number is the object's 1-based position in the array."""
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}: malformed JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON array of objects, got a {type(rows).__name__}")
    return [(number, _json_object(f"{path}, item {number}", obj, columns, "a JSON object"))
            for number, obj in enumerate(rows, 1)]


def _json_object(where: str, obj: object, columns: Sequence[str], expected: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected {expected}, got a {type(obj).__name__}")
    _check_columns(where, "field", columns, obj)
    return obj


def _read_rows(path: Path, fmt: str, columns: Sequence[str]) -> list[Record]:
    """Rows of a Parquet file or of a ``datasets.save_to_disk`` folder (a Dataset, or a DatasetDict of one split);
    the record number is the 1-based row. Label columns of type ``ClassLabel`` hold their ids."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path}: reading {fmt} data needs the package datasets (pip install datasets)") from None
    note_read(path)
    try:
        if fmt == "dataset":
            table = datasets.load_from_disk(str(path))
        else:
            table = datasets.Dataset.from_parquet(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: not {DATASET_FOLDER} (no dataset_info.json or dataset_dict.json)") from None
    except Exception as error:  # noqa: BLE001 - pyarrow and datasets raise many kinds; each is a bad file here
        raise DataError(f"{path}: cannot read it as {fmt} data ({str(error).splitlines()[0]})") from None
    if isinstance(table, datasets.DatasetDict):
        if len(table) != 1:
            raise DataError(f"{path}: a DatasetDict of splits {', '.join(table)}; give the folder of one split "
                            f"({path}/{next(iter(table))})")
        table = next(iter(table.values()))
    _check_columns(str(path), "column", columns, table.column_names)
    return [(number, row) for number, row in enumerate(table.select_columns(list(columns)), 1)]


def _check_columns(where: str, kind: str, wanted: Sequence[str], present: Sequence[str] | dict) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        names = ", ".join(repr(c) for c in present) or "none"
        raise DataError(f"{where}: no {kind} {missing[0]!r}; the {kind}s are: {names}")
