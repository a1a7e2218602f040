"""The throughput benchmark (issues 5, 17, 18): its corpus, its arithmetic, and a smoke run.

No timing assertions (timings are noisy): the smoke run only checks that every row runs at
every size and the report has the rates, steady states, ratios with targets and the
job-vs-limit agreement check.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from benchmarks.throughput import __main__ as throughput
from benchmarks.throughput import corpus as corpora
from benchmarks.throughput import profile, report
from benchmarks.throughput.common import ROOT
from benchmarks.throughput.measurement import steady_state
from tests import imagegen


def test_generated_corpus_is_partially_blurred_textured_and_reused(tmp_path) -> None:
    spec = corpora.CorpusSpec(count=10, long_side=96, blurred_fraction=0.3)
    corpus = corpora.ensure_corpus(str(tmp_path), spec)

    assert sorted(os.listdir(corpus.images)) == [f"img_{i:06d}.jpg" for i in range(10)]
    assert len(corpus.blurred_names()) == 3
    for entry in corpus.manifest["files"]:
        with Image.open(os.path.join(corpus.images, entry["name"])) as image:
            assert image.format == "JPEG"
            assert 86 <= max(image.size) <= 96
            grey = np.asarray(image.convert("L"), np.float32)
        assert grey.std() > 10  # a scene, not a flat frame
        if entry["blurred"]:
            assert 0 < entry["blurred_area"] < 1
    first_mtime = os.path.getmtime(os.path.join(corpus.images, "img_000000.jpg"))

    again = corpora.ensure_corpus(str(tmp_path), spec)

    assert again.manifest == corpus.manifest
    assert os.path.getmtime(os.path.join(again.images, "img_000000.jpg")) == first_mtime
    subset = corpora.corpus_subset(corpus, 4)
    assert sorted(os.listdir(subset)) == [f"img_{i:06d}.jpg" for i in range(4)]
    assert corpora.corpus_subset(corpus, 10) == corpus.images


def test_corpus_from_a_photo_folder_uses_crops_of_those_photos(tmp_path) -> None:
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for index in range(2):
        Image.fromarray(imagegen.sharp_image(150, 200, index)).save(photos / f"p{index}.png")
    spec = corpora.CorpusSpec(
        count=4, long_side=64, blurred_fraction=0.5, sharp_images=str(tmp_path / "photos")
    )

    corpus = corpora.ensure_corpus(str(tmp_path / "work"), spec)

    assert {entry["source"] for entry in corpus.manifest["files"]} == {"p0.png", "p1.png"}
    assert corpus.manifest["blurred"] == 2
    assert "photos-" in os.path.basename(corpus.folder)


def test_missing_shipped_models_fail_with_a_clear_message(tmp_path, monkeypatch, capsys) -> None:
    from sbdn_pipeline import default_models

    monkeypatch.setattr(default_models, "models_folder", lambda: str(tmp_path / "no-models"))

    code = throughput.main(["--sizes", "2", "--work", str(tmp_path / "work")])

    assert code == 2
    assert "pass --classifier PATH --identifier PATH" in capsys.readouterr().err


def test_steady_state_is_the_larger_run_minus_the_smaller_run() -> None:
    state = steady_state((8, 10.0, 14.0), (408, 30.0, 54.0))

    assert (state.seconds, state.images_per_s, state.cpu_s_per_image) == (20.0, 20.0, 0.1)
    assert steady_state((8, 30.0, 1.0), (408, 10.0, 2.0)).images_per_s is None  # noise
    assert steady_state((8, 1.0, 1.0), (8, 2.0, 2.0)).images_per_s is None


def _row(row: str, images: int, wall_s: float, cpu_s: float = 1.0) -> dict:
    return {"id": row, "images": images, "wall_s": wall_s, "cpu_s": cpu_s,
            "images_per_s": images / wall_s}


def test_issue_ratios_say_met_or_not_met_at_each_larger_size() -> None:
    rows = [
        _row("detect", 8, 5.0), _row("detect", 408, 25.0), _row("detect", 2008, 105.0),
        _row("tfdata", 408, 20.0), _row("tfdata", 2008, 100.0),
        _row("original", 408, 400.0), _row("laplacian", 408, 10.2),
    ]
    sizes = [8, 408, 2008]

    states = report.steady_states(rows, sizes)
    ratios = {(r["name"].split(" (")[0], r["images"]): r
              for r in report.issue_ratios(rows, sizes, states)}

    assert [(s["row"], s["large_images"], s["images_per_s"]) for s in states] == [
        ("detect", 408, 20.0), ("detect", 2008, 20.0)]
    assert ratios[("detect whole command on 8 images, s", 8)]["met"] is True
    assert ratios[("detect / original", 408)]["value"] == 16.0
    assert ratios[("detect / original", 408)]["met"] is True
    assert ratios[("detect / tfdata", 408)]["value"] == 0.8
    assert ratios[("detect / tfdata", 408)]["met"] is False
    assert ratios[("detect / tfdata", 2008)]["met"] is True
    steady = ratios[("detect steady state", 408)]
    assert steady["value"] == 0.5 and steady["met"] is True  # 20 img/s steady vs 40 img/s
    assert ratios[("detect / original", 2008)]["met"] is None  # no original row at 2008


def test_profile_summary_names_our_stages_and_skips_process_frames(tmp_path) -> None:
    frames = [
        {"name": 'process 1:"python -m sbdn_pipeline.cli"', "file": None},
        {"name": "run", "file": os.path.join(ROOT, "beam_jobs", "detect.py")},
        {"name": "encode_mask_png", "file": os.path.join(ROOT, "sbdn_pipeline", "masks.py")},
        {"name": "compress", "file": "/usr/lib/python3.11/zlib.py"},
    ]
    samples = {"type": "sampled", "samples": [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1]],
               "weights": [0.02, 0.02, 0.02]}
    path = tmp_path / "p.speedscope.json"
    path.write_text(json.dumps({"shared": {"frames": frames}, "profiles": [samples]}))

    summary = profile.summarise_speedscope(str(path))

    assert summary["total_s"] == 0.06
    assert summary["self"][0] == ("compress (/usr/lib/python3.11/zlib.py)", 0.04)
    assert dict(summary["project"]) == pytest.approx(
        {"run (beam_jobs/detect.py)": 0.06, "encode_mask_png (sbdn_pipeline/masks.py)": 0.04}
    )


def test_smoke_run_reports_every_row_at_every_size(tmp_path, tiny_models) -> None:
    pytest.importorskip("psutil")
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    results = tmp_path / "results"
    models = ["--classifier", tiny_models["classifier"], "--identifier", tiny_models["identifier"]]
    originals = ["--original-classifier", tiny_models["classifier"],
                 "--original-identifier", tiny_models["identifier"]]
    # One in-memory worker: the default two worker processes triple detect's start-up.
    detect_options = ["--", "--direct_num_workers=1", "--direct_running_mode=in_memory"]

    code = throughput.main(
        ["--sizes", "2", "4", "--long-side", "128", *models, *originals,
         "--work", str(tmp_path / "work"), "--results-dir", str(results), "--tag", "test",
         *detect_options]
    )

    assert code == 0
    json_path, md_path = report.result_paths(str(results), "throughput", "test")
    assert json_path.endswith("throughput-test-%dcores.json" % os.cpu_count())
    with open(json_path, encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["sizes"] == [2, 4]
    assert [(r["id"], r["images"]) for r in saved["rows"]] == [
        (row, size) for size in (2, 4)
        for row in ("detect", "tfdata", "original", "laplacian", "blur-effect")]
    for row in saved["rows"]:
        assert row["exit_code"] == 0 and not row.get("error")
        assert row["images_per_s"] > 0 and row["cpu_s_per_image"] > 0
        assert row["peak_rss_mb"] > 0 and 0 < row["first_result_s"] < row["wall_s"]
    detect = [r for r in saved["rows"] if r["id"] == "detect"]
    assert [r["rows_written"] for r in detect] == [2, 4]
    assert detect[1]["summary"]["matched"] == 4 and detect[1]["summary"]["reconciled"]
    assert "--summary-json" in detect[0]["command"] and "in_memory" in detect[0]["command"]
    by_id = {(r["id"], r["images"]): r for r in saved["rows"]}
    assert by_id[("original", 4)]["identifier_images"] == by_id[("tfdata", 4)][
        "identifier_images"]
    assert {s["label"] for s in saved["steady_state"]} == {"4-image run minus 2-image run"}
    assert {r["name"].split(" (")[0] for r in saved["ratios"]} >= {
        "detect / original", "detect / tfdata", "detect whole command on 2 images, s"}
    assert all(r["met"] in (True, False) for r in saved["ratios"] if r["value"] is not None)
    check = saved["checks"]["detect vs tfdata at 4"]
    assert check["images_compared"] == 4 and check["verdicts_agree"] == 4
    assert check["max_abs_probability_difference"] < 1e-4
    markdown = open(md_path, encoding="utf-8").read()
    assert "4-image run minus 2-image run" in markdown and "blur-effect" in markdown


def test_memory_ratio_compares_the_largest_with_the_smallest_successful_run() -> None:
    from benchmarks.throughput.memory import memory_ratio

    rows = [{"images": 10000, "peak_rss_mb": 1150}, {"images": 1000, "peak_rss_mb": 1000},
            {"images": 5000, "peak_rss_mb": 9999, "error": "failed"}]

    assert memory_ratio(rows) == {"images": [1000, 10000], "peak_rss_ratio": 1.15,
                                  "at_most": 1.2, "met": True}
    assert memory_ratio(rows[:1]) is None
