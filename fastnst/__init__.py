"""fastnst: real-time neural style transfer (train with torch, play with onnxruntime)."""

__version__ = "0.1.0"


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a model).

    ``fastnst.cli`` prints it as one line on stderr and exits non-zero, without a traceback.
    ``setting``: the setting whose way out only a front end can name (the command line: a flag).
    """

    def __init__(self, *args, setting: str | None = None):
        super().__init__(*args)
        self.setting = setting
