"""`sbdn detect` for launchers that pass flags only, like Airflow's BeamRunPythonPipelineOperator.

The operator runs ``python <py_file> --runner=... --key=value ...``: every option becomes a
``--flag``, and it has no way to pass a positional argument. This file maps ``--input=URI`` to
``sbdn detect``'s positional INPUT and passes every other flag through unchanged, so sbdn's own
flags (``--output``, ``--skip-existing``, ...) and Beam's (``--project``, ``--region``, ...) keep
their meaning:

    python sbdn_detect_entrypoint.py --input=gs://B/photos/ --output=gs://B/sbdn/ \
        --skip-existing --runner=DataflowRunner --project=P ...
    == sbdn detect gs://B/photos/ --output=gs://B/sbdn/ --skip-existing --runner=DataflowRunner ...

Needs sbdn-pipeline installed in the interpreter that runs it
(``pip install 'sbdn-pipeline[gcp]'``).
"""

from __future__ import annotations

import sys


def to_detect_args(argv: list[str]) -> list[str]:
    """Flags-only arguments -> the arguments of ``sbdn detect``.

    Raises:
        SystemExit: when ``--input`` is missing or given twice.
    """
    input_specs: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("--input="):
            input_specs.append(arg.split("=", 1)[1])
        elif arg == "--input" and index + 1 < len(argv):
            input_specs.append(argv[index + 1])
            index += 1
        else:
            rest.append(arg)
        index += 1
    if len(input_specs) != 1 or not input_specs[0]:
        raise SystemExit("sbdn_detect_entrypoint: give exactly one --input=URI "
                         "(folder, glob, manifest or bucket path)")
    return ["detect", input_specs[0], *rest]


def main(argv: list[str] | None = None) -> None:
    """Run ``sbdn detect`` with the mapped arguments (exit code as the CLI's)."""
    from sbdn_pipeline import cli

    sys.argv = ["sbdn", *to_detect_args(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
