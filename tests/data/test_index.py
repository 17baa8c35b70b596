"""build_index: bad files reported exactly, odd modes kept, cache reuse and invalidation."""

from __future__ import annotations

import warnings

import pytest

from ssl4gie.data import index as index_module
from ssl4gie.data.index import build_index
from ssl4gie.errors import InputError

from .conftest import rgb, save


def build_quietly(root, cache_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = build_index(root, cache_dir, progress=False)
    return built, [str(w.message) for w in caught]


def test_reports_exactly_the_unreadable_files(salted_folder, tmp_path):
    root, bad = salted_folder
    built, messages = build_quietly(root, tmp_path / "cache")
    assert set(built.bad_files) == bad
    assert set(built.files) == {
        "good.jpg", "nested/deeper/upper.JPG", "cmyk.jpg", "gray.jpg", "rgba.png",
        "palette.png", "sixteen.png", "png_named.jpg", "tiny.jpg", "scan.tif",
    }  # fmt: skip
    assert len(messages) == 1 and "skipped 4 unreadable" in messages[0]
    assert str(built.bad_list_path) in messages[0]
    listed = [line.split("\t")[0] for line in built.bad_list_path.read_text().splitlines()]
    assert set(listed) == bad
    assert built.paths()[0] == root / built.files[0]


def test_second_build_reads_the_cache(salted_folder, tmp_path, monkeypatch):
    root, _ = salted_folder
    first, _ = build_quietly(root, tmp_path / "cache")
    checked = []
    monkeypatch.setattr(index_module, "check_image", lambda path: checked.append(path) or "")
    second, messages = build_quietly(root, tmp_path / "cache")
    assert checked == []
    assert (second.files, second.bad_files) == (first.files, first.bad_files)
    assert len(messages) == 1


def test_a_cached_build_shows_no_progress_bar(salted_folder, tmp_path, capsys):
    root, _ = salted_folder
    build_quietly(root, tmp_path / "cache")
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build_index(root, tmp_path / "cache", progress=True)  # nothing left to check
    assert "indexing" not in capsys.readouterr().err


def test_added_or_changed_files_are_checked(salted_folder, tmp_path, monkeypatch):
    root, bad = salted_folder
    build_quietly(root, tmp_path / "cache")
    save(rgb(), root / "nested" / "added.png")
    (root / "good.jpg").write_bytes(b"overwritten with garbage, and a new size")
    checked = []
    real_check = index_module.check_image
    monkeypatch.setattr(index_module, "check_image", lambda p: checked.append(p) or real_check(p))
    again, _ = build_quietly(root, tmp_path / "cache")
    assert sorted(p.name for p in checked) == ["added.png", "good.jpg"]
    assert "nested/added.png" in again.files
    assert set(again.bad_files) == bad | {"good.jpg"}


def test_clean_folder_has_no_bad_list_and_default_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    save(rgb(), tmp_path / "clean" / "a.png")
    built, messages = build_quietly(tmp_path / "clean", None)
    assert built.files == ["a.png"] and built.bad_files == [] and built.bad_list_path is None
    assert messages == []
    assert built.cache_path.parent == tmp_path / "xdg" / "ssl4gie" / "index"


def test_missing_root_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_index(tmp_path / "absent", tmp_path / "cache")
