"""fastnst: real-time neural style transfer (train with torch, play with onnxruntime)."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a model).

    ``fastnst.cli`` prints it as one line on stderr and exits non-zero, without a traceback.
    """

