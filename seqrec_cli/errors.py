"""The one exception type for mistakes a user can make (bad files, bad config values).

Entry points catch it and print its message as a single sentence with a non-zero exit, instead of
a traceback: a user who typed a wrong path needs the path, not our call stack.
"""


class UserError(Exception):
    """A problem with the user's input or configuration, explained in the message."""


class Interrupted(BaseException):
    """The process was asked to stop (SIGINT / SIGTERM).

    A `BaseException`, like `KeyboardInterrupt`, so no `except Exception` on the way (Hydra's
    included) turns a stop request into a failure report. `epochs_done` is set when training
    had started: how many complete epochs `last.pt` holds.
    """

    def __init__(self, signal_name: str = "SIGINT", epochs_done: int | None = None) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.epochs_done = epochs_done

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process ended by that signal."""
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.signal_name, 130)
