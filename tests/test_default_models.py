"""Shipped models are used only when their sha256 matches models/manifest.json."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from sbdn_pipeline import default_models, inference
from sbdn_pipeline.cli import cli


@pytest.fixture()
def shipped(tmp_path, tiny_models, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    manifest = {}
    for role in ("classifier", "identifier"):
        shutil.copy(tiny_models[role], folder / f"{role}.keras")
        manifest[role] = {"file": f"{role}.keras",
                          "sha256": inference.file_sha256(str(folder / f"{role}.keras"))}
    (folder / default_models.MANIFEST_NAME).write_text(json.dumps(manifest))
    monkeypatch.setattr(default_models, "models_folder", lambda: str(folder))
    return folder


def test_detect_uses_verified_shipped_models_by_default(shipped, mixed_folder, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["detect", mixed_folder["sharp"][0],
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "classifier.keras@sha256:" in result.output


def test_tampered_shipped_model_stops_the_run_before_work(shipped, mixed_folder,
                                                          tmp_path) -> None:
    with open(shipped / "identifier.keras", "ab") as handle:
        handle.write(b"\0")
    result = CliRunner().invoke(cli, ["detect", mixed_folder["sharp"][0],
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "changed or corrupted" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_shipped_model_is_a_clear_error(shipped, mixed_folder, tmp_path) -> None:
    (shipped / "classifier.keras").unlink()
    result = CliRunner().invoke(cli, ["detect", mixed_folder["sharp"][0],
                                      "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not found" in result.output


def test_ship_model_copies_and_records_the_hash(tiny_models, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["ship-model", tiny_models["classifier"], "--role",
                                      "classifier", "--models-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / default_models.MANIFEST_NAME).read_text())
    assert manifest["classifier"]["sha256"] == inference.file_sha256(tiny_models["classifier"])
    assert (tmp_path / "classifier.keras").read_bytes() == open(
        tiny_models["classifier"], "rb").read()


def test_ship_model_refuses_a_model_in_the_wrong_role(tiny_models, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["ship-model", tiny_models["classifier"], "--role",
                                      "identifier", "--models-dir", str(tmp_path)])
    assert result.exit_code == 1 and "identifier must output" in result.output
    assert not (tmp_path / "identifier.keras").exists()


def test_shipped_model_is_found_in_the_workers_own_installation(shipped, tmp_path,
                                                                monkeypatch) -> None:
    """A worker image installs the package elsewhere: the submitter's path must not be used."""
    import dataclasses

    path, sha256 = default_models.default_model("classifier")
    info = dataclasses.replace(inference.inspect_model(path, "classifier", sha256), shipped=True,
                               path="/submitter/site-packages/sbdn_models/classifier.keras")
    assert info.path_on_worker() == str(shipped / "classifier.keras")
    handler = inference.KerasModelHandler(info, batch_size=2)
    model = handler.load_model()
    assert model.outputs[0].shape[-1] == 1


def test_the_shipped_models_match_their_manifest_and_roles() -> None:
    for role in ("classifier", "identifier"):
        path, sha256 = default_models.default_model(role)
        info = inference.inspect_model(path, role, sha256)
        assert info.sha256 == sha256 and info.input_size >= 224
        # The geometry recorded when shipped is what inspecting the file finds.
        assert default_models.default_model_geometry(role) == (info.input_size,
                                                               info.mask_stride)


def test_recorded_geometry_spares_the_submitter_loading_the_models(
        tiny_models, tmp_path, monkeypatch) -> None:
    for role in ("classifier", "identifier"):
        result = CliRunner().invoke(cli, ["ship-model", tiny_models[role], "--role", role,
                                          "--models-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
    monkeypatch.setattr(default_models, "models_folder", lambda: str(tmp_path))
    assert default_models.default_model_geometry("identifier") == (64, 4)
    from sbdn_pipeline.cli.detect import _load_models

    def no_loading(*_args, **_kwargs):
        raise AssertionError("the submitting process loaded a model")

    monkeypatch.setattr(inference, "inspect_model", no_loading)
    models = _load_models(None, None)
    assert models["identifier"].mask_stride == 4 and models["identifier"].shipped
    with open(tmp_path / "classifier.keras", "ab") as handle:  # the hash is still checked
        handle.write(b"\0")
    with pytest.raises(Exception, match="changed or corrupted"):
        _load_models(None, None)
