"""Where Hydra finds `conf/`, and the config resolvers it needs.

Installed (wheel or editable), `conf/` is the package `seqrec_cli.conf`; in a bare source checkout
(no install) it is the `conf/` folder next to the package.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from omegaconf import OmegaConf


def _config_path() -> str:
    try:
        if importlib.util.find_spec("seqrec_cli.conf") is not None:
            return "pkg://seqrec_cli.conf"
    except ModuleNotFoundError:
        pass
    return str(Path(__file__).resolve().parent.parent / "conf")


CONFIG_PATH = _config_path()


def run_dir_for(resume: str | None, default: str) -> str:
    """A resumed run writes into the run directory it continues; any other run into `default`.

    Under torchrun only rank 0 owns the run directory; the other ranks get a private temporary
    one for Hydra's own files, so a distributed run leaves exactly one run directory.
    """
    rank = int(os.environ.get("RANK", "0") or 0)
    if rank > 0:
        return str(Path(tempfile.gettempdir()) / f"seqrec_cli-rank{rank}-{os.getpid()}")
    if not resume:
        return default
    path = Path(resume).expanduser()
    return str(path.parent.parent if path.suffix == ".pt" else path)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("seqrec_run_dir"):
        OmegaConf.register_new_resolver("seqrec_run_dir", run_dir_for)
