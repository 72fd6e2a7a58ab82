"""The error tree. Each class carries its exit code and a hint saying what to do next.

The core raises these; only ``cli.main`` turns them into exit codes and messages.
"""

from __future__ import annotations

#: Where a relative input path starts, for the hints of "file not found" errors.
RELATIVE_PATHS = ("relative paths start at the config file's folder when set in scaleup.yml, "
                  "else at the current directory")


class ScaleupError(Exception):
    """Base class. ``exit_code`` is what the process exits with; ``hint`` says what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(ScaleupError):
    """An option is missing, unknown or has a bad value (exit 2)."""

    exit_code = 2


class InputError(ScaleupError):
    """A dataset, mini file or schema file is missing or malformed (exit 2)."""

    exit_code = 2


class ScriptFailed(ScaleupError):
    """The user's script exited non-zero or crashed (exit 1)."""

    exit_code = 1


class OutputInvalid(ScaleupError):
    """The script's output did not pass the schema or had the wrong count (exit 1)."""

    exit_code = 1


class LimitExceeded(ScaleupError):
    """A memory, CPU or deadline limit stopped a stage (exit 3)."""

    exit_code = 3


class Cancelled(ScaleupError):
    """The run was interrupted by a signal (exit 130)."""

    exit_code = 130
