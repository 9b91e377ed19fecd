"""`seqrec-export`: a finished run as a self-contained bundle (ONNX or torch.export), see
`seqrec_cli.serving.bundle`. A missing, unfinished or corrupt run is one sentence and exit 2."""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from seqrec_cli.config.convert import to_typed
from seqrec_cli.config.registry import CONFIG_PATH
from seqrec_cli.errors import UserError
from seqrec_cli.serving.bundle import export_bundle
from seqrec_cli.serving.config import ExportAppConfig, register_serving_schemas, validate_export

log = logging.getLogger("seqrec_cli")

register_serving_schemas()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
def main(cfg: DictConfig) -> None:
    try:
        typed: ExportAppConfig = to_typed(cfg, ExportAppConfig, "seqrec-export", ("run", "out"))
        validate_export(typed)
        export_bundle(typed.run, typed.out, typed.format, typed.k_max, typed.histories, typed.overwrite)
    except UserError as exc:
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
