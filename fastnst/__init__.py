"""fastnst: real-time neural style transfer (train with torch, play with onnxruntime)."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a model).

    ``fastnst.cli`` prints it as one line on stderr and exits non-zero, without a traceback.
    """


# The signals (SIGINT, SIGTERM) that asked the running command to stop, newest last: whoever
# catches one appends it, and the command line exits with 128 + the last.
stop_signals: list[int] = []
