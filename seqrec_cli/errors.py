"""The one exception type for mistakes a user can make (bad files, bad config values).

Entry points catch it and print its message as a single sentence with a non-zero exit, instead of
a traceback: a user who typed a wrong path needs the path, not our call stack.
"""


class UserError(Exception):
    """A problem with the user's input or configuration, explained in the message."""
