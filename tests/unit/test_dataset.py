"""Unit tests for scaleup_ci.dataset: format detection, streaming cuts, counting, sampling."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from scaleup_ci.dataset import Dataset, open_dataset
from scaleup_ci.errors import InputError

RECORDS = [{"id": i, "text": f"q{i}"} for i in range(30)]


def _jsonl(path: Path, records: list = RECORDS, *, gz: bool = False) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _array(path: Path, records: list = RECORDS, *, gz: bool = False) -> Path:
    data = json.dumps(records).encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _csv(path: Path, rows: int = 30, *, gz: bool = False, delimiter: str = ",") -> Path:
    lines = [delimiter.join(["id", "text"])] + [f"{i}{delimiter}q{i}" for i in range(rows)]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _ids(ds: Dataset, limit: int | None = None) -> list[int]:
    return [r["id"] for r in ds.iter_examples(limit)]


# ---------------------------------------------------------------- detection, each format


def test_jsonl_detected_and_streamed(tmp_path: Path) -> None:
    """A plain JSONL file is detected as jsonl and yields its raw lines."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl"))
    assert (ds.kind, ds.gzip, ds.suffix) == ("jsonl", False, ".jsonl")
    assert list(ds.iter_raw(2)) == [
        json.dumps(RECORDS[0]).encode(),
        json.dumps(RECORDS[1]).encode(),
    ]


def test_jsonl_gz_detected(tmp_path: Path) -> None:
    """A gzipped JSONL file is detected as gzip jsonl and streams its records."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl.gz", gz=True))
    assert (ds.kind, ds.gzip) == ("jsonl", True)
    assert _ids(ds, 3) == [0, 1, 2]


def test_gzip_detected_by_magic_under_plain_name(tmp_path: Path) -> None:
    """Gzip is detected by its magic bytes even when the name says .jsonl."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl", gz=True))
    assert ds.gzip and ds.kind == "jsonl"
    assert ds.count() == 30


def test_json_array_detected(tmp_path: Path) -> None:
    """A JSON array document is detected and yields each element's raw text."""
    ds = open_dataset(_array(tmp_path / "d.json"))
    assert (ds.kind, ds.suffix) == ("json-array", ".json")
    assert list(ds.iter_raw(1)) == [json.dumps(RECORDS[0])]


def test_json_array_gz_detected(tmp_path: Path) -> None:
    """A gzipped JSON array is detected and streamed."""
    ds = open_dataset(_array(tmp_path / "d.json.gz", gz=True))
    assert (ds.kind, ds.gzip) == ("json-array", True)
    assert _ids(ds, 4) == [0, 1, 2, 3]


def test_pretty_printed_array_detected(tmp_path: Path) -> None:
    """A multi-line (indented) JSON array is a json-array, not JSONL."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS, indent=2))
    ds = open_dataset(path)
    assert ds.kind == "json-array"
    assert ds.count() == 30


def test_csv_detected(tmp_path: Path) -> None:
    """A .csv file yields rows (lists of strings) after its header."""
    ds = open_dataset(_csv(tmp_path / "d.csv"))
    assert (ds.kind, ds.suffix) == ("csv", ".csv")
    assert list(ds.iter_raw(2)) == [["0", "q0"], ["1", "q1"]]


def test_csv_gz_detected(tmp_path: Path) -> None:
    """A .csv.gz file is a gzip CSV."""
    ds = open_dataset(_csv(tmp_path / "d.csv.gz", gz=True))
    assert (ds.kind, ds.gzip) == ("csv", True)
    assert ds.count() == 30


def test_tsv_uses_tab(tmp_path: Path) -> None:
    """A .tsv file is split on tabs and written back as .tsv."""
    ds = open_dataset(_csv(tmp_path / "d.tsv", delimiter="\t"))
    assert ds.suffix == ".tsv"
    assert list(ds.iter_raw(1)) == [["0", "q0"]]


def test_jsonl_of_arrays_is_jsonl(tmp_path: Path) -> None:
    """A file with one JSON array per line is JSONL, not a JSON array."""
    path = tmp_path / "d.json"
    path.write_text("[1, 2]\n[3, 4]\n[5]\n")
    ds = open_dataset(path)
    assert ds.kind == "jsonl"
    assert list(ds.iter_examples()) == [[1, 2], [3, 4], [5]]


def test_objects_per_line_under_json_name_is_jsonl(tmp_path: Path) -> None:
    """Several one-line objects are JSONL even when the file is named .json."""
    ds = open_dataset(_jsonl(tmp_path / "d.json"))
    assert ds.kind == "jsonl"


def test_single_line_jsonl_named_jsonl(tmp_path: Path) -> None:
    """A .jsonl file with a single object line is a one-record JSONL file."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl", RECORDS[:1]))
    assert ds.kind == "jsonl" and ds.count() == 1


