"""The app's refusals, each with the HTTP status the API answers it with.

Its own module so every part of the app (sends, devices, prompts) raises the same
types the server maps, without importing the service that composes them.
"""

from __future__ import annotations

from p2p_transfer.errors import LocalFault


class AppError(LocalFault):
    """An action the UI asked for cannot be done; ``status`` is the HTTP status it maps to."""

    status = 400


class NotFoundError(AppError):
    """No such transfer, device, prompt or history entry."""

    status = 404


class BusyError(AppError):
    """Not now: something in progress prevents it (e.g. a restart during transfers)."""

    status = 409


class GoneError(AppError):
    """The question was already answered, expired, or withdrawn."""

    status = 410
