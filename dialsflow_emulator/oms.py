"""Placeholder: routes are added by the service twin's implementation."""

from starlette.routing import BaseRoute

from .state import EmulatorState


def routes(state: EmulatorState) -> list[BaseRoute]:
    return []
