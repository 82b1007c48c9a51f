"""rows.py: the streaming reader, on real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from batchpatch.errors import UsageError
from batchpatch.rows import open_input


def rows_of(path: Path, **kw: str) -> list:
    source = open_input(str(path), **kw)
    try:
        return list(source)
    finally:
        source.close()


def test_csv_keeps_strings_line_numbers_and_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(
        b'\xef\xbb\xbfPKey,phone,note\r\n'
        b'@a,0033,"multi\nline, with comma"\r\n'
        b'@b,,Z\xc3\xbcrich\r\n'
    )
    rows = rows_of(path)
    assert [r.line for r in rows] == [2, 4]
    assert rows[0].key == "@a"
    assert rows[0].values == {"phone": "0033", "note": "multi\nline, with comma"}
    assert rows[0].raw == b'@a,0033,"multi\nline, with comma"\r\n'
    assert rows[1].values == {"phone": "", "note": "Zürich"}
    assert all(r.problem is None for r in rows)


def test_csv_bad_records_become_invalid_rows_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"PKey,phone\n@a,1\n@b\n,2\n@c,\xff\xfe\n\n@d,4\n")
    rows = rows_of(path)
    assert [(r.line, r.problem) for r in rows] == [
        (2, None),
        (3, "expected 2 cells, found 1"),
        (4, "empty key column 'PKey'"),
        (5, "the line is not valid UTF-8"),
        (7, None),
    ]
    assert rows[1].raw == b"@b\n"


def test_gzip_is_read_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    path.write_bytes(gzip.compress(b"PKey,phone\n@a,1\n"))
    assert [r.values for r in rows_of(path)] == [{"phone": "1"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"id,phone\n@a,1\n", "no key column 'PKey'"),
        (b"PKey,phone,phone\n", "appears twice"),
    ],
)
def test_unusable_csv_is_a_usage_error_naming_the_file(tmp_path: Path, content: bytes,
                                                       message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message) as info:
        open_input(str(path))
    assert "bad.csv" in str(info.value)


def test_missing_file_and_unknown_format_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        open_input(str(tmp_path / "nope.csv"))
    (tmp_path / "x.txt").write_text("PKey\n")
    with pytest.raises(UsageError, match="--format"):
        open_input(str(tmp_path / "x.txt"))


def test_custom_key_column(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("email,phone\na@x.com,1\n")
    rows = rows_of(path, key_column="email")
    assert rows[0].key == "a@x.com" and rows[0].values == {"phone": "1"}


def test_jsonl_keeps_types_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(
        b'{"PKey": "@a", "phone": "0033", "age": 31, "nick": null}\n'
        b'{"PKey": "@b", broken\n'
        b"[1, 2]\n"
        b'{"phone": "1"}\n'
        b"\n"
        b'{"PKey": 42, "loc": {"city": "X"}}\n'
    )
    rows = rows_of(path)
    assert rows[0].values == {"phone": "0033", "age": 31, "nick": None} and rows[0].typed
    assert rows[1].problem.startswith("broken JSON")
    assert rows[1].raw == b'{"PKey": "@b", broken\n'
    assert rows[2].problem == "not a JSON object (list)"
    assert rows[3].problem == "missing key 'PKey'"
    assert (rows[4].line, rows[4].key, rows[4].values) == (6, "42", {"loc": {"city": "X"}})


def test_jsonl_with_no_key_anywhere_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"id": "a", "phone": "1"}\n{"id": "b"}\n')
    with pytest.raises(UsageError, match="no key 'PKey'"):
        open_input(str(path))


def test_reader_streams(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("PKey,phone\n")
        for i in range(50_000):
            fh.write(f"@k{i},{i}\n")
    source = open_input(str(path))
    first = next(iter(source))
    assert first.key == "@k0"
    assert source.stream.tell() < path.stat().st_size  # not read to the end to give one row
    source.close()


def test_semicolon_csv_needs_and_takes_a_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b'PKey;phone;city\n@a;"1;2";Z\xc3\xbcrich\n')
    with pytest.raises(UsageError, match="try --delimiter ';'"):
        open_input(str(path))
    rows = rows_of(path, delimiter=";")
    assert rows[0].values == {"phone": "1;2", "city": "Zürich"}
