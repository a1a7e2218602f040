"""The scheduling and query examples in examples/ are valid as shipped.

Airflow is too heavy to install for a test, so the DAG is parsed and compiled, and every flag
it passes is checked against `sbdn detect`'s options and Beam's. The DuckDB queries run
against a real two-run output folder.
"""

from __future__ import annotations

import ast
import os
import re
import shlex

import duckdb
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from sbdn_pipeline.cli import cli

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _read(name: str) -> str:
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as handle:
        return handle.read()


def _detect_flags() -> set[str]:
    return {opt for param in cli.commands["detect"].params for opt in param.opts
            if opt.startswith("--")}


def _beam_flags() -> set[str]:
    names = PipelineOptions([]).get_all_options(retain_unknown_options=False)
    return {f"--{name}" for name in names}


def _check_flags(flags: list[str]) -> None:
    detect, beam = _detect_flags(), _beam_flags()
    for flag in flags:
        name = flag.split("=", 1)[0]
        assert name in detect or name in beam, f"{name} is neither an sbdn nor a Beam option"


def test_airflow_dag_compiles_and_runs_an_incremental_detect() -> None:
    source = _read("airflow_dag.py")
    tree = ast.parse(source)
    compile(tree, "airflow_dag.py", "exec")
    calls = {node.func.id: node for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    operator = calls["BeamRunPythonPipelineOperator"]
    keywords = {keyword.arg: keyword.value for keyword in operator.keywords}
    assert ast.literal_eval(keywords["runner"]) == "DataflowRunner"
    options = keywords["pipeline_options"]
    keys = [ast.literal_eval(key) for key in options.keys]
    values = dict(zip(keys, options.values, strict=True))
    assert ast.literal_eval(values["skip-existing"]) is True
    # The operator turns each key into --key; all but --input (mapped by the entry point)
    # must be real sbdn detect or Beam flags.
    _check_flags([f"--{key}" for key in keys if key != "input"])
    assert "sbdn_detect_entrypoint.py" in source
    assert os.path.exists(os.path.join(EXAMPLES, "sbdn_detect_entrypoint.py"))


def test_airflow_entry_point_turns_input_flag_into_the_positional_argument() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sbdn_detect_entrypoint", os.path.join(EXAMPLES, "sbdn_detect_entrypoint.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = module.to_detect_args(["--runner=DataflowRunner", "--input=gs://b/photos/",
                                  "--output=gs://b/sbdn/", "--skip-existing"])
    assert args == ["detect", "gs://b/photos/", "--runner=DataflowRunner",
                    "--output=gs://b/sbdn/", "--skip-existing"]
    assert module.to_detect_args(["--input", "x/", "--project=p"]) == ["detect", "x/",
                                                                      "--project=p"]
    with pytest.raises(SystemExit, match="--input"):
        module.to_detect_args(["--output=o"])


def test_cron_lines_schedule_valid_incremental_commands() -> None:
    lines = [line.lstrip("# ") for line in _read("cron.txt").splitlines()
             if re.match(r"^#? ?\d+ \d+ \* \* \* ", line)]
    assert len(lines) == 2
    for line in lines:
        fields = line.split(None, 5)
        assert fields[0].isdigit() and fields[1].isdigit() and fields[2:5] == ["*", "*", "*"]
        words = shlex.split(fields[5].replace("\\%", "%"))
        commands = " ".join(words).split("&&")
        detect = shlex.split(commands[0].split("sbdn detect", 1)[1].split(">>")[0])
        assert "--skip-existing" in detect
        _check_flags([word for word in detect if word.startswith("--")])


def test_duckdb_queries_run_on_a_real_output(report_output, tmp_path, monkeypatch) -> None:
    # The queries read 'out/...': run them from a folder where out/ is the fixture's output.
    os.symlink(report_output["output"], tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    text = "\n".join(line for line in _read("queries.sql").splitlines()
                     if not line.lstrip().startswith("--"))
    statements = [statement.strip() for statement in text.split(";") if statement.strip()]
    assert len(statements) == 12
    connection = duckdb.connect()
    results = [connection.execute(statement).fetchall() for statement in statements]
    runs, top = results[0], results[2]
    assert [row[2] for row in runs] == [6, 3] and [row[5] for row in runs] == [2, 1]
    assert len(top) == 5 and top[0][1] >= top[-1][1]
    errors = {row[0]: row[2] for row in results[8]}
    assert errors == {"empty_file": 2, "not_an_image": 1}
    exported = (tmp_path / "blurry_images.csv").read_text().splitlines()
    assert exported[0] == "image_uri" and len(exported) == 6


def test_cluster_docs_commands_use_real_sbdn_and_beam_flags() -> None:
    with open(os.path.join(EXAMPLES, "..", "docs", "cluster.md"), encoding="utf-8") as handle:
        text = handle.read()
    checked = 0
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if " detect " not in line or not ("sbdn detect" in line or "--entrypoint sbdn" in line):
                continue
            words = shlex.split(line.split(" detect ", 1)[1].replace("$(", "(").replace(")", ""))
            flags = [word for word in words if word.startswith("--")]
            _check_flags(flags)
            checked += len(flags)
    assert checked > 20
