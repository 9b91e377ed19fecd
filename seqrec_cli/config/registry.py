"""What Hydra needs from us: where `conf/` is, the structured schema it composes onto, and our resolvers.

Installed (wheel or editable), `conf/` is the package `seqrec_cli.conf`; in a bare source checkout
(no install) it is the `conf/` folder next to the package.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

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
