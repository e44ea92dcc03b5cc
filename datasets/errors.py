"""The suite's user errors: what the command line reports as one line (exit 2), not a traceback."""
from __future__ import annotations


class UserError(Exception):
    """An error the user can act on: bad input, missing or damaged data, a busy folder, a missing tool.

    The suite's own error types derive from it (beside the built-in type they always were, so
    callers that catch ``RuntimeError`` still do); ``ValueError`` and ``OSError`` are user errors
    too. Anything else is a bug, and ``python -m bench`` lets its traceback through.
    """