# ---------------------------------------------------------------- JSONL details


def test_jsonl_bom_stripped(tmp_path: Path) -> None:
    """A UTF-8 BOM at the start of a JSONL file is stripped from the first line."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"id": 0}\n{"id": 1}\n')
    ds = open_dataset(path)
    assert list(ds.iter_raw()) == [b'{"id": 0}', b'{"id": 1}']
    assert ds.count() == 2


def test_jsonl_crlf(tmp_path: Path) -> None:
    """CRLF line endings are accepted and the \\r is not part of the raw line."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": 0}\r\n{"id": 1}\r\n')
    ds = open_dataset(path)
    assert list(ds.iter_raw()) == [b'{"id": 0}', b'{"id": 1}']
    assert ds.count() == 2


def test_jsonl_blank_lines_skipped(tmp_path: Path) -> None:
    """Blank and whitespace-only lines are not examples, for iteration and for count()."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\n{"id": 0}\n\n  \n\r\n{"id": 1}\n\n\n')
    ds = open_dataset(path)
    assert _ids(ds) == [0, 1]
    assert ds.count() == 2


def test_jsonl_missing_final_newline(tmp_path: Path) -> None:
    """The last line counts even without a final newline."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": 0}\n{"id": 1}')
    ds = open_dataset(path)
    assert _ids(ds) == [0, 1]
    assert ds.count() == 2


def test_jsonl_u2028_inside_string(tmp_path: Path) -> None:
    """U+2028 inside a string does not split the line."""
    path = tmp_path / "d.jsonl"
    records = [{"id": 0, "t": "a\u2028b\u2029c\x85d"}, {"id": 1, "t": "x"}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    ds = open_dataset(path)
    assert list(ds.iter_examples()) == records
    assert ds.count() == 2


def test_jsonl_bad_line_named(tmp_path: Path) -> None:
    """A line that is not JSON raises InputError naming the file and the line number."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 0}\n\n{"id": 1}\n{"id": \n')
    ds = open_dataset(path)
    with pytest.raises(InputError) as info:
        list(ds.iter_raw())
    assert str(path) in info.value.message and "line 4" in info.value.message
    assert info.value.hint


def test_jsonl_first_n_does_not_read_bad_line_later(tmp_path: Path) -> None:
    """The first-N cut stops before a garbage line 1000, so it still yields the first 10."""
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"id": i}) for i in range(999)] + ["garbage!!"]
    path.write_text("\n".join(lines) + "\n")
    ds = open_dataset(path)
    assert _ids(ds, 10) == list(range(10))
    assert ds.write_subset(tmp_path / "out.jsonl", 10) == 10


def test_jsonl_count_large_many_chunks(tmp_path: Path) -> None:
    """The chunked fast count is right across 1 MiB chunk boundaries, with blank lines."""
    path = tmp_path / "d.jsonl"
    line = json.dumps({"t": "x" * 100})
    with open(path, "w") as f:
        for i in range(30_000):
            f.write(line + "\n")
            if i % 7000 == 0:
                f.write("\n \n")
    ds = open_dataset(path)
    assert ds.count() == 30_000 == sum(1 for _ in ds.iter_raw())


# ---------------------------------------------------------------- JSON array details


def test_json_array_truncated_still_yields_first(tmp_path: Path) -> None:
    """A JSON array cut off after element 20 still yields the first 10 elements."""
    path = tmp_path / "d.json"
    text = json.dumps(RECORDS)
    cut = text.index('{"id": 21')
    path.write_text(text[: cut + 5])
    ds = open_dataset(path)
    assert _ids(ds, 10) == list(range(10))
    with pytest.raises(InputError, match="truncated"):
        ds.count()


def test_json_array_elements_across_chunks(tmp_path: Path) -> None:
    """Elements (including numbers and long strings) split by the 1 MiB chunk edge parse whole."""
    path = tmp_path / "d.json"
    records: list = []
    for i in range(3000):
        records.append({"id": i, "pad": "é\\" * (i % 500)})
        records.append(123456789 + i)
    path.write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    ds = open_dataset(path)
    assert list(ds.iter_examples()) == records
    assert ds.count() == len(records)


def test_json_array_element_bigger_than_chunk(tmp_path: Path) -> None:
    """An element larger than the read chunk is still parsed correctly."""
    path = tmp_path / "d.json"
    records = [{"id": 0, "big": "y" * (3 << 20)}, {"id": 1}]
    path.write_text(json.dumps(records))
    assert _ids(open_dataset(path)) == [0, 1]


def test_json_array_bad_element_located(tmp_path: Path) -> None:
    """Invalid JSON inside an array names the line and byte."""
    path = tmp_path / "d.json"
    path.write_text('[\n  {"id": 0},\n  {"id": 1,, }\n]')
    with pytest.raises(InputError, match=r"line 3.*byte"):
        list(open_dataset(path).iter_raw())


def test_json_array_extra_data_rejected(tmp_path: Path) -> None:
    """Content after the closing ] is an error when the whole array is read."""
    path = tmp_path / "d.json"
    path.write_text('[1, 2]\n{"x": 1}')
    ds = Dataset(path, "json-array")
    with pytest.raises(InputError, match="extra data"):
        ds.count()


def test_empty_array_counts_zero(tmp_path: Path) -> None:
    """An empty JSON array is a valid dataset with zero examples."""
    path = tmp_path / "d.json"
    path.write_text("[ ]")
    ds = open_dataset(path)
    assert ds.count() == 0
    assert ds.write_subset(tmp_path / "out.json", 5) == 0
    assert json.loads((tmp_path / "out.json").read_text()) == []


# ---------------------------------------------------------------- JSON object + pointer


def test_object_with_pointer(tmp_path: Path) -> None:
    """A JSON object streams the list at examples-key, skipping the other members."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"meta": {"x": [1, "]}"]}, "other": [9], "data": RECORDS}))
    ds = open_dataset(path, examples_key="/data")
    assert (ds.kind, ds.examples_key) == ("json-object", "/data")
    assert _ids(ds, 3) == [0, 1, 2]
    assert ds.count() == 30


