"""What Hydra needs from us: where `conf/` is, the structured schema it composes onto, and our resolvers.

Installed (wheel or editable), `conf/` is the package `seqrec_cli.conf`; in a bare source checkout
(no install) it is the `conf/` folder next to the package.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from pathlib import Path

from typing import Any, Sequence

from omegaconf import OmegaConf

from seqrec_cli.errors import UserError
from seqrec_cli.io.rundir import claim_new_dir


def _config_path() -> str:
    try:
        if importlib.util.find_spec("seqrec_cli.conf") is not None:
            return "pkg://seqrec_cli.conf"
    except ModuleNotFoundError:
        pass
    return str(Path(__file__).resolve().parent.parent / "conf")


CONFIG_PATH = _config_path()


def run_dir_for(resume: str | None, default: str) -> str:
    """The run directory of this process: the one a resume continues, else a new one of its own.

    A new run claims `default` atomically (`default-2`, ... when another run took it in the same
    second), so no two runs ever share a directory. Resolved once per composition (the resolver is
    cached). A resume path that does not exist is not created: the run gets a throwaway directory
    and stops with "Nothing to resume at ...". Under torchrun only rank 0 owns the run directory;
    the other ranks get a private temporary one for Hydra's own files.
    """
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank > 0:
        return str(Path(tempfile.gettempdir()) / f"seqrec_cli-rank{rank}-{os.getpid()}")
    if not resume:
        return str(claim_new_dir(default))
    path = Path(resume).expanduser()
    target = path.parent.parent if path.suffix == ".pt" else path
    if not (path.is_file() if path.suffix == ".pt" else path.is_dir()):
        return tempfile.mkdtemp(prefix="seqrec_cli-no-resume-")
    return str(target)


def register_schemas() -> None:
    """Make the schemas known to Hydra so `conf/train.yaml` can build on `train_schema`."""
    from hydra.core.config_store import ConfigStore

    from seqrec_cli.config.schema import TrainConfig

    ConfigStore.instance().store(name="train_schema", node=TrainConfig)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("seqrec_run_dir"):
        OmegaConf.register_new_resolver("seqrec_run_dir", run_dir_for, use_cache=True)


def compose(config_name: str, overrides: Sequence[str] = (), command: str = "seqrec-train") -> Any:
    """`conf/<config_name>.yaml` composed with `overrides` as the command line would; a composition
    error (mistyped override, wrong type, missing option) is a `UserError` of one sentence."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir, initialize_config_module

    register_schemas()
    register_resolvers()
    if CONFIG_PATH.startswith("pkg://"):
        init = initialize_config_module(CONFIG_PATH[len("pkg://") :], version_base="1.3")
    else:
        init = initialize_config_dir(CONFIG_PATH, version_base="1.3")
    try:
        with init:
            return hydra_compose(config_name, overrides=list(overrides))
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are the overrides' fault here
        if "--multirun" in str(exc):
            # A sweep value (a,b / interval(...)): fine where the config itself asks for a multirun
            # (`hparams_search=...` sets hydra.mode), which only Hydra's launch knows.
            raise SweepOverride(composition_sentence(exc, command)) from None
        raise UserError(composition_sentence(exc, command)) from None


class SweepOverride(UserError):
    """An override holds sweep syntax, which needs a multirun."""


def composition_sentence(exc: BaseException, command: str) -> str:
    """Hydra's multi-line composition error as one sentence that names the override and the fix."""
    # Hydra puts the reason of a failed override in the exception's cause.
    full = str(exc) + ("\n" + str(exc.__cause__) if exc.__cause__ is not None else "")
    lines = [line.strip() for line in full.split("Config search path:")[0].splitlines() if line.strip()]
    text = " ".join(lines)
    if m := re.search(r"Could not override '([^']+)'", text):
        return f"Unknown config key {m.group(1)}: it is not a setting of {command} (see {command} --cfg job)."
    if m := re.search(r"Key '([^']+)' not in '(\w+)'", text):
        return f"Unknown config key {m.group(1)}: it is not a setting of {command} (see {command} --cfg job)."
    if m := re.search(r"Could not find '([^']+)/([^']+)'", text):
        options = [line for line in lines if not line.startswith(("In ", "Could not", "Available options"))]
        group, name = m.group(1), m.group(2)
        listed = ", ".join(options) if options else "none"
        return f"Unknown option {name!r} for {group}: Available options in '{group}' are {listed}."
    if m := re.search(r"Error merging override (\S+)", text):
        detail = ("full_key", "object_type", "reference_type")
        reason = next((line for line in lines[1:] if not line.startswith(detail)), "")
        return f"Invalid override {m.group(1)}: {reason.rstrip('.')} (see {command} --help)."
    first = lines[0].rstrip(".") if lines else type(exc).__name__
    return f"Invalid command line: {first} (see {command} --help)."
