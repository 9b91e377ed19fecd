"""seqrec_cli: a config-driven trainer for next-item (sequential) recommendation."""

__version__ = "0.1.0"
