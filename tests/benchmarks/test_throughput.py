"""The issue-5 throughput benchmark: its corpus, its copy of the job's image policy, its report.

No timing assertions (timings are noisy): the smoke test only checks that every row runs and
the report has rates, ratios and the job-vs-limit agreement check.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks import throughput
from tests import imagegen


@pytest.mark.parametrize(
    "height, width", [(768, 1024), (1000, 333), (301, 300), (50, 120), (96, 96), (900, 1600)]
)
def test_tf_data_row_prepares_pixels_exactly_as_the_detect_job(height: int, width: int) -> None:
    import tensorflow as tf

    from sbdn_pipeline.inference import shrink_to_long_side
    from sbdn_pipeline import images, inference

    rng = np.random.default_rng(height * width)
    pixels = throughput.procedural_scene(height, width, rng)
    data = imagegen.encode(pixels, "JPEG", quality=90)
    for working, size in ((384, 384), (384, 320), (64, 64)):
        decoded = images.decode_image(data, target_long_side=working).pixels
        expected = shrink_to_long_side(decoded, working)
        got = throughput.tf_working_pixels(tf.constant(data), working).numpy()
        np.testing.assert_array_equal(got, expected)
        expected_input, _ = inference.letterbox(expected, size)
        got_input = throughput.tf_letterbox(tf.constant(expected), size).numpy()
        np.testing.assert_array_equal(got_input, expected_input)


def test_generated_corpus_is_partially_blurred_textured_and_reused(tmp_path) -> None:
    spec = throughput.CorpusSpec(count=10, long_side=96, blurred_fraction=0.3)
    corpus = throughput.ensure_corpus(str(tmp_path), spec)

    assert sorted(os.listdir(corpus.images)) == [f"img_{i:06d}.jpg" for i in range(10)]
    assert len(corpus.blurred_names()) == 3
    for entry in corpus.manifest["files"]:
        with Image.open(os.path.join(corpus.images, entry["name"])) as image:
            assert image.format == "JPEG"
            assert 86 <= max(image.size) <= 96
            grey = np.asarray(image.convert("L"), np.float32)
        assert grey.std() > 10  # a scene, not a flat frame
        if entry["blurred"]:
            assert entry["region"] != "whole" and 0 < entry["blurred_area"] < 1
    first_mtime = os.path.getmtime(os.path.join(corpus.images, "img_000000.jpg"))

    again = throughput.ensure_corpus(str(tmp_path), spec)

    assert again.manifest == corpus.manifest
    assert os.path.getmtime(os.path.join(again.images, "img_000000.jpg")) == first_mtime


def test_corpus_from_a_photo_folder_uses_crops_of_those_photos(tmp_path) -> None:
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(imagegen.sharp_image(150, 200, index)).save(photos / f"p{index}.png")
    spec = throughput.CorpusSpec(
        count=4, long_side=64, blurred_fraction=0.5, sharp_images=str(tmp_path / "photos")
    )

    corpus = throughput.ensure_corpus(str(tmp_path / "work"), spec)

    assert {entry["source"] for entry in corpus.manifest["files"]} == {"p0.png", "p1.png"}
    assert corpus.manifest["blurred"] == 2
    assert "photos-" in os.path.basename(corpus.folder)


def test_missing_shipped_models_fail_with_a_clear_message(tmp_path, monkeypatch, capsys) -> None:
    from sbdn_pipeline import default_models

    monkeypatch.setattr(default_models, "models_folder", lambda: str(tmp_path / "no-models"))

    code = throughput.main(["--images", "2", "--work", str(tmp_path / "work")])

    assert code == 2
    assert "pass --classifier PATH --identifier PATH" in capsys.readouterr().err


def test_ratios_compare_images_per_second_with_and_without_start_up() -> None:
    rows = {
        "detect": {"images_per_s_wall": 9.0, "images_per_s_steady": 12.0},
        "tfdata": {"images_per_s_wall": 10.0, "images_per_s_steady": 16.0},
        "original": {"images_per_s_wall": 0.5, "images_per_s_steady": None},
    }

    ratios = throughput.compute_ratios(rows)

    assert ratios["detect/tfdata"] == {
        "target_at_least": 0.85,
        "wall": 0.9,
        "wall_meets_target": True,
        "steady": 0.75,
        "steady_meets_target": False,
    }
    assert ratios["detect/original"]["wall"] == 18.0
    assert ratios["detect/original"]["steady"] is None
    assert "detect-mp/tfdata" not in ratios


def test_start_up_is_taken_out_by_the_difference_of_two_runs() -> None:
    full = {"wall_s": 30.0, "cpu_s": 50.0}
    short = {"wall_s": 10.0, "cpu_s": 14.0}

    assert throughput.steady_by_difference(full, short, 108, 8) == (20.0, 36.0)
    assert throughput.steady_by_difference(short, full, 108, 8) == (None, None)


def test_profile_summary_names_our_stages_and_skips_process_frames(tmp_path) -> None:
    root = throughput.ROOT
    profile = {
        "shared": {
            "frames": [
                {"name": 'process 1:"python -m sbdn_pipeline.cli"', "file": None},
                {"name": "run", "file": os.path.join(root, "beam_jobs", "detect.py")},
                {
                    "name": "encode_mask_png",
                    "file": os.path.join(root, "sbdn_pipeline", "masks.py"),
                },
                {"name": "compress", "file": "/usr/lib/python3.11/zlib.py"},
            ]
        },
        "profiles": [
            {
                "type": "sampled",
                "samples": [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1]],
                "weights": [0.02, 0.02, 0.02],
            }
        ],
    }
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps(profile))

    summary = throughput.summarise_speedscope(str(path))

    assert summary["total_s"] == 0.06
    assert summary["self"][0] == ("compress (/usr/lib/python3.11/zlib.py)", 0.04)
    assert dict(summary["project"]) == pytest.approx(
        {"run (beam_jobs/detect.py)": 0.06, "encode_mask_png (sbdn_pipeline/masks.py)": 0.04}
    )


def test_smoke_run_reports_every_row_with_rates_and_ratios(tmp_path, tiny_models) -> None:
    pytest.importorskip("psutil")
    pytest.importorskip("cv2")
    results = tmp_path / "results"

    code = throughput.main(
        [
            "--images",
            "6",
            "--long-side",
            "128",
            "--classifier",
            tiny_models["classifier"],
            "--identifier",
            tiny_models["identifier"],
            "--original-classifier",
            tiny_models["classifier"],
            "--original-identifier",
            tiny_models["identifier"],
            "--only",
            "detect",
            "tfdata",
            "original",
            "laplacian",
            "--startup-images",
            "0",
            "--work",
            str(tmp_path / "work"),
            "--results-dir",
            str(results),
            "--tag",
            "test",
        ]
    )

    assert code == 0
    json_path, md_path = throughput.result_paths(str(results), "throughput", "test")
    with open(json_path, encoding="utf-8") as handle:
        report = json.load(handle)
    rows = {row["id"]: row for row in report["rows"]}
    assert list(rows) == ["detect", "tfdata", "original", "laplacian"]
    for row in rows.values():
        assert row["exit_code"] == 0 and row["images"] == 6
        assert row["images_per_s_wall"] > 0 and row["images_per_s_steady"] > 0
        assert row["cpu_s_per_image"] > 0 and row["peak_rss_mb"] > 0
        assert row["steady_method"]
    assert rows["detect"]["rows_written"] == 6
    assert rows["original"]["identifier_images"] == rows["tfdata"]["identifier_images"]
    for name in ("detect/tfdata", "detect/original"):
        assert report["ratios"][name]["wall"] > 0 and report["ratios"][name]["steady"] > 0
    check = report["checks"]["detect vs tfdata"]
    assert check["images_compared"] == 6 and check["verdicts_agree"] == 6
    assert check["max_abs_probability_difference"] < 1e-4
    assert "detect/tfdata" in open(md_path, encoding="utf-8").read()
