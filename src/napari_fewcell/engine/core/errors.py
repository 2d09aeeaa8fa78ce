"""User-facing errors: one clear sentence, no traceback."""


class FewcellError(ValueError):
    """Bad input or environment. ``str(err)`` is a sentence meant for the user."""


class Cancelled(RuntimeError):
    """The user cancelled a long-running job."""
