"""`seqrec-export`: a finished run as a self-contained bundle (ONNX or torch.export), see
`seqrec_cli.serving.bundle`. A missing, unfinished or corrupt run is one sentence and exit 2."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from seqrec_cli.config.convert import to_typed
from seqrec_cli.config.registry import CONFIG_PATH
from seqrec_cli.cli.exits import check_composition, user_errors_exit
from seqrec_cli.serving.bundle import export_bundle
from seqrec_cli.serving.config import ExportAppConfig, register_serving_schemas, validate_export

log = logging.getLogger("seqrec_cli")

register_serving_schemas()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    typed: ExportAppConfig = to_typed(cfg, ExportAppConfig, "seqrec-export", ("run", "out"))
    validate_export(typed)
    export_bundle(typed.run, typed.out, typed.format, typed.k_max, typed.histories, typed.overwrite)


def cli() -> None:
    """The console script: a composition error is one sentence and exit 2, then Hydra runs `main`."""
    check_composition("export", sys.argv[1:], "seqrec-export")
    main()


if __name__ == "__main__":
    cli()
