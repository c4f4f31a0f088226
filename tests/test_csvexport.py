"""The export writers: formulas neutralised in CSV, values kept as they are in JSON, chunked output."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

from govern.csvexport import CHUNK_SIZE, csv_chunks, json_chunks, safe_cell


def test_safe_cell_quotes_what_a_spreadsheet_would_run():
    assert [safe_cell(v) for v in ("=1+1", "+4", "-2", "@SUM(A1)", "\tx", "plain", None, 7)] == [
        "'=1+1", "'+4", "'-2", "'@SUM(A1)", "'\tx", "plain", "", "7"]
    assert safe_cell(datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)) == "2026-01-02T03:04:05+00:00"
    assert safe_cell(date(2026, 1, 2)) == "2026-01-02"


def test_csv_chunks_stream_a_large_export_in_pieces_that_join_to_one_file():
    rows = [(i, "=cmd" if i == 0 else f"name {i}") for i in range(5000)]
    chunks = list(csv_chunks(("id", "name"), rows))
    assert len(chunks) > 1 and all(len(c) <= CHUNK_SIZE + 100 for c in chunks)
    table = list(csv.reader(io.StringIO("".join(chunks))))
    assert table[0] == ["id", "name"] and table[1] == ["0", "'=cmd"] and len(table) == 5001


def test_json_chunks_keep_values_and_are_valid_when_empty():
    assert json.loads("".join(json_chunks(("a",), []))) == []
    assert json.loads("".join(json_chunks(("a", "b"), [("=x", date(2026, 1, 2))]))) == [{"a": "=x", "b": "2026-01-02"}]
