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


def test_output_reached_through_a_symlink_is_excluded(tmp_path) -> None:
    photos = tmp_path / "photos"
    a = _touch(photos / "a.jpg")
    _touch(photos / "real_out" / "out" / "_sbdn_output.json")
    _touch(photos / "real_out" / "out" / "results" / "part.parquet")
    os.symlink(photos / "real_out", photos / "link_to_out")  # a folder link: never walked
    output = str(photos / "link_to_out" / "out")
    assert list(inputs.expand_input(str(photos), exclude=output)) == [a]
    assert list(inputs.expand_input(str(photos / "**" / "*"), exclude=output)) == [a]
    # OUTPUT named by a symlink that lives outside the input.
    os.symlink(photos / "real_out" / "out", tmp_path / "out_link")
    assert list(inputs.expand_input(str(photos), exclude=str(tmp_path / "out_link"))) == [a]


def test_input_reached_through_a_symlink_still_excludes_the_output(tmp_path) -> None:
    _touch(tmp_path / "photos" / "a.jpg")
    _touch(tmp_path / "photos" / "out" / "results" / "part.parquet")
    os.symlink(tmp_path / "photos", tmp_path / "photos_link")
    found = list(inputs.expand_input(str(tmp_path / "photos_link"),
                                     exclude=str(tmp_path / "photos" / "out")))
    assert found == [str(tmp_path / "photos_link" / "a.jpg")]


def test_manifest_lines_inside_the_output_are_excluded(tmp_path) -> None:
    _touch(tmp_path / "out" / "_sbdn_output.json")
    manifest = tmp_path / "list.txt"
    manifest.write_text("a.jpg\nout/_sbdn_output.json\n", encoding="utf-8")
    assert list(inputs.expand_input(str(manifest), exclude=str(tmp_path / "out"))) == [
        str(tmp_path / "a.jpg")]


def test_file_symlink_into_the_output_is_excluded(tmp_path) -> None:
    _touch(tmp_path / "photos" / "out" / "results" / "part.parquet")
    os.symlink(tmp_path / "photos" / "out" / "results" / "part.parquet",
               tmp_path / "photos" / "part.jpg")
    assert list(inputs.expand_input(str(tmp_path / "photos"),
                                    exclude=str(tmp_path / "photos" / "out"))) == []


def _deny_scandir(monkeypatch, locked: str) -> None:
    """os.scandir fails on one folder, as for a folder we may not read (root reads all)."""
    real_scandir = os.scandir

    def scandir(path="."):
        if isinstance(path, (str, os.PathLike)) and os.path.abspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("pattern", ["", "**/*.jpg", "*/*.jpg"])
def test_unreadable_sub_folder_is_a_listing_error_not_a_silent_gap(
        tmp_path, monkeypatch, pattern: str) -> None:
    a = _touch(tmp_path / "a" / "a.jpg")
    _touch(tmp_path / "locked" / "b.jpg")
    locked = str(tmp_path / "locked")
    _deny_scandir(monkeypatch, locked)
    found = list(inputs.list_input(str(tmp_path / pattern) if pattern else str(tmp_path)))
    assert found[0] == a
    assert len(found) == 2 and isinstance(found[1], inputs.ListingError)
    assert (found[1].uri, found[1].error_type) == (locked, "unreadable_folder")
    assert "Permission denied" in found[1].message
    # expand_input (URIs only) logs it instead of dropping it without a word.
    assert list(inputs.expand_input(str(tmp_path))) == [a]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode; "
                    "the monkeypatched test above covers root")
def test_folder_without_permissions_is_a_listing_error(tmp_path) -> None:
    _touch(tmp_path / "locked" / "b.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        found = list(inputs.list_input(str(tmp_path)))
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [item.uri for item in found] == [str(tmp_path / "locked")]


def test_unreadable_input_folder_itself_fails_fast(tmp_path, monkeypatch) -> None:
    _touch(tmp_path / "b.jpg")
    _deny_scandir(monkeypatch, str(tmp_path))
    with pytest.raises(inputs.InputError, match="cannot list input.*Permission denied"):
        inputs.check_input(str(tmp_path))


def test_recursive_glob_does_not_follow_a_symlink_loop(tmp_path) -> None:
    a = _touch(tmp_path / "a.jpg")
    b = _touch(tmp_path / "sub" / "b.jpg")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    assert list(inputs.expand_input(str(tmp_path / "**" / "*.jpg"))) == [a, b]
    assert list(inputs.expand_input(str(tmp_path))) == [a, b]


def test_glob_keeps_hidden_rules_and_single_level_symlinks(tmp_path) -> None:
    a = _touch(tmp_path / "x" / "a.jpg")
    _touch(tmp_path / "x" / ".hidden.jpg")
    _touch(tmp_path / ".cache" / "c.jpg")
    os.symlink(tmp_path / "x", tmp_path / "y")
    assert list(inputs.expand_input(str(tmp_path / "*" / "*.jpg"))) == [
        a, str(tmp_path / "y" / "a.jpg")]
    assert list(inputs.expand_input(str(tmp_path / "**"))) == [a]
    assert list(inputs.expand_input(str(tmp_path / "x" / ".*.jpg"))) == [
        str(tmp_path / "x" / ".hidden.jpg")]


def _fake_stat(monkeypatch, path: str, mtime_ns: int) -> None:
    real_stat = os.stat

    def stat(target, *args, **kwargs):
        result = real_stat(target, *args, **kwargs)
        if isinstance(target, (str, os.PathLike)) and os.fspath(target) == path:
            return os.stat_result(tuple(result)[:10], {"st_mtime_ns": mtime_ns})
        return result

    monkeypatch.setattr(os, "stat", stat)


@pytest.mark.parametrize("mtime_ns", [400_000_000_000 * 10**9, -(10**20)],
                         ids=["year-14645", "before-year-1"])
def test_unrepresentable_mtime_becomes_none(tmp_path, monkeypatch, mtime_ns: int) -> None:
    path = _touch(tmp_path / "future.jpg")
    _fake_stat(monkeypatch, path, mtime_ns)
    assert inputs.stat_input(path) == inputs.InputFile(path, 1, None)


def test_representable_mtimes_are_kept_exactly() -> None:
    assert inputs.representable_us(-2_000_000_000_000_000) == -2_000_000_000_000_000  # 1906
    assert inputs.representable_us(253_402_300_799_999_999) == 253_402_300_799_999_999
    assert inputs.representable_us(253_402_300_800_000_000) is None  # year 10000
