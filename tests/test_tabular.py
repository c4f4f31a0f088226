"""Reading tabular exports: encodings, separators, header names, records and their line numbers."""

from __future__ import annotations

import pytest

from govern import tabular


def test_decode_reads_utf8_with_or_without_a_bom_and_names_the_bad_line():
    assert tabular.decode("a,b\nZoë,1\n".encode()) == "a,b\nZoë,1\n"
    assert tabular.decode(b"\xef\xbb\xbfa,b\n") == "a,b\n"
    with pytest.raises(tabular.UndecodableError) as caught:
        tabular.decode("a,b\nZoë,1\n".encode("latin-1"))
    assert caught.value.line == 2


def test_utf16_only_when_asked():
    content = "a,b\n1,2\n".encode("utf-16")
    assert tabular.decode(content, utf16=True) == "a,b\n1,2\n"
    with pytest.raises(tabular.UndecodableError):
        tabular.decode(content)
    with pytest.raises(tabular.UndecodableError) as caught:
        tabular.decode(b"\xff\xfeA\x00B", utf16=True)
    assert caught.value.line is None


def test_separators():
    assert tabular.sniff_delimiter("Email;Name;Dept\r\n") == ";"
    assert tabular.sniff_delimiter('"Doe; Jane",Email\r\n') == ","
    assert tabular.excel_separator("sep=;\r\n") == ";"
    assert tabular.excel_separator("SEP=,") == ","
    assert tabular.excel_separator("Email,Name") is None


def test_header_names_compare_without_case_bom_or_punctuation():
    assert tabular.normalise_header("\ufeffWork-E_mail  Address") == "work e mail address"


def test_records_carry_the_line_each_begins_and_ends_on():
    text = 'a,b\r\n"two\nlines",x\r\n\r\nlast,y\r\n'
    found = [(r.line, r.end, r.cells) for r in tabular.records(text, first_line=2)]
    assert found == [(2, 2, ["a", "b"]), (3, 4, ["two\nlines", "x"]), (5, 5, []), (6, 6, ["last", "y"])]
    assert [tabular.is_blank(r) for _line, _end, r in found] == [False, False, True, False]


def test_an_unclosed_quote_names_the_line_its_record_began():
    records = tabular.records('a,b\r\nok,1\r\n"never closed,2\r\nmore\r\n')
    with pytest.raises(tabular.RecordError) as caught:
        list(records)
    assert caught.value.line == 3
    assert "never closed" in tabular.csv_problem(caught.value.error)


def test_cells_by_name_and_file_names():
    assert tabular.cells_by_name(["x", "y"], {0: "email", 2: "name"}) == {"email": "x", "name": ""}
    assert tabular.base_name("C:\\Users\\hr/exports\\people.csv") == "people.csv"
    assert tabular.base_name(None) == ""
    assert len(tabular.digest(b"")) == 64
