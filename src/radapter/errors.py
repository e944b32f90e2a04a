"""The one error class for problems with what a user gave us (a config key, a file, a dataset layout, a model).

The command line prints a :class:`UserError` as one line without a traceback; anything else is a bug and keeps
its traceback. Subclasses also derive from the built-in class a caller would expect (``ValueError``,
``TypeError``, ``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message names the file, key or value and says what was expected."""


class ConfigError(UserError, ValueError):
    """A preset or override names an unknown key or gives a value of the wrong type."""


class InputFileError(UserError, FileNotFoundError):
    """A file or folder the user named is missing or is not what it should be."""
