"""Turning command-line text into option values without loading pydantic for the values nuseal's options take.

typer 0.29 coerces every parameter through a pydantic ``TypeAdapter``: importing pydantic and building the adapters
costs more than the rest of ``nuseal verify``'s start-up, and it happened even for ``--help`` (typer builds the
adapter of the help flag before looking at its value). :func:`install` gives each parameter of a nuseal command a
coercion that handles the common cases itself, with the same results as typer's adapters:

* no value (an absent option, the help flag): typer's own handling, no adapter at all;
* an option with a ``parser`` (``--verbosity``, ``--revocation-mode``, URLs, fingerprints): the parser's result;
* ``str`` and lists of ``str``; ``int`` written as plain decimal digits within the option's ``min``/``max``;
* ``Path`` options without existence checks (``Path(text)``, as pydantic makes it), then typer's own path checks.

Anything else, and every value these do not accept (a parser's ``ValueError``, ``--parallel 0``, ``--port x``),
goes to typer's pydantic coercion, so errors keep typer's wording and the exit code 2 (docs/decisions.md, "Command
line"). This leans on typer's private ``_TyperParameter._runtime_param`` hook; the typer version is pinned
(``requirements/constraints.txt``) and the CLI tests check both the values and the error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import typer
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_path, lenient_issubclass, routes_to_path
from typer.core import _TyperParameter

__all__ = ["install"]

_DIGITS = re.compile(r"-?[0-9]+")


class _Slow(Exception):
    """The value is not one of the cases handled here: typer's own coercion decides."""


@dataclass(frozen=True)
class _Coercion(RuntimeParam):
    """typer's runtime coercion contract, fast for common cases (module docstring), typer's own otherwise."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return _coerce(self.descriptor, value, param, ctx)
        except _Slow:
            return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def _coerce(descriptor: TypeDescriptor, value: Any, param: Any, ctx: Any) -> Any:
    if descriptor.is_file or descriptor.is_tuple:
        raise _Slow
    if descriptor.is_list:
        if not isinstance(value, list | tuple):
            raise _Slow
        (item,) = get_args(descriptor.annotation) or (str,)
        return [_leaf(item, descriptor, v, param, ctx) for v in value]
    return _leaf(descriptor.annotation, descriptor, value, param, ctx)


def _leaf(annotation: Any, descriptor: TypeDescriptor, value: Any, param: Any, ctx: Any) -> Any:
    info = descriptor.parameter_info
    if info.parser is not None:
        try:
            return info.parser(value)
        except typer.BadParameter:
            raise  # typer's adapter lets it through as it is
        except Exception:
            raise _Slow from None  # typer words it (and calls the parser again: parsers are pure)
    if annotation is str and isinstance(value, str):
        return value
    if annotation is int and not info.clamp:
        number = value if type(value) is int else int(value) if isinstance(value, str) and _DIGITS.fullmatch(
            value) else None
        if number is None or (info.min is not None and number < info.min) or (
                info.max is not None and number > info.max):
            raise _Slow
        return number
    if lenient_issubclass(annotation, Path) and routes_to_path(annotation, info) and isinstance(value, str):
        path_type = info.path_type or annotation
        if path_type is Path:
            # pydantic's Path validation of a str is Path(text); typer's own checks (readable, exists) follow.
            return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
    raise _Slow


def install(params: list[Any]) -> None:
    """Give every typer parameter in ``params`` the coercion above (parameters already given one keep it)."""
    for param in params:
        if isinstance(param, _TyperParameter) and param._runtime_param is None:
            descriptor = param.type_descriptor
            param._runtime_param = _Coercion(descriptor.parameter_info, descriptor.annotation, descriptor)
