"""How a DIALS handler aborts a request: an exception carrying DRF's answer."""

from __future__ import annotations

from starlette.responses import Response

from ..httputil import json_response


class ApiError(Exception):
    """Abort a request with this response (DRF raises exceptions the same way)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def detail(status: int, text: str) -> ApiError:
    return ApiError(json_response({"detail": text}, status))


def no_match(model: str) -> ApiError:
    return detail(404, f"No {model} matches the given query.")
