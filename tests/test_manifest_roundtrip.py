"""The manifest's list cells round-trip every string (hypothesis), and old manifests still read."""

from __future__ import annotations

import string

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from spec2img.manifest import COLUMNS, join_cell, read_manifest, split_cell, write_manifest

# any text a CSV cell can carry: every code point but surrogates (not encodable in UTF-8)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NASTY = ["", ";", ";;", "\\", "\\;", "\\e", "\\0", "\x00", "a;b", "rock;pop", "\n", "\r\n", '"', "'",
         ",", " ", "NA", "nan", "None", "[]", "1e5", "é", "e\u0301", "../x", "$x^$"]


@given(st.lists(TEXT, max_size=6))
@settings(max_examples=300, deadline=None)
def test_cells_round_trip_any_list_of_strings(items):
    assert split_cell(join_cell(items)) == items


@given(st.lists(st.sampled_from(NASTY) | TEXT, min_size=1, max_size=4), TEXT)
@settings(max_examples=40, deadline=None)
def test_manifest_file_round_trips_sources_and_labels(tmp_path_factory, labels, source):
    folder = tmp_path_factory.mktemp("m")
    row = {"source": source, "images": [f"x/{i}.png" for i in range(len(labels))],
           "offsets": [0.5 * i for i in range(len(labels))], "labels": labels, "fold": "", "group": source,
           "manually_verified": "", "duration": 1.0, "orig_sr": 8000, "channels": 1, "status": "ok",
           "error": ""}
    write_manifest([row], folder)
    df = read_manifest(folder)
    assert df["labels"][0] == labels and df["source"][0] == source and df["group"][0] == source
    assert df["images"][0] == row["images"] and df["offsets"][0] == row["offsets"]


def test_nasty_table_round_trips():
    for a in NASTY:
        for b in NASTY:
            assert split_cell(join_cell([a, b])) == [a, b]
            assert split_cell(join_cell([a])) == [a]


def test_old_plain_manifests_read_as_before(tmp_path):
    old = {c: "" for c in COLUMNS}
    old.update(source="dog/a.wav", images="dog/a.t0000.png;dog/a.t0001.png", offsets="0.000;2.500",
               labels="dog;bark", status="ok")
    pd.DataFrame([old], columns=COLUMNS).to_csv(tmp_path / "manifest.csv", index=False)
    df = read_manifest(tmp_path)
    assert df["images"][0] == ["dog/a.t0000.png", "dog/a.t0001.png"]
    assert df["labels"][0] == ["dog", "bark"] and df["offsets"][0] == [0.0, 2.5]
    assert split_cell("C:\\dir;x") == ["C:\\dir", "x"]  # a backslash that is no escape stays
    assert join_cell(["dog", "bark"]) == "dog;bark"  # plain lists are written as before
    assert all(c in string.printable for c in join_cell(["a;b"]))


def test_split_cell_reads_a_missing_cell_as_no_labels():
    # pandas reads an empty CSV cell as NaN: every reader of ';' cells (cv, report) gets []
    from spec2img.manifest import split_cell

    assert split_cell(float("nan")) == [] and split_cell(None) == [] and split_cell("") == []
    assert split_cell("nan") == ["nan"] and split_cell("a\\;b;c") == ["a;b", "c"]
