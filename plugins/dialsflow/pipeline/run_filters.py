"""A job's OMS run filters applied to OMS runs, each rejection with its reason.

Applied on our side, not in the OMS query, so that every rejected run can be reported
("no stable beams", "component X out", ...) instead of silently not being there.
Attribute meanings: docs/reference/oms.md §6.1.
"""

from __future__ import annotations

from collections.abc import Iterable

from dialsflow.config.jobs import OmsFilters
from dialsflow.services.oms import OmsRun


def rejection(run: OmsRun, filters: OmsFilters) -> str | None:
    """Why the job's OMS filters reject this run, or None when it passes."""
    # stable_beam → runs.stable_beam, Boolean "Stable beams during the run".
    if filters.stable_beam and run.stable_beam is not True:
        return "no stable beams (OMS stable_beam false)"
    # min_recorded_lumi → runs.recorded_lumi, integrated lumi recorded by CMS, pb^-1
    # (null while the run is ongoing).
    if filters.min_recorded_lumi > 0 and (run.recorded_lumi or 0.0) < filters.min_recorded_lumi:
        return (f"recorded lumi {run.recorded_lumi or 0.0:.3g} pb^-1 below "
                f"{filters.min_recorded_lumi:g}")
    # components → runs.components, List "Subsystems included in the run".
    missing = [c for c in filters.components if c not in run.components]
    if missing:
        return f"components not in the run: {', '.join(missing)}"
    return None


def split_by_filters(runs: Iterable[OmsRun],
                     filters: OmsFilters) -> tuple[list[OmsRun], list[tuple[OmsRun, str]]]:
    """(runs passing, [(run, reason)] rejected)."""
    kept, rejected = [], []
    for run in runs:
        reason = rejection(run, filters)
        if reason is None:
            kept.append(run)
        else:
            rejected.append((run, reason))
    return kept, rejected
