"""The typer application object, the help format, the one error handler, and lazy registration of commands.

Each command module attaches its commands to ``app`` when imported. The console entry point imports only the
module the invoked command needs, so ``nuseal sign`` does not pay for importing the feed client or the trust
commands (start-up time is part of every signing and verification benchmark).

``app`` always has a root callback (``--version``), so typer builds a command *group* even when only one command
module is loaded: without it, a module with a single command (``install``) became the root command and
``nuseal install ID`` was refused as an extra argument.

Every command is built with :class:`Command` and every group with :class:`Group`: help lists the metavars a
person reads (``PACKAGE...``, ``--timestamper URL``), never Python types, and the root group's ``main`` is the
CLI's only error handler (see :func:`run_guarded`).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_type_hints

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from nuseal.cli import coercion
from nuseal.cli.commands import COMMAND_MODULES, ROOT_DOC, VERSION
from nuseal.cli.declare import HELP_WIDTH
from nuseal.cli.guard import EXIT_FAILURE, EXIT_USAGE, TRACEBACK_ENV, error, fail, failure_code, os_error_text
from nuseal.cli.lean import HELP_FLAGS

__all__ = ["COMMAND_MODULES", "EXIT_FAILURE", "EXIT_USAGE", "TRACEBACK_ENV", "Command", "Group", "OptionGroup",
           "app", "command", "fail", "group", "os_error_text", "register", "run_guarded",
           "show_help_without_command"]


def _usage_pieces(ctx: typer.Context, command: TyperCommand | TyperGroup) -> list[str]:
    pieces = ["[options]"] if any(p.param_type_name == "option" for p in command.get_params(ctx)) else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            pieces.append(_argument_label(param) if param.required else f"[{_argument_label(param)}]")
    return pieces


def _argument_label(param: TyperArgument) -> str:
    label = param.metavar or (param.name or "").upper()
    return label if param.nargs == 1 or label.endswith("...") else f"{label}..."


def _format_parameters(ctx: typer.Context, command: TyperCommand | TyperGroup, formatter: Any) -> None:
    arguments: list[tuple[str, str]] = []
    options: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            arguments.append((_argument_label(param), param.help or ""))
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            options.append(record)
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


class _Layout:
    """What nuseal's commands and groups share: option values coerced without pydantic where typer's adapters are
    not needed (``nuseal.cli.coercion``), and the help layout with metavars (``PACKAGE...``, ``URL``), as
    ``dotnet nuget`` shows them. Mixed in before click's class, so ``super()`` reaches it."""

    params: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        coercion.install(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        coercion.install([option])
        return option

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(ctx, cast("TyperCommand | TyperGroup", self))

    def format_options(self, ctx: Any, formatter: Any) -> None:
        _format_parameters(ctx, cast("TyperCommand | TyperGroup", self), formatter)


class Command(_Layout, TyperCommand):
    """A nuseal command."""


class Group(_Layout, TyperGroup):
    """A command group; the root group's ``main`` handles every error."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(ctx, self), "COMMAND [ARGS]..."]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        super().format_options(ctx, formatter)
        self.format_commands(ctx, formatter)

    def list_commands(self, ctx: Any) -> list[str]:
        # The order of COMMAND_MODULES (the README's), whatever order the modules were imported in.
        order = {name: i for i, name in enumerate(COMMAND_MODULES)}
        return sorted(super().list_commands(ctx), key=lambda name: order.get(name, len(order)))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        def invoke() -> Any:
            return super(Group, self).main(args, prog_name, complete_var, False, windows_expand_args, **extra)

        code = run_guarded(invoke)
        if standalone_mode:
            sys.exit(code)
        return code


def run_guarded(invoke: Callable[[], Any]) -> int:
    """The CLI's only error handler: run ``invoke`` (click in non-standalone mode) and return the exit code.

    Every failure becomes one line on stderr, ``error: <what> (<where>)``, never a traceback: usage errors
    (exit 2) name the command; the rest is ``nuseal.cli.guard``'s (shared with the lean ``verify`` path).
    """
    try:
        result = invoke()
    except typer.TyperException as exc:  # click's ClickException / UsageError family
        ctx = getattr(exc, "ctx", None)
        where = f" ({ctx.command_path})" if ctx is not None else ""
        return error(f"{exc.format_message()}{where}", exc.exit_code)
    except typer.Abort:
        return error("aborted", EXIT_FAILURE)
    except Exception as exc:
        return failure_code(exc)
    return result if isinstance(result, int) else 0


def _version() -> str:
    from importlib import metadata  # ~40 ms: only for --version

    try:
        return metadata.version("nuseal")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"nuseal {_version()}")
        raise typer.Exit(0)


app = typer.Typer(
    name="nuseal",
    help=ROOT_DOC,
    cls=Group,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # A fixed width: help reads the same on every terminal, in pipes and in the README.
    context_settings={"help_option_names": list(HELP_FLAGS), "terminal_width": HELP_WIDTH,
                      "max_content_width": HELP_WIDTH},
)


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        VERSION.default, *VERSION.flags, help=VERSION.help, is_eager=True, callback=_print_version
    ),
) -> None:
    show_help_without_command(ctx)


root.__doc__ = ROOT_DOC  # declared once (nuseal.cli.commands): the lean root help shows it too


def show_help_without_command(ctx: typer.Context) -> None:
    """A group called without a command prints its help and exits 2: the command line is incomplete."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)


def group(name: str, help: str, parent: typer.Typer | None = None) -> typer.Typer:
    """A command group under ``parent`` (default: ``nuseal``) with nuseal's help layout. Without a sub-command it
    prints its help and exits 2, unless the module registers its own callback (``trust`` lists signers)."""
    sub = typer.Typer(name=name, help=help, cls=Group, invoke_without_command=True, rich_markup_mode=None,
                      callback=show_help_without_command)
    (parent if parent is not None else app).add_typer(sub, name=name)
    return sub


@dataclass(frozen=True)
class OptionGroup:
    """Options several commands share, declared once: ``type`` is a frozen record (a dataclass, or a record
    for the groups the lean path shares) whose fields are the options, ``options`` maps each field to its typer
    declaration, and a command receives the filled record as its keyword-only parameter ``parameter`` (see
    :func:`command`)."""

    type: type[Any]
    options: Mapping[str, Any]
    parameter: str

    def signature(self) -> list[inspect.Parameter]:
        hints = get_type_hints(self.type)
        return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=hints[name])
                for name, option in self.options.items()]

    def take(self, values: dict[str, Any]) -> Any:
        """Remove the group's options from ``values`` and return them as one ``type`` instance."""
        return self.type(**{name: values.pop(name) for name in self.options})


Decorator = Callable[[Callable[..., None]], Callable[..., None]]


def command(owner: typer.Typer, name: str, *groups: OptionGroup) -> Decorator:
    """``@command(app, "verify", TRUST)``: register a command with nuseal's help layout.

    Typer reads options from the function's signature; each group's options are appended to it here (and handed
    to the function as one record), so a set of options is declared once rather than in every command.
    """

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        if not groups:
            owner.command(name, cls=Command)(func)
            return func
        grouped = {g.parameter for g in groups}
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name not in grouped]

        def run(**values: Any) -> None:
            taken = {g.parameter: g.take(values) for g in groups}
            func(**values, **taken)

        parameters = [*own, *(p for g in groups for p in g.signature())]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        run.__name__, run.__doc__ = func.__name__, func.__doc__
        owner.command(name, cls=Command)(run)
        return func

    return decorate


_loaded: set[str] = set()


def register(modules: set[str] | None = None) -> None:
    """Import the given command modules (all when None) so that their commands exist on ``app``."""
    for module in sorted(modules if modules is not None else set(COMMAND_MODULES.values())):
        if module not in _loaded:
            importlib.import_module(f"nuseal.cli.{module}")
            _loaded.add(module)
