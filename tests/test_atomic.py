"""sbdn_pipeline.atomic: writes land whole, or not at all, locally and through Beam URIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sbdn_pipeline import atomic


def test_write_text_bytes_and_json_replace_the_target(tmp_path) -> None:
    path = str(tmp_path / "a.txt")
    atomic.write_text(path, "one\r\ntwo")
    with open(path, "rb") as handle:
        assert handle.read() == b"one\r\ntwo"  # no newline translation
    atomic.write_bytes(path, b"\x00\x01")
    with open(path, "rb") as handle:
        assert handle.read() == b"\x00\x01"
    document = {"b": 1, "a": [1.5, None]}
    atomic.write_json(path, document, sort_keys=True, trailing_newline=True)
    with open(path, encoding="utf-8") as handle:
        assert handle.read() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path) -> None:
    path = str(tmp_path / "m.json")
    atomic.write_json(path, {"ok": True})
    with pytest.raises(ValueError):
        atomic.write_json(path, {"x": float("nan")}, allow_nan=False)
    with pytest.raises(RuntimeError):
        with atomic.local_path(path, ".png") as partial:
            assert partial.endswith(".png") and partial.startswith(path)
            with open(partial, "w", encoding="utf-8") as handle:
                handle.write("half")
            raise RuntimeError("library failed")
    assert os.listdir(tmp_path) == ["m.json"]
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle) == {"ok": True}


def test_local_path_renames_what_a_library_wrote(tmp_path) -> None:
    target = str(tmp_path / "model.keras")
    with atomic.local_path(target, ".keras") as partial:
        assert not os.path.exists(target)
        with open(partial, "wb") as handle:
            handle.write(b"weights")
    assert os.listdir(tmp_path) == ["model.keras"]


def test_uris_go_through_beam_file_systems(tmp_path, monkeypatch) -> None:
    from apache_beam.io.filesystems import FileSystems

    calls = []

    def local(uri: str) -> str:
        return str(tmp_path / uri.split("://", 1)[1])

    def create(uri, **kwargs):
        calls.append(("create", kwargs.get("mime_type")))
        return open(local(uri), "wb")

    def rename(sources, destinations):
        calls.append(("rename",))
        os.rename(local(sources[0]), local(destinations[0]))

    monkeypatch.setattr(FileSystems, "create", staticmethod(create))
    monkeypatch.setattr(FileSystems, "rename", staticmethod(rename))
    monkeypatch.setattr(FileSystems, "exists", staticmethod(lambda uri: os.path.exists(local(uri))))
    monkeypatch.setattr(FileSystems, "delete",
                        staticmethod(lambda uris: [os.remove(local(u)) for u in uris]))
    atomic.write_json("gs://out.json", {"a": 1})
    atomic.write_text("gs://out.json", '{"a": 2}', mime_type="application/json")
    with open(tmp_path / "out.json", encoding="utf-8") as handle:
        assert json.load(handle) == {"a": 2}
    assert calls == [("create", None), ("rename",), ("create", "application/json"), ("rename",)]
    assert os.listdir(tmp_path) == ["out.json"]

    def refuse(sources, destinations):
        raise OSError("rename refused")

    monkeypatch.setattr(FileSystems, "rename", staticmethod(refuse))
    with pytest.raises(OSError):
        atomic.write_bytes("gs://other.bin", b"x")
    assert os.listdir(tmp_path) == ["out.json"]  # the partial object was deleted


def test_local_writes_do_not_import_beam(tmp_path) -> None:
    code = ("import sys; from sbdn_pipeline import atomic; "
            f"atomic.write_json({str(tmp_path / 'x.json')!r}, {{}}); "
            "print('apache_beam' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout
    assert out.strip() == "False"
