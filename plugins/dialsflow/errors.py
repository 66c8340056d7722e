"""Errors meant for people: each message is one line that says what to do."""

from __future__ import annotations


class DialsflowError(Exception):
    """A user-facing failure: bad input, unreachable service, refused credentials."""


class InputError(DialsflowError):
    """A flag, file or pattern the user gave is unusable."""


class ServiceError(DialsflowError):
    """A service answered with a permanent error, or transient errors outlasted the budget."""
