"""The one sentence of a refused config value, `Invalid config value KEY=VALUE: expected WHAT.`,
shared by the check modules (the training run's, the dataset's, the objective's, the commands'
own). Kept on its own so they can import it without importing each other."""

from __future__ import annotations

from typing import Any

from seqrec_cli.errors import UserError


def require(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise UserError(f"Invalid config value {key}={value!r}: expected {expected}.")


def require_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    require(value in allowed, key, value, "one of " + ", ".join(allowed))
