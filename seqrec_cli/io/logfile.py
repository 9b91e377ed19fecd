"""train.log, opened only once the run directory is known to be this run's to write.

A refused resume (changed config, changed data, a second writer) must leave the run directory
byte for byte as it was, yet the records logged while checking are worth keeping when the run
does go ahead. `DeferredFileHandler` holds records in memory until `commit_log_files()`; records
of a process that never commits are dropped when the handler closes.
"""

from __future__ import annotations

import logging
from typing import Optional


class DeferredFileHandler(logging.Handler):
    def __init__(self, filename: str, mode: str = "a", encoding: str = "utf-8") -> None:
        super().__init__()
        self.filename, self.mode, self.encoding = filename, mode, encoding
        self._pending: list[logging.LogRecord] = []
        self._file: Optional[logging.FileHandler] = None

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None:
            self._file.emit(record)
        else:
            self._pending.append(record)

    def commit(self) -> None:
        """Open the file (appending) and write what was held back."""
        if self._file is not None:
            return
        self._file = logging.FileHandler(self.filename, mode=self.mode, encoding=self.encoding)
        self._file.setFormatter(self.formatter)
        pending, self._pending = self._pending, []
        for record in pending:
            self._file.emit(record)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._pending = []
        super().close()


def commit_log_files() -> None:
    """Start writing every deferred log file the logging configuration holds (Hydra's train.log)."""
    for logger in (logging.getLogger(), logging.getLogger("seqrec_cli.transcript")):
        for handler in logger.handlers:
            if isinstance(handler, DeferredFileHandler):
                handler.commit()
