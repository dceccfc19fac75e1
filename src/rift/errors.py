"""The one exception type that reaches the user as a one-line message instead of a traceback."""


class RiftError(Exception):
    """A problem with the user's input or environment, explained in one line.

    The CLI prints ``rift: error: <message>`` and exits with status 2; library users can catch it.
    """
