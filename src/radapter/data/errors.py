"""Errors of the data layer: user input problems (one line on the command line, see :mod:`radapter.errors`)."""

from __future__ import annotations

from radapter.errors import UserError


class DataError(UserError, ValueError):
    """A data file, folder or data setting is not what it should be (the message names it)."""


class DataTypeError(UserError, TypeError):
    """A data argument has the wrong type (the message says what was expected)."""
