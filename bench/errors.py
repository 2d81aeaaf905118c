"""Errors that carry a user-facing message (exit code 2 in the CLI, never a traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: a suite file, a flag, a model path, a results directory."""


class ResultWriteError(Exception):
    """A result file could not be written (disk full, read-only directory): the run stops, exit 3."""


class CrosscheckFailed(Exception):
    """A cross-check arm did not complete: nothing to compare for that repeat, exit 1."""
