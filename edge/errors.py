"""One root for every error a user can cause or fix, and the exit code each one means.

Library code raises these with a message written for the person at the terminal: which file,
which field or option, what was expected. The CLI (:func:`csi_edge.cli.main`) is the one place
that turns them into a single line on stderr and an exit code; anything else is a bug and keeps
its traceback.

Exit codes (also in ``csi-edge --help`` and the README):

====  =======================================================================================
0     success
1     user error: a bad file, value, option or configuration (:class:`InputError`,
      :class:`ConfigError`)
2     usage: unknown option, missing argument (click's own errors)
3     nothing to do: the input holds no usable data, nothing was received (:class:`NoDataError`)
4     a device or peer is unreachable or misbehaves: serial port, board, host, broker, busy
      port (:class:`DeviceError`)
5     a check the user asked for failed: an accuracy check, a verification (:class:`CheckFailed`)
130   interrupted (Ctrl-C)
====  =======================================================================================
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    USER_ERROR = 1
    USAGE = 2
    NO_DATA = 3
    DEVICE = 4
    CHECK_FAILED = 5
    INTERRUPTED = 130


class CsiEdgeError(Exception):
    """Base of every csi-edge error meant for the user; ``exit_code`` says what kind it is."""

    exit_code: ExitCode = ExitCode.USER_ERROR


class InputError(CsiEdgeError, ValueError):
    """A file, value or option the user gave is wrong. Also a ValueError, so code that validates
    values with ``except ValueError`` keeps working."""


class ConfigError(InputError):
    """A configuration file or option is wrong (names the file and the key)."""


class NoDataError(CsiEdgeError):
    """The input is readable but holds nothing usable, or nothing arrived."""

    exit_code = ExitCode.NO_DATA


class DeviceError(CsiEdgeError):
    """A board, serial port, network peer or broker is unreachable or answers wrongly."""

    exit_code = ExitCode.DEVICE


class CheckFailed(CsiEdgeError):
    """A check the user asked for (``--check``, verification after flashing) failed."""

    exit_code = ExitCode.CHECK_FAILED


def file_error(path: object, exc: OSError, doing: str = "cannot open") -> InputError:
    """An OSError about a user's file as one line: ``<path>: cannot open: No such file``."""
    return InputError(f"{path}: {doing}: {exc.strerror or exc}")
