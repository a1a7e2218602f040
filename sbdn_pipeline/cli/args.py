"""Argument checks shared by the commands: finite numbers, and Beam flags told from typos.

Kept free of Beam and TensorFlow at import time so that ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Iterable, Sequence

import click

# Runners whose pipeline options live in their own module (registered only once imported).
_RUNNER_OPTION_MODULES = {"DaskRunner": "apache_beam.runners.dask.dask_runner"}


class FiniteFloatRange(click.FloatRange):
    """A click FloatRange that also refuses NaN and infinities (NaN passes every comparison)."""

    name = "finite float range"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _runner_name(tokens: Sequence[str]) -> str:
    for index, token in enumerate(tokens):
        if token == "--runner" and index + 1 < len(tokens):
            return tokens[index + 1]
        if token.startswith("--runner="):
            return token.split("=", 1)[1]
    return ""


def _beam_parser(tokens: Sequence[str]):  # noqa: ANN202 - Beam's private parser class
    """An argument parser that knows every Beam pipeline option (as Beam itself builds it)."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    module = _RUNNER_OPTION_MODULES.get(_runner_name(tokens).split(".")[-1])
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise click.UsageError(f"runner {_runner_name(tokens)} is not installed: {exc}")
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - how Beam collects its options
    return parser


def _no_such_option(flag: str, candidates: Iterable[str]) -> click.UsageError:
    name = flag.split("=", 1)[0]
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return click.UsageError(
        f"no such option: {name}{hint}; options not listed in --help must be Apache Beam "
        "pipeline options")


def split_inputs_and_beam_args(tokens: Sequence[str], own_options: Iterable[str],
                               ) -> tuple[list[str], list[str]]:
    """Tell INPUT arguments from Beam pipeline flags in what click could not parse.

    Beam flags (``--runner X``, ``--direct_num_workers=2``) keep their values; any other
    bare word is an INPUT (so a shell-expanded glob gives many), and any other flag is a typo.

    Raises:
        click.UsageError: an unknown flag, with the closest known option as a suggestion.
    """
    tokens = [token for token in tokens if token != "--"]
    parser = _beam_parser(tokens)
    _, unknown = parser.parse_known_args(tokens)
    flags = [token for token in unknown if token.startswith("-")]
    if flags:
        raise _no_such_option(flags[0], [*own_options, *parser._option_string_actions])  # noqa: SLF001
    remaining = list(unknown)  # the bare words Beam did not take as values, in order
    inputs, beam_args = [], []
    for token in tokens:
        if remaining and token == remaining[0]:
            inputs.append(remaining.pop(0))
        else:
            beam_args.append(token)
    return inputs, beam_args


def option_names(command: click.Command) -> list[str]:
    """Every flag a click command knows (for suggestions)."""
    return [name for param in command.params for name in getattr(param, "opts", [])
            if name.startswith("-")]
