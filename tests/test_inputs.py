"""Expanding INPUT (folders, globs, manifests) into URIs."""

from __future__ import annotations

import os

import pytest

from sbdn_pipeline import inputs


def _touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_folder_is_searched_recursively_skipping_hidden_and_output(tmp_path) -> None:
    a = _touch(tmp_path / "a.jpg")
    b = _touch(tmp_path / "sub" / "b.png")
    _touch(tmp_path / ".hidden.jpg")
    _touch(tmp_path / ".cache" / "c.jpg")
    _touch(tmp_path / "out" / "results" / "part.parquet")
    found = list(inputs.expand_input(str(tmp_path), exclude=str(tmp_path / "out")))
    assert found == [a, b]


def test_glob_matches_recursively_and_includes_broken_symlinks(tmp_path) -> None:
    a = _touch(tmp_path / "x" / "a.jpg")
    _touch(tmp_path / "x" / "a.txt")
    link = tmp_path / "x" / "broken.jpg"
    os.symlink(tmp_path / "missing.jpg", link)
    found = list(inputs.expand_input(str(tmp_path / "**" / "*.jpg")))
    assert found == [a, str(link)]


def test_manifest_lines_resolve_relative_to_the_manifest(tmp_path) -> None:
    manifest = tmp_path / "list.txt"
    manifest.write_text("# comment\n\nimages/a b.jpg\n/abs/c.jpg\ngs://bucket/d.jpg\n",
                        encoding="utf-8")
    assert list(inputs.expand_input(str(manifest))) == [
        str(tmp_path / "images" / "a b.jpg"), "/abs/c.jpg", "gs://bucket/d.jpg"]


def test_check_input_fails_fast_on_nothing_matched(tmp_path) -> None:
    with pytest.raises(inputs.InputError, match="does not exist"):
        inputs.check_input(str(tmp_path / "missing"))
    with pytest.raises(inputs.InputError, match="matched no files"):
        inputs.check_input(str(tmp_path / "*.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(inputs.InputError, match="matched no files"):
        inputs.check_input(str(tmp_path / "empty"))
    empty_manifest = tmp_path / "empty.txt"
    empty_manifest.write_text("# nothing\n")
    with pytest.raises(inputs.InputError, match="matched no files"):
        inputs.check_input(str(empty_manifest))
