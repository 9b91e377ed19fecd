"""Ranking a model against a split: the metric definitions (`metrics`), full-catalogue ranking
(`ranking`, used by validation during training and by seqrec-eval), top-K inference (`inference`)."""
