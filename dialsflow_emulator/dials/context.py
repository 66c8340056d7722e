"""One request's view of DIALS: a workspace of the world at the request's clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from ..state import EmulatorState
from ..world.entities import DEFAULT_WORKSPACE, WORKSPACE_NAMES, Dataset, MonitorElement
from ..world.model import World
from .errors import detail


@dataclass(frozen=True)
class Ctx:
    """One request's view of DIALS: a workspace of the world at the request's clock."""

    state: EmulatorState
    workspace: str
    now: datetime
    datasets: dict[int, Dataset]  # known to DIALS at `now`, ascending id
    mes: dict[int, MonitorElement]  # of the workspace, ascending me_id

    @property
    def world(self) -> World:
        return self.state.world

    @property
    def seed(self) -> int:
        return self.state.settings.seed

    def dials_ls(self, dataset_id: int, run: int) -> tuple[int, ...]:
        return self.world.dials_ls(dataset_id, run, self.now)

    def me_named(self, name: str) -> MonitorElement | None:
        return next((m for m in self.mes.values() if m.name == name), None)

    def me_count(self, dim: int) -> int:
        return sum(1 for m in self.mes.values() if m.dim == dim)

    def runs_in_dials(self, dataset_id: int) -> list[int]:
        return [r.number for r in self.world.runs if self.dials_ls(dataset_id, r.number)]


def make_ctx(state: EmulatorState, workspace: str, now: datetime) -> Ctx:
    world = state.world
    datasets = sorted((d for d in world.datasets_in(workspace) if d.created_at <= now),
                      key=lambda d: d.dataset_id)
    mes = sorted(world.mes_in(workspace), key=lambda m: m.me_id)
    return Ctx(state, workspace, now, {d.dataset_id: d for d in datasets},
               {m.me_id: m for m in mes})


def request_workspace(request: Request) -> str:
    """`Workspace` header (case-insensitive); unknown names are a 404 after auth."""
    name = request.headers.get("workspace") or DEFAULT_WORKSPACE
    if name not in WORKSPACE_NAMES:
        raise detail(404, f"Workspace '{name}' not found")
    return name


#: A view: bytes are the JSON body; a Response is sent as it is.
Handler = Callable[[Request, Ctx], bytes | Response]
