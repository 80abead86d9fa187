"""``nuseal verify`` and ``nuseal sign`` without the CLI framework: typer, its vendored click and their imports
cost more start-up than the rest of a verification of a few packages, and a fixed share of every signing (issue 12,
docs/performance.md).

:func:`parse` reads a command line with the same :class:`~nuseal.cli.declare.Opt` declarations typer's commands are
built from (``nuseal.cli.verify``, ``nuseal.cli.sign``), so there is one definition of every option. It accepts
only the plain forms, ``--name value``, ``--name=value``, ``-v value``, flags and arguments in any order, and
returns ``None`` for anything else: help, an unknown option, a missing argument or value, a value its parser
refuses, ``--``. The caller then hands the command line to typer, which prints the help or words the usage error
exactly as before.
"""

from __future__ import annotations

import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nuseal.cli import declare
from nuseal.cli.declare import Opt
from nuseal.record import Struct

_DIGITS = frozenset("0123456789")


def _kind(annotation: Any) -> str:
    """How a parameter of type ``annotation`` takes its text: ``flag`` (``bool``), ``list`` (``list[...]``, one
    value per occurrence), ``int``, ``path``, ``str``, or ``other`` (typer's to convert, unless a parser is given)."""
    if annotation is bool:
        return "flag"
    origin = typing.get_origin(annotation)
    if origin is list:
        return "list"
    members = typing.get_args(annotation) if origin in (types.UnionType, typing.Union) else (annotation,)
    members = tuple(m for m in members if m is not type(None))
    return {(int,): "int", (Path,): "path", (str,): "str"}.get(members, "other")


def _item_kind(annotation: Any) -> str:
    (item,) = typing.get_args(annotation) or (str,)
    return _kind(item)


def _convert(opt: Opt, kind: str, text: str) -> Any:
    """The value of ``text``; raises (any exception) when typer would refuse or word it differently."""
    if opt.parser is not None:
        return opt.parser(text)
    if kind == "int":
        if not text or not set(text) <= _DIGITS:
            raise ValueError(text)
        number = int(text)
        if opt.min is not None and number < opt.min:
            raise ValueError(text)
        return number
    if kind == "path":
        return Path(text)
    if kind == "str":
        return text
    raise ValueError(f"{kind} values are converted by typer")


def parse(argv: Sequence[str], options: Mapping[str, Opt], hints: Mapping[str, Any]) -> dict[str, Any] | None:
    """The value of every parameter in ``options`` (keyed by name) for ``argv``, or ``None`` to let typer parse.

    ``hints`` are the parameters' types. At most one parameter is an argument (no flags); it takes every
    word that is not an option.
    """
    kinds = {name: _kind(hints[name]) for name in options}
    by_flag = {flag: name for name, opt in options.items() for flag in opt.flags}
    arguments = [name for name, opt in options.items() if not opt.flags]
    if len(arguments) > 1:
        return None
    given: dict[str, list[str]] = {}
    flags: set[str] = set()
    words: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "-":
            return None  # click reads it as an argument; nuseal has no use for it: typer's to judge
        if not word.startswith("-"):
            words.append(word)
            continue
        flag, equals, attached = word.partition("=")
        name = by_flag.get(flag)
        if name is None or (equals and not flag.startswith("--")):
            return None  # help, an unknown option, ``--``, ``-vq``: typer's to judge
        if kinds[name] == "flag":
            if equals:
                return None
            flags.add(name)
            continue
        if equals:
            value = attached
        else:
            if index >= len(argv) or argv[index].startswith("-"):
                return None  # a missing value, or one that looks like an option: typer's reading decides
            value = argv[index]
            index += 1
        given.setdefault(name, []).append(value)
    if words and not arguments:
        return None  # extra arguments: typer's usage error
    values: dict[str, Any] = {}
    try:
        for name, opt in options.items():
            kind = kinds[name]
            if not opt.flags:
                if kind != "list" or (not words and opt.default is ...):
                    return None  # a missing argument (typer's usage error); single arguments are not read here
                item = _item_kind(hints[name])
                values[name] = [_convert(opt, item, w) for w in words] if words else list(opt.default)
            elif kind == "flag":
                values[name] = True if name in flags else opt.default
            elif kind == "list":
                item = _item_kind(hints[name])
                values[name] = [_convert(opt, item, text) for text in given[name]] if name in given \
                    else list(opt.default)
            elif name in given:
                values[name] = _convert(opt, kind, given[name][-1])  # the last one wins, as in click
            elif opt.envvar is not None and os.environ.get(opt.envvar):
                values[name] = _convert(opt, kind, os.environ[opt.envvar])
            else:
                default = opt.default
                values[name] = _convert(opt, kind, default) if isinstance(default, str) else default
    except Exception:
        return None  # a value typer refuses (or words): typer's to say
    return values


