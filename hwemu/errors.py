"""The one exception type for errors a user can cause.

Its message is a single line that names the file, line or key and says what is wrong. The CLI
prints it as ``hwemu: error: <message>`` and exits with status 2. ``assert`` is kept for
invariants of hwemu's own code.
"""


class HwemuError(Exception):
    """A user-caused error with a one-line message."""

    def __init__(self, message: str):
        # Keep it to one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))


def warn(message: str) -> None:
    """Tell the user about input that is accepted but probably not what they meant: one line
    ``hwemu: warning: <message>`` on stderr (the run goes on)."""
    import sys

    print(f"hwemu: warning: {' '.join(str(message).split())}", file=sys.stderr)
