"""Exceptions raised by ionofield.

Every message names the file or variable at fault, what was found, and the fix.
All exceptions derive from :class:`IonofieldError`, and each also derives from the
built-in exception a caller would naturally catch (``ValueError``, ``OSError``).
Warnings derive from :class:`IonofieldWarning`: input that was repaired (with the
counts), a model used outside what it was fitted on, a faster path that could not be
taken.
"""

from __future__ import annotations

from collections.abc import Iterable


class IonofieldError(Exception):
    """Base class of every error raised by ionofield."""


class InputFileError(IonofieldError, ValueError):
    """A data file cannot be read as the format it claims to be.

    Parameters
    ----------
    path
        The offending file.
    problem
        What was found, and what to do about it.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class IONEXFormatError(InputFileError):
    """An IONEX file is malformed, truncated or inconsistent with its header."""


class ROFormatError(InputFileError):
    """A radio-occultation profile file lacks a variable or holds impossible values."""


class UnitsError(IonofieldError, ValueError):
    """Values whose magnitude cannot be right for the declared units."""


class TimeOrderError(IonofieldError, ValueError):
    """Times that must increase do not."""


class CoverageError(IonofieldError, ValueError):
    """Drivers (TEC maps, indices, background) do not cover the period asked for."""


class CheckpointError(IonofieldError, OSError):
    """A model or training checkpoint file is truncated, foreign or mismatched."""


class ConfigError(IonofieldError, ValueError):
    """An invalid training or reconstruction option."""


class ManyProblemsError(IonofieldError, ValueError):
    """Several independent problems found in one input, reported together.

    Parameters
    ----------
    what
        The input the problems were found in (a file, a Dataset).
    problems
        One line per problem.
    """

    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{what}: {len(self.problems)} problem(s):\n{lines}")


class DivergenceError(IonofieldError, FloatingPointError):
    """Training produced non-finite losses or weights (a learning rate too high, bad data).

    The message names the epoch and step, the loss term that went non-finite first,
    and the likely cause.
    """


class CalendarError(IonofieldError, ValueError):
    """Times in a calendar that cannot be converted to the real-world (Gregorian) one."""


class IonofieldWarning(UserWarning):
    """Base class of every warning issued by ionofield."""


class DataWarning(IonofieldWarning):
    """Input data were repaired or partly dropped; the message gives the counts and how."""


class ExtrapolationWarning(IonofieldWarning):
    """A model is applied far outside the period or altitudes it was fitted on."""


class PerformanceWarning(IonofieldWarning):
    """A faster path asked for could not be taken; the slower one gives the same result."""


class CampaignError(IonofieldError, ValueError):
    """A Dataset lacks what a campaign needs (observations, hourly drivers, variables).

    Raised when a function that expects a campaign built by :func:`ionofield.campaign`
    (or the observations / indices it is built from) receives something else.
    """