#: The help flags (typer's ``help_option_names``); the lean path prints help only when one is the only word.
HELP_FLAGS = ("-h", "--help")


class LeanCommand(Struct, frozen=True):
    """A command the lean path runs: its help text, its parameters as (record type, declarations) groups in help
    order, and the function (``module``'s ``function``, looked up when it runs) that takes one instance of each."""

    doc: str
    groups: tuple[tuple[type[Any], Mapping[str, Opt]], ...]
    module: str
    function: str


#: The commands with a lean path; the console entry point (``nuseal.cli.entry``) hands them their arguments.
COMMANDS: dict[str, LeanCommand] = {
    "verify": LeanCommand(declare.VERIFY_DOC,
                          ((declare.VerifyArgs, declare.VERIFY), (declare.TrustArgs, declare.TRUST)),
                          "nuseal.cli.verify_run", "run"),
    "sign": LeanCommand(declare.SIGN_DOC,
                        ((declare.SignArgs, declare.SIGN), (declare.SigningArgs, declare.SIGNING)),
                        "nuseal.cli.sign_run", "sign"),
}


def field_types(type_: type[Struct]) -> dict[str, Any]:
    """The types of a record's own fields, as ``typing.get_type_hints`` gives them (a test compares both for every
    lean command's records), from its annotation strings evaluated in its module: ``get_type_hints`` makes a
    ``ForwardRef`` of each, which ``compile()``s the string first, ~0.5 ms of start-up for the two records."""
    namespace = vars(sys.modules[type_.__module__])
    own = type_.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect.get_annotations imports inspect)
    return {name: eval(annotation, namespace) if isinstance(annotation, str) else annotation
            for name, annotation in own.items()}


def run(name: str, argv: Sequence[str]) -> int | None:
    """Run ``nuseal NAME ARGV`` without typer and return its exit code; ``None`` when typer must parse it."""
    lean = COMMANDS[name]
    hints: dict[str, Any] = {}
    options: dict[str, Opt] = {}
    for type_, declared in lean.groups:
        hints |= field_types(type_)
        options |= declared
    command_path = f"nuseal {name}"
    if len(argv) == 1 and argv[0] in HELP_FLAGS:
        return show_help(command_path, lean.doc, options, hints)
    values = parse(argv, options, hints)
    if values is None:
        return None
    import importlib

    from nuseal.cli.guard import run_command

    function = getattr(importlib.import_module(lean.module), lean.function)
    parts = [type_(**{field: values[field] for field in declared}) for type_, declared in lean.groups]
    return run_command(lambda: function(*parts), command_path)


def show_help(command_path: str, doc: str, options: Mapping[str, Opt], hints: Mapping[str, Any]) -> int | None:
    """Print the help page (``nuseal.cli.helptext``) and return 0; ``None`` when typer must print it."""
    from nuseal.cli.helptext import page

    text = page(command_path, doc, options, {name for name in options if _kind(hints[name]) == "flag"})
    if text is None:
        return None
    from nuseal.cli.guard import echo

    echo(text.rstrip("\n"))
    return 0
