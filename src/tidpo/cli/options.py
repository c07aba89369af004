"""What the commands' parsers share: the options every command reads its model and data with, and argparse's
errors as :class:`~tidpo.cli.common.CLIError`.

``--model``, ``--dataset``, ``--split`` and ``--on_bad_row`` are defined here once, as :class:`Option` templates:
the flag, its choices and its default. Each command adds them to its parser with :meth:`Option.add_to`
(argparse) or declares them with :meth:`Option.field` (a dataclass field for ``HfArgumentParser``), passing its own
help text where the command says what the model or data is for.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from dataclasses import dataclass, replace

from tidpo.cli.common import CLIError

BAD_ROW_CHOICES = ("error", "skip")


@dataclass(frozen=True)
class Option:
    """One option as several commands take it; a command overrides the help (and default) with its own wording.

    Attributes:
        flag: the option on the command line (argparse); a dataclass field's name is its flag instead.
        help: the text of ``--help``.
        default: the value when the option is not given.
        required: argparse refuses a command line without it.
        choices: the values accepted, or None for any.
        aliases: other spellings of the flag (e.g. TRL's).
    """

    flag: str
    help: str = ""
    default: object = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, **overrides) -> None:
        """Add the option to an argparse parser, with ``overrides`` (``help``, ``default``, ...) for this command."""
        option = replace(self, **overrides)
        settings: dict = {"help": option.help}
        if option.required:
            settings["required"] = True
        else:
            settings["default"] = option.default
        if option.choices is not None:
            settings["choices"] = option.choices
        parser.add_argument(option.flag, *option.aliases, **settings)

    def field(self, **overrides):
        """The option as a dataclass field that ``HfArgumentParser`` turns into a flag (named after the field)."""
        option = replace(self, **overrides)
        metadata: dict = {"help": option.help}
        if option.choices is not None:
            metadata["choices"] = list(option.choices)
        if option.aliases:
            metadata["aliases"] = list(option.aliases)
        return dataclasses.field(default=option.default, metadata=metadata)


MODEL = Option("--model")
DATASET = Option("--dataset")
SPLIT = Option("--split", default="train")
ON_BAD_ROW = Option(
    "--on_bad_row",
    help="a malformed pair: stop with its row (error, the default) or leave it out (skip)",
    default="error",
    choices=BAD_ROW_CHOICES,
)


class ErrorsAsCLIError:
    """Parser mixin: argparse's errors become :class:`CLIError` (one line, exit 2) instead of a usage dump and
    ``SystemExit``; the line points at ``<prog> --help``."""

    prog: str

    def error(self, message: str):
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def did_you_mean(name: str, known) -> str:
    """``"; did you mean 'X'?"`` for the closest of ``known`` names, or an empty string when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class CommandParser(ErrorsAsCLIError, argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one :class:`CLIError` line (exit 2)."""
