"""`sbdn demo`: derives a corpus of real photos and runs the detect job on it."""

from __future__ import annotations

from click.testing import CliRunner

from sbdn_pipeline import demo
from sbdn_pipeline.cli import cli
from tests.test_default_models import shipped  # noqa: F401 - fixture: tiny "shipped" models


def test_demo_corpus_has_real_photos_blurred_ones_and_a_broken_file(tmp_path) -> None:
    written = demo.write_demo_corpus(str(tmp_path))
    treatments = [item.treatment for item in written]
    assert sum(t == "original (sharp)" for t in treatments) >= 8
    assert sum(t.startswith("blurred on purpose") for t in treatments) == 4
    assert sum(t.startswith("broken") for t in treatments) == 1
    assert len(list(tmp_path.iterdir())) == len(written)


def test_demo_runs_detect_with_the_shipped_models_and_prints_a_table(shipped, tmp_path) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "matched" in result.output and "errors 1" in result.output
    assert "astronaut_blurred.jpg" in result.output and "P(blurry)" in result.output