def test_object_gz_with_pointer(tmp_path: Path) -> None:
    """A gzipped JSON object with examples-key works like the plain one."""
    path = tmp_path / "d.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"data": RECORDS}).encode()))
    ds = open_dataset(path, examples_key="data")
    assert ds.gzip and ds.examples_key == "/data"
    assert ds.count() == 30


def test_object_without_key_lists_candidates(tmp_path: Path) -> None:
    """A JSON object without examples-key is an error whose hint lists the list-valued keys."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": 1, "rows": RECORDS, "tags": ["a"]}))
    with pytest.raises(InputError) as info:
        open_dataset(path)
    assert str(path) in info.value.message
    assert info.value.hint and "/rows" in info.value.hint and "/tags" in info.value.hint


def test_object_missing_pointer(tmp_path: Path) -> None:
    """A pointer to a key that does not exist is an error that suggests the list keys."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"rows": RECORDS}))
    with pytest.raises(InputError) as info:
        open_dataset(path, examples_key="/data")
    assert "'data'" in info.value.message
    assert info.value.hint and "/rows" in info.value.hint


def test_object_pointer_not_a_list(tmp_path: Path) -> None:
    """A pointer to a non-list value is an error saying what it found."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"data": {"a": 1}}))
    with pytest.raises(InputError, match="an object, not a list"):
        open_dataset(path, examples_key="/data")


def test_nested_pointer_written_at_same_pointer(tmp_path: Path) -> None:
    """A nested pointer streams the inner list and the subset nests it at the same pointer."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a": {"skip": "x", "b": RECORDS}, "z": 1}))
    ds = open_dataset(path, examples_key="/a/b")
    out = tmp_path / "out.json"
    assert ds.write_subset(out, 5) == 5
    assert json.loads(out.read_text()) == {"a": {"b": RECORDS[:5]}}


