"""The CLI's error handling and output lines without the CLI framework, shared by the typer commands
(``nuseal.cli.base``) and the lean ``verify`` and ``sign`` paths (``nuseal.cli.lean``), which must not import typer.

Every failure becomes one line on stderr, ``error: <what> (<where>)``, never a traceback: ``NusealError`` and
``OSError`` (exit 1) name the file, URL or entry; any other exception is a bug in nuseal, worded as such.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NoReturn, TextIO

from nuseal.errors import NusealError

#: Set to 1 to see the Python traceback of an unexpected error (a bug) instead of the one-line message.
TRACEBACK_ENV = "NUSEAL_TRACEBACK"

#: Exit codes: 1 when the command ran and failed (or could not run on its input), 2 for a command line that
#: does not parse (unknown option, missing argument, a value of the wrong form), as click and POSIX tools do.
EXIT_FAILURE = 1
EXIT_USAGE = 2

# click's ``strip_ansi`` pattern: ``echo`` drops these escapes when the stream is not a terminal, as click.echo
# does, so the lean path prints byte for byte what the typer path prints (a package id may hold anything).
@cache
def _ansi() -> re.Pattern[str]:
    return re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def echo(line: str, *, err: bool = False) -> None:
    """``line`` and a newline on stdout (or stderr), flushed: what ``typer.echo`` does with a ``str``."""
    stream: TextIO = sys.stderr if err else sys.stdout
    if not stream.isatty():
        line = _ansi().sub("", line)
    stream.write(line + "\n")
    stream.flush()


def fail(message: str) -> NoReturn:
    """Stop the command with ``error: message`` and exit code 1 (the message names what and where)."""
    raise NusealError(message)


def existing_file(path: Path, what: str = "File") -> Path:
    """``path`` if it is a regular file; otherwise a NusealError naming it (missing, or a folder)."""
    if path.is_dir():
        fail(f"The path is a directory, not a file ({path})")
    if not path.is_file():
        fail(f"{what} does not exist ({path})")
    return path


class BadOption(Exception):
    """A usage error (exit 2) found once the command runs: an option's value or a missing companion option.

    The typer commands re-raise it as ``typer.BadParameter`` (click words it); :func:`run_command` words it the
    same way on the lean path: ``Invalid value for '--flag': message (nuseal sign)``.
    """

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message)
        self.flag = flag
        self.message = message


def os_error_text(exc: OSError) -> str:
    """``No such file or directory (packages/a.nupkg)``: the reason, then the path when there is one."""
    reason = exc.strerror or str(exc)
    return f"{reason} ({exc.filename})" if exc.filename is not None else reason


def error(message: str, code: int) -> int:
    """Print ``error: message`` on stderr and return ``code``."""
    echo(f"error: {message}", err=True)
    return code


def failure_code(exc: Exception) -> int:
    """The one error line for ``exc`` (a command's failure, not a usage error), printed; returns the exit code."""
    if isinstance(exc, NusealError):
        return error(str(exc), EXIT_FAILURE)
    if isinstance(exc, OSError):
        return error(os_error_text(exc), EXIT_FAILURE)
    if os.environ.get(TRACEBACK_ENV) == "1":
        import traceback

        traceback.print_exc()
    return error(f"unexpected {type(exc).__name__}: {exc} (a bug in nuseal; set {TRACEBACK_ENV}=1 to see "
                 "where, and please report it)", EXIT_FAILURE)


#: Exit code after Ctrl-C, as typer gives it (128 + SIGINT).
EXIT_INTERRUPTED = 130


def run_command(invoke: Callable[[], Any], command_path: str = "nuseal") -> int:
    """Run ``invoke`` and return its exit code (an int result, else 0), or the code of its failure.

    A :class:`BadOption` is a usage error of ``command_path`` (exit 2), worded as click words it.

    Outside typer (the lean ``verify`` path) this also does what typer's main does: Ctrl-C ends with 130 and no
    message, end of input is "aborted", and a closed output pipe ends quietly with 1.
    """
    try:
        result = invoke()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except EOFError:
        echo("", err=True)
        return error("aborted", EXIT_FAILURE)
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_FAILURE
    except BadOption as exc:
        return error(f"Invalid value for '{exc.flag}': {exc.message} ({command_path})", EXIT_USAGE)
    except Exception as exc:
        return failure_code(exc)
    return result if isinstance(result, int) else 0


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and flushing what is buffered must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's stream): nothing is buffered for a pipe
        pass


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` once the command is done, without the interpreter's teardown when that is safe.

    Tearing down the modules and objects of a verification (cryptography, lxml, the library's caches) cost more
    CPU than verifying a small package (~40-110 ms on the 2-core VM, docs/performance.md). With no other thread
    running, nothing is left for the teardown to finish: the atexit functions are run, stdout and stderr flushed,
    and the process ends with ``os._exit``. Otherwise (another thread alive, a profiler or tracer such as
    ``python -m cProfile`` or coverage, which write their results after the program, an output that cannot be
    flushed) it is the ordinary ``sys.exit``.
    """
    if threading.active_count() == 1 and sys.getprofile() is None and sys.gettrace() is None:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # a closed pipe: the ordinary exit reports it as Python always does
            sys.exit(code)
        os._exit(code)
    sys.exit(code)
