"""Hostile hunts folders, read by the real :class:`Catalog` (no server needed): links out of the
folder, odd file names, special files, thousands of files, files edited in place, and repeated
indicators."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from agentwatch.hunts.catalog import Catalog
from agentwatch.hunts.definition import parse, read
from agentwatch.hunts.settings import HuntSettings
from tests.hunts.helpers import definition, write


def catalog(folder: Path, **options: object) -> Catalog:
    cat = Catalog(folder, HuntSettings(directory=folder, min_interval_s=1, **options))
    cat.refresh()
    return cat


def test_a_link_to_a_file_outside_the_folder_is_reported_not_read(tmp_path: Path) -> None:
    folder, outside = tmp_path / "hunts", tmp_path / "elsewhere"
    folder.mkdir()
    outside.mkdir()
    secret = write(outside, "secret.yml", definition("secret", title="Read from outside"))
    (folder / "leak.yml").symlink_to(secret)
    write(folder, "inner.yml", definition("inner"))
    (folder / "alias.yml").symlink_to(folder / "inner.yml")  # a link inside the folder is fine
    cat = catalog(folder)
    assert "secret" not in cat.hunts
    assert [e.as_json() for e in cat.errors] == [
        {"file": "inner.yml", "line": None, "error": "id: 'inner' is already defined in alias.yml"},
        {"file": "leak.yml", "line": None, "error": "file: a link to outside hunts.directory, not read"},
    ]


def test_a_file_name_that_is_not_text_is_shown_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "hunts"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/bad\xff\x1b[31m.yml"
    with open(raw, "wb") as f:
        f.write(definition("odd").encode())
    with open(os.fsencode(folder) + b"/broken\xfe.yml", "wb") as f:
        f.write(b"id: [\n")
    cat = catalog(folder)
    assert cat.hunts["odd"].file == "bad\\xff\\x1b[31m.yml"
    assert [e.file for e in cat.errors] == ["broken\\xfe.yml"]
    orjson.dumps([e.as_json() for e in cat.errors])  # the answer can be written (no lone surrogates)
    orjson.dumps(cat.hunts["odd"].file)


def test_thousands_of_files_past_max_files_are_one_error(tmp_path: Path) -> None:
    folder = tmp_path / "hunts"
    folder.mkdir()
    for i in range(3000):
        (folder / f"h{i:04d}.yml").write_text(definition(f"h{i:04d}"))
    cat = catalog(folder, max_files=10)
    assert sorted(cat.hunts) == [f"h{i:04d}" for i in range(10)]
    assert [e.as_json() for e in cat.errors] == [
        {"file": "h0010.yml", "line": None, "error": "file: 2990 files past hunts.max_files (10), not read"}
    ]


def test_a_special_file_is_not_opened_for_ever(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yml"
    os.mkfifo(fifo)  # as if a file were swapped for a pipe between listing and reading
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(read(fifo, 65536, 60)), daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the stuck reader before failing
        with open(fifo, "wb"):
            pass
    assert not reader.is_alive(), "reading a pipe blocked"
    assert [e.as_json() for e in got[0]] == [  # type: ignore[union-attr]
        {"file": "pipe.yml", "line": None, "error": "file: not a regular file, not read"}
    ]


def test_a_file_rewritten_with_the_same_size_and_time_is_read_again(tmp_path: Path) -> None:
    folder = tmp_path / "hunts"
    folder.mkdir()
    path = folder / "same.yml"
    path.write_text(definition("same", title="First"))
    cat = catalog(folder)
    before = path.stat()
    path.write_text(definition("same", title="Other"))  # same length, in place
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # a coarse clock: same mtime
    assert cat.refresh() is True
    assert cat.hunts["same"].definition.title == "Other"


def test_an_indicator_given_twice_is_refused() -> None:
    text = definition("twice", body="indicators: [evil.example, 198.51.100.7, evil.example]\n")
    got = parse("twice.yml", text.encode(), 60)
    assert isinstance(got, list)
    assert [e.as_json() for e in got] == [  # type: ignore[union-attr]
        {"file": "twice.yml", "line": 5, "error": "indicators: each indicator at most once ('evil.example' twice)"}
    ]
