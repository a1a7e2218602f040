"""The `sbdn` command line: one module per command group, each a thin layer over the library.

``cli`` is the group (``sbdn_pipeline.cli:main`` is the console script); the commands live in
:mod:`.detect`, :mod:`.demo`, :mod:`.dataset`, :mod:`.models` and :mod:`.report`, their
shared exit statuses and one-line failures in :mod:`.errors`, argument helpers in :mod:`.args`.
Nothing heavy (TensorFlow, Beam) is imported until a command runs.
"""

from __future__ import annotations

import logging
import sys

import click

from sbdn_pipeline.cli.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_USAGE


class _Commands(click.Group):
    """The sbdn group: every failure ends in one line and a distinct exit status.

    Click's own usage errors print the usage block first, Ctrl-C becomes "Aborted!" with exit
    1, and an OSError escaping a command is a traceback; here usage errors are one line
    (exit 2), Ctrl-C exits 130 and file-system errors are one line (exit 1).
    """

    def main(self, args=None, prog_name=None, complete_var=None,  # noqa: ANN001, ANN201
             standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "sbdn"
            click.echo(f"Error: {exc.format_message()} (see '{command} --help')", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Interrupted; nothing partial was published.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            sys.exit(EXIT_ENVIRONMENT)
        sys.exit(status if isinstance(status, int) else 0)



@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sbdn-pipeline")
def cli() -> None:
    """sbdn: find blurry images in large photo collections and say where the blur is.

    \b
    A classifier gives every image a blur probability; for images it calls blurry an
    identifier predicts a per-pixel blur mask. Results go to Parquet tables that DuckDB,
    pandas, Spark and BigQuery read with one glob.

    \b
    Example:
      sbdn detect photos/ --output out/
      duckdb -c "SELECT image_uri, blur_probability FROM 'out/results/*/*.parquet'
                 WHERE is_blurry ORDER BY blur_probability DESC LIMIT 10"
    """




from sbdn_pipeline.cli.dataset import make_dataset_command, show_dataset_command  # noqa: E402
from sbdn_pipeline.cli.demo import demo  # noqa: E402
from sbdn_pipeline.cli.detect import detect  # noqa: E402
from sbdn_pipeline.cli.models import evaluate_command, ship_model, train_command  # noqa: E402
from sbdn_pipeline.cli.report import report, summarize  # noqa: E402

for _command in (detect, demo, make_dataset_command, show_dataset_command, train_command,
                 evaluate_command, ship_model, report, summarize):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cli(prog_name="sbdn")
