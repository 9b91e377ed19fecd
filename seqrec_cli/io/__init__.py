"""Bytes to disk: the one atomic writer, and the run directory's ownership (claim + lock).

The lowest layer of the package: it imports nothing else from seqrec_cli but the error type, so
every stage (data cache, training artefacts, checkpoints, exports) can share one way of writing.
"""
