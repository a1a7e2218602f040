"""benchmarks.compare_models: the side-by-side table of several `sbdn evaluate` runs."""

import json

import pytest

from benchmarks import compare_models


def _metrics(architecture_c, architecture_i, accuracy, iou, path="data", n=4):
    identifier = {"max_f_beta": 0.9, "f_beta": 0.8, "iou": iou, "mae": 0.1,
                  "per_blur_kind": {"motion": {"iou": iou / 2}}}
    return {
        "data": {"path": path, "split": "test", "n": n, "positives": 2},
        "models": {
            "classifier": {"architecture": architecture_c},
            "identifier": {"architecture": architecture_i},
        },
        "classifier": {"accuracy": accuracy, "roc_auc": 0.5, "precision": 1.0, "recall": 0.25,
                       "accuracy_per_blur_kind": {"none": {"accuracy": 0.75}}},
        "identifier": identifier,
        "laplacian-variance": {"accuracy": 0.5, "roc_auc": 0.6},
        "laplacian-energy": {"max_f_beta": 0.4, "iou": 0.3, "mae": 0.5},
        "end_to_end": {"models": {"max_f_beta": 0.7, "iou": 0.6, "mae": 0.2}},
    }


def _write(tmp_path, name, metrics):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


def test_table_has_one_row_per_model_plus_baselines_with_speeds(tmp_path, capsys):
    shipped = _write(tmp_path, "a", _metrics("HighPassEvidenceClassifier", "HighPassUNet", 0.875, 0.8))
    original = _write(tmp_path, "b", _metrics("ResNet50Classifier", "OriginalEncoderDecoder", 0.5, 0.2))
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps({"results": [
        {"arch": "highpass-evidence-classifier", "img_per_s_median": 100.0},
        {"arch": "resnet50", "img_per_s_median": 10.0},
    ]}))
    out = tmp_path / "table.md"
    compare_models.main(["--eval", f"shipped={shipped}", "--eval", f"original={original}",
                         "--speed", str(speed), "--markdown", str(out)])
    text = out.read_text()
    assert text == capsys.readouterr().out.rstrip("\n") + "\n"
    lines = text.splitlines()
    shipped_row = next(line for line in lines if line.startswith("| shipped: `highpass-evidence"))
    assert "| 0.875 | 0.500 | 1.000 | 0.250 |" in shipped_row and shipped_row.endswith("| 100.0 |")
    assert "| 0.75 |" in shipped_row  # accuracy on sharp images
    resnet_row = next(line for line in lines if line.startswith("| original: `resnet50`"))
    assert resnet_row.endswith("| 10.0 |")
    unet_row = next(line for line in lines if line.startswith("| shipped: `highpass-unet`"))
    assert "| 0.900 | 0.800 | 0.800 | 0.100 |" in unet_row and "| 0.40 |" in unet_row
    assert sum(line.startswith("| baseline `laplacian-variance`") for line in lines) == 1
    assert sum(line.startswith("| baseline `laplacian-energy`") for line in lines) == 1
    assert "| original | 0.700 | 0.600 | 0.200 |" in lines


def test_evaluations_of_different_data_are_refused(tmp_path):
    first = _write(tmp_path, "a", _metrics("ResNet50Classifier", "HighPassUNet", 0.5, 0.5))
    second = _write(tmp_path, "b", _metrics("ResNet50Classifier", "HighPassUNet", 0.5, 0.5, n=9))
    with pytest.raises(SystemExit, match="different data"):
        compare_models.main(["--eval", f"a={first}", "--eval", f"b={second}"])


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="sbdn evaluate --out"):
        compare_models.main(["--eval", f"a={tmp_path / 'nothing'}"])


def test_every_baseline_and_each_data_set_of_a_cross_recipe_run_get_rows(tmp_path):
    own = _metrics("HighPassEvidenceClassifier", "HighPassUNet", 0.875, 0.8)
    own["blur-effect"] = {"accuracy": 0.6, "roc_auc": 0.7,
                          "threshold_calibration": {"split": "val", "threshold": 0.3}}
    own["lbp-map"] = {"max_f_beta": 0.45, "iou": 0.35, "mae": 0.4,
                      "per_blur_kind": {"motion": {"iou": 0.25}}}
    own["end_to_end"]["baselines"] = {"pair": ["laplacian-variance", "laplacian-energy"],
                                      "max_f_beta": 0.3, "iou": 0.2, "mae": 0.6}
    cross = _metrics("HighPassEvidenceClassifier", "HighPassUNet", 0.625, 0.5, path="data-x")
    combined = _write(tmp_path, "c", {"datasets": {"own": own, "cross-recipe": cross}})
    # A plain evaluation of our own split sits beside the combined run's "own" tables.
    plain = _write(tmp_path, "p", _metrics("ResNet50Classifier", "HighPassUNet", 0.5, 0.2))

    text = compare_models.comparison_markdown(
        {"new": compare_models.load_evaluation(combined),
         "old": compare_models.load_evaluation(plain)}
    )

    own_part, cross_part = text.split("### cross-recipe")
    assert own_part.startswith("### own") and "`data-x`" in cross_part
    assert "| old: `resnet50` | 0.500 |" in own_part and "old:" not in cross_part
    assert "| baseline `blur-effect` (threshold fit on val) | 0.600 | 0.700 |" in own_part
    assert "| baseline `lbp-map` | 0.450 |" in own_part and "| 0.25 |" in own_part
    pair_row = "| baselines: laplacian-variance + laplacian-energy | 0.300 | 0.200 | 0.600 |"
    assert pair_row in own_part
    assert "| new: `highpass-evidence-classifier` | 0.625 |" in cross_part


def test_a_combined_run_on_other_data_is_refused(tmp_path):
    combined = _metrics("ResNet50Classifier", "HighPassUNet", 0.5, 0.5)
    other = _metrics("ResNet50Classifier", "HighPassUNet", 0.5, 0.5, path="elsewhere")
    first = _write(tmp_path, "a", {"datasets": {"own": combined}})
    second = _write(tmp_path, "b", other)
    with pytest.raises(SystemExit, match="different data"):
        compare_models.main(["--eval", f"a={first}", "--eval", f"b={second}"])


def test_kind_columns_come_from_the_evaluated_split():
    from benchmarks import compare_models

    evaluations = {
        "a": {"classifier": {"accuracy_per_blur_kind": {"ring": {}, "none": {}}}},
        "b": {"identifier": {"per_blur_kind": {"box": {}}}},
    }
    assert compare_models.blur_kinds(evaluations) == ("box", "ring")
    assert compare_models.blur_kinds({"c": {}}) == compare_models.BLUR_KINDS
