"""The error -> exit-code policy of every command, in one place.

Exit codes: 0 done; 1 a bug (a traceback is worth having); 2 a user error (one sentence: a bad
setting, file, or run directory); 3 the GPU ran out of memory; 130 / 143 interrupted by SIGINT /
SIGTERM (see `seqrec_cli.io.signals`).

Hydra reports a composition error (a mistyped override, a value of the wrong type, a missing
config option) itself, in several lines and with exit 1, before any of our code runs. So each
command composes its config once before handing over to Hydra and turns such an error into one
sentence and exit 2; `--help`, `--cfg`, `-m` and the other Hydra flags go straight to Hydra.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable, NoReturn, Sequence

from seqrec_cli.errors import UserError

EXIT_BUG = 1
EXIT_USER = 2
EXIT_OOM = 3

log = logging.getLogger("seqrec_cli")


def user_error_exit(message: str) -> NoReturn:
    """One sentence on stderr (through the console log handler when one is set up), exit 2."""
    if logging.getLogger().handlers or log.handlers:
        log.error("%s", message)
    else:
        sys.stderr.write(message.rstrip() + "\n")
    sys.exit(EXIT_USER)


def user_errors_exit(func: Callable[..., Any]) -> Callable[..., Any]:
    """A command body whose `UserError` ends the process with its sentence and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            user_error_exit(str(exc))

    return wrapper


def check_composition(config_name: str, args: Sequence[str], command: str) -> None:
    """Compose `config_name` with the command line's overrides as Hydra is about to; a failure is
    one sentence and exit 2. Hydra's own flags (and a multirun, whose overrides are sweeps) are
    left to Hydra."""
    if any(a.startswith("-") for a in args):
        return
    from seqrec_cli.config.registry import SweepOverride, compose

    try:
        compose(config_name, args, command)
    except SweepOverride:
        return  # a config that runs as a multirun (hparams_search=...) takes sweep values: Hydra decides
    except UserError as exc:
        user_error_exit(str(exc))