def test_pointer_with_list_index(tmp_path: Path) -> None:
    """A pointer may step into a list by index."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"splits": [{"items": [1]}, {"items": RECORDS}]}))
    ds = open_dataset(path, examples_key="/splits/1/items")
    assert ds.count() == 30
    out = tmp_path / "o.json"
    ds.write_subset(out, 2)
    assert json.loads(out.read_text())["splits"][1]["items"] == RECORDS[:2]


# ---------------------------------------------------------------- errors at open


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an InputError naming it."""
    with pytest.raises(InputError, match="not found"):
        open_dataset(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is an InputError."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        open_dataset(path)


def test_whitespace_only_file(tmp_path: Path) -> None:
    """A file holding only whitespace is reported as empty."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n \n")
    with pytest.raises(InputError, match="empty"):
        open_dataset(path)


def test_utf16_rejected(tmp_path: Path) -> None:
    """A UTF-16 file (with BOM) is rejected with a hint to convert to UTF-8."""
    path = tmp_path / "d.jsonl"
    path.write_bytes('{"id": 0}\n'.encode("utf-16"))
    with pytest.raises(InputError) as info:
        open_dataset(path)
    assert info.value.hint and "convert" in info.value.hint and "UTF-8" in info.value.hint


def test_latin1_rejected(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are rejected with their byte offset."""
    path = tmp_path / "d.jsonl"
    path.write_bytes('{"t": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match=r"byte 10: not valid UTF-8"):
        open_dataset(path)


def test_unknown_shape(tmp_path: Path) -> None:
    """Text that is neither JSON nor a named CSV is an error listing the supported formats."""
    path = tmp_path / "d.txt"
    path.write_text("hello world\nmore\n")
    with pytest.raises(InputError) as info:
        open_dataset(path)
    assert "unrecognised" in info.value.message
    assert info.value.hint and "JSONL" in info.value.hint


def test_directory_rejected(tmp_path: Path) -> None:
    """A directory is not a dataset."""
    with pytest.raises(InputError, match="directory"):
        open_dataset(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    """A file with the gzip magic but a corrupt body is an InputError."""
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(InputError, match="gzip"):
        open_dataset(path)


def test_csv_ragged_row(tmp_path: Path) -> None:
    """A CSV row with the wrong number of fields names its line."""
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(InputError, match="line 3"):
        list(open_dataset(path).iter_raw())


# ---------------------------------------------------------------- write_subset


def test_write_subset_jsonl(tmp_path: Path) -> None:
    """A JSONL subset is the raw lines, each ending in a newline."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": 0}\r\n\n{"id":   1}')
    out = tmp_path / "stage" / "input.jsonl"
    assert open_dataset(path).write_subset(out, 5) == 2
    assert out.read_bytes() == b'{"id": 0}\n{"id":   1}\n'


def test_write_subset_array(tmp_path: Path) -> None:
    """A JSON-array subset is the elements joined by ',\\n' inside brackets."""
    ds = open_dataset(_array(tmp_path / "d.json", gz=True))
    out = tmp_path / "out.json"
    assert ds.write_subset(out, 3) == 3
    assert out.read_text().startswith('[{"id": 0, "text": "q0"},\n{"id": 1')
    assert json.loads(out.read_text()) == RECORDS[:3]


def test_write_subset_csv(tmp_path: Path) -> None:
    """A CSV subset keeps the header and the chosen rows."""
    ds = open_dataset(_csv(tmp_path / "d.csv.gz", gz=True))
    out = tmp_path / "out.csv"
    assert ds.write_subset(out, 2) == 2
    with open(out, newline="") as f:
        assert list(csv.reader(f)) == [["id", "text"], ["0", "q0"], ["1", "q1"]]


def test_write_subset_smaller_dataset(tmp_path: Path) -> None:
    """Asking for more examples than exist writes them all and returns the real number."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl"))
    assert ds.write_subset(tmp_path / "a.jsonl", 500) == 30
    assert ds.write_subset(tmp_path / "b.jsonl", 500, sample="random", seed=3) == 30
    got = [json.loads(x)["id"] for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert sorted(got) == list(range(30))


def test_write_subset_leaves_no_temp_file(tmp_path: Path) -> None:
    """The subset is written atomically: only the destination remains in the folder."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl"))
    out_dir = tmp_path / "stage"
    ds.write_subset(out_dir / "input.jsonl", 4)
    assert [p.name for p in out_dir.iterdir()] == ["input.jsonl"]


@pytest.mark.parametrize("kind", ["jsonl", "array", "csv"])
def test_random_samples_nest(tmp_path: Path, kind: str) -> None:
    """Random samples with one seed are deterministic and each is a prefix of the larger one."""
    if kind == "jsonl":
        ds = open_dataset(_jsonl(tmp_path / "d.jsonl"))
    elif kind == "array":
        ds = open_dataset(_array(tmp_path / "d.json"))
    else:
        ds = open_dataset(_csv(tmp_path / "d.csv"))
    subsets = {}
    for n in (5, 12, 25):
        dest = tmp_path / f"s{n}{ds.suffix}"
        ds.write_subset(dest, n, sample="random", seed=7)
        subsets[n] = (
            _ids(open_dataset(dest))
            if kind != "csv"
            else [int(r[0]) for r in open_dataset(dest).iter_raw()]
        )
    assert subsets[5] == subsets[12][:5] and subsets[12] == subsets[25][:12]
    assert subsets[25] != list(range(25))
    again = tmp_path / f"again{ds.suffix}"
    ds.write_subset(again, 12, sample="random", seed=7)
    assert again.read_bytes() == (tmp_path / f"s12{ds.suffix}").read_bytes()
    other = tmp_path / f"other{ds.suffix}"
    ds.write_subset(other, 12, sample="random", seed=8)
    assert other.read_bytes() != again.read_bytes()


def test_random_sample_validates_chosen_lines(tmp_path: Path) -> None:
    """A random sample that picks a bad JSONL line raises InputError naming that line."""
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": 0}\n{oops\n')
    with pytest.raises(InputError, match="line 2"):
        open_dataset(path).write_subset(tmp_path / "o.jsonl", 2, sample="random")


# ---------------------------------------------------------------- count / describe


@pytest.mark.parametrize(
    ("name", "maker"),
    [
        ("d.jsonl", _jsonl),
        ("d.jsonl.gz", lambda p: _jsonl(p, gz=True)),
        ("d.json", _array),
        ("d.json.gz", lambda p: _array(p, gz=True)),
        ("d.csv", _csv),
        ("d.csv.gz", lambda p: _csv(p, gz=True)),
    ],
)
def test_count_each_format(tmp_path: Path, name: str, maker) -> None:  # type: ignore[no-untyped-def]
    """count() gives the number of examples for every format, plain and gzipped."""
    ds = open_dataset(maker(tmp_path / name))
    assert ds.count() == 30
    assert ds.count() == 30  # cached


def test_describe(tmp_path: Path) -> None:
    """describe() names the format and compression, and the count once it is known."""
    ds = open_dataset(_jsonl(tmp_path / "d.jsonl.gz", [{"i": i} for i in range(2000)], gz=True))
    assert ds.describe().startswith("JSONL (gzip), ")
    ds.count()
    assert ds.describe() == "JSONL (gzip), 2,000 examples"


# ---------------------------------------------------------------- streaming scanner edges


def test_object_skips_huge_sibling_values(tmp_path: Path) -> None:
    """Members bigger than a chunk before the wanted key (escapes, nesting) are skipped."""
    path = tmp_path / "d.json"
    doc = {
        "blob": 'a\\"b' * 700_000,
        "nested": [{"x": ["]", "}", '\\"']} for _ in range(60_000)],
        "n": 12345678901234567890,
        "data": RECORDS,
    }
    path.write_text(json.dumps(doc))
    ds = open_dataset(path, examples_key="/data")
    assert _ids(ds) == list(range(30))


def test_array_garbage_in_middle_reported_early(tmp_path: Path) -> None:
    """Invalid JSON in the middle of a large array is reported at its line, not at end of file."""
    path = tmp_path / "d.json"
    good = ",\n".join(json.dumps({"id": i, "pad": "x" * 50}) for i in range(40_000))
    path.write_text("[" + good + ",\n{oops}\n," + good + "]")
    with pytest.raises(InputError, match="line 40001"):
        list(open_dataset(path).iter_raw())
    # count() does not validate the elements (it only counts them, without parsing).
    assert open_dataset(path).count() == 80_001


def test_csv_zero_rows_subset_keeps_header(tmp_path: Path) -> None:
    """A zero-row CSV subset still carries the header."""
    ds = open_dataset(_csv(tmp_path / "d.csv", rows=0))
    out = tmp_path / "o.csv"
    assert ds.count() == 0
    assert ds.write_subset(out, 0) == 0
    assert out.read_text() == "id,text\n"


def test_truncated_gzip_midstream(tmp_path: Path) -> None:
    """A gzip stream cut short is reported as an InputError when it is read."""
    path = tmp_path / "d.jsonl.gz"
    data = gzip.compress(b"".join(b'{"id": %d}\n' % i for i in range(200_000)))
    path.write_bytes(data[: len(data) // 2])
    ds = open_dataset(path)
    with pytest.raises(InputError, match="gzip"):
        ds.count()


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be opened (permission denied) is an InputError with a hint."""
    import scaleup_ci.dataset as dataset_module

    path = _jsonl(tmp_path / "d.jsonl")

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dataset_module, "open", deny, raising=False)
    with pytest.raises(InputError, match="permission denied") as info:
        open_dataset(path)
    assert info.value.hint and "chmod" in info.value.hint


def test_a_whole_check_gives_the_count_that_counting_gives(tmp_path: Path) -> None:
    """check() over the whole file counts what count() counts (blank lines, CRLF, a last line
    without a newline), so the count it leaves behind saves a second pass."""
    from scaleup_ci.dataset import open_dataset

    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"a": 1}\r\n\n  \n{"a": 2}\n\t\r\n{"a": 3}')
    checked = open_dataset(p)
    assert checked.check() == 3 and checked.count() == 3
    assert open_dataset(p).count() == 3
    assert open_dataset(p).check(limit=2) == 2
