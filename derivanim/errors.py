"""The project's errors. Each maps to one exit code of the command line."""


class DerivanimError(Exception):
    """Anything that went wrong that is not the user's input (exit code 1)."""

    exit_code = 1


class InvalidInput(DerivanimError):
    """The user's text (or a model's output) is not something derivanim accepts (exit code 2).

    The message is one line that names what is wrong and, where it can, where.
    """

    exit_code = 2


class RenderError(DerivanimError):
    """Manim failed; the message names the cause and the log to read."""

    def __init__(self, message: str, log_path: str | None = None):
        super().__init__(message if log_path is None else f"{message} (log: {log_path})")
        self.log_path = log_path


class ModelUnavailable(DerivanimError):
    """The model filler was asked for but its packages or adapter are missing."""


class NoFunction(InvalidInput):
    """The request has no function to differentiate (the model filler refused it): code, another subject, another
    kind of mathematics, or derivative talk without a function (exit code 2, like any input derivanim cannot use)."""


class ClusterUnavailable(DerivanimError):
    """A Ray cluster was asked for but Ray is not installed (the `derivanim[ray]` extra) or the cluster cannot be
    reached."""
