"""A command's help page made from its declarations (``nuseal.cli.declare``) without the CLI framework, laid out
as nuseal's typer commands lay it out (``nuseal.cli.base``: click's formatter at ``HELP_WIDTH``, metavars, the
``[default: ...]`` notes), so ``nuseal verify --help`` needs no typer import.

Hand-written because click's formatter cannot be imported without typer (it is vendored inside it). Only what
the declarations use is laid out here: :func:`page` returns ``None`` for anything else (typer then prints the
help), and a test compares the page with typer's, byte for byte.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Mapping, Sequence

from nuseal.cli.declare import HELP_WIDTH, Opt

#: click's definition lists: the first column at most this wide, then two spaces.
_COL_MAX = 30
_COL_SPACING = 2
_INDENT = 2


def _fill(text: str, width: int, indent: str = "") -> str:
    """click's ``wrap_text`` with paragraphs preserved (no ``\\b`` blocks: :func:`page` refuses those)."""
    wrapper = textwrap.TextWrapper(width, initial_indent=indent, subsequent_indent=indent, replace_whitespace=False)
    paragraphs = [" ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n")]
    return "\n\n".join(wrapper.fill(p) for p in paragraphs if p)


def _definitions(rows: list[tuple[str, str]]) -> list[str]:
    """click's ``HelpFormatter.write_dl`` at one indentation level."""
    first_col = min(max(len(first) for first, _ in rows), _COL_MAX) + _COL_SPACING
    lines = []
    for first, second in rows:
        wrapped = _fill(second, max(HELP_WIDTH - first_col - 2, 10)).splitlines() if second else []
        head = " " * _INDENT + first
        if not wrapped:
            lines.append(head)
            continue
        if len(first) <= first_col - _COL_SPACING:
            lines.append(head + " " * (first_col - len(first)) + wrapped[0])
        else:
            lines.extend([head, " " * (first_col + _INDENT) + wrapped[0]])
        lines.extend(" " * (first_col + _INDENT) + line for line in wrapped[1:])
    return lines


def _option_row(opt: Opt, is_flag: bool) -> tuple[str, str] | None:
    name = ", ".join(sorted(opt.flags, key=lambda flag: len(flag) - len(flag.lstrip("-"))))
    if not is_flag:
        if opt.metavar is None:
            return None  # typer would show the type's name
        name = f"{name} {opt.metavar}"
    extra = []
    if opt.envvar is not None:
        extra.append(f"env var: {opt.envvar}")
    if isinstance(opt.default, str):
        extra.append(f"default: {opt.default}")
    elif opt.default not in (None, False, []):
        return None  # typer's rendering of other defaults is not reproduced here
    if opt.min is not None:
        extra.append(f"x>={opt.min}")
    help_text = opt.help
    if extra:
        help_text = f"{help_text}  [{'; '.join(extra)}]"
    return name, help_text


def page(command_path: str, doc: str, options: Mapping[str, Opt], flags: set[str],
         commands: Sequence[tuple[str, str]] | None = None) -> str | None:
    """The help page of ``command_path`` (``nuseal verify``) documented by ``doc``, with ``options`` in order
    (``flags``: the names of the on/off options); ``None`` when the declarations use something not laid out here.

    ``commands`` (a group's page): each sub-command's name and summary, as click shortens it for the page."""
    text = inspect.cleandoc(doc)
    if "\b" in text or "\f" in text:
        return None
    arguments = [(o.metavar or name.upper(), o.help) for name, o in options.items() if not o.flags]
    rows = []
    for name, opt in options.items():
        if opt.flags:
            row = _option_row(opt, name in flags)
            if row is None:
                return None
            rows.append(row)
    rows.append(("-h, --help", "Show this message and exit."))
    if any(not label.endswith("...") or opt.default is not ... for (label, _), opt in
           zip(arguments, (o for o in options.values() if not o.flags), strict=True)):
        return None  # only required ``NAME...`` arguments are laid out here
    group = ["COMMAND [ARGS]..."] if commands is not None else []
    usage = " ".join([f"Usage: {command_path}", "[options]", *(label for label, _ in arguments), *group])
    lines = [usage, "", _fill(text, HELP_WIDTH, " " * _INDENT)]
    if arguments:
        lines += ["", "Arguments:", *_definitions(arguments)]
    lines += ["", "Options:", *_definitions(rows)]
    if commands:
        lines += ["", "Commands:", *_definitions(list(commands))]
    return "\n".join(lines) + "\n"
