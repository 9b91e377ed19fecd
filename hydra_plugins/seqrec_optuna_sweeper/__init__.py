"""seqrec_cli's Hydra sweeper on current Optuna (>= 4), through its ask/tell API.

`hydra/sweeper=seqrec_optuna` (the `hparams_search=*_optuna` presets select it). It replaces the
released hydra-optuna-sweeper, which pins optuna < 3 and SQLAlchemy 1.4. Hydra finds it because
`hydra_plugins` is a namespace package that Hydra scans; only `config` and `optuna_sweeper` are
imported by that scan (Hydra skips modules named `_*`), so Optuna and SQLAlchemy load only when a
study actually runs, not on every `seqrec-train --help`.
"""
