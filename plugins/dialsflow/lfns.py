"""CMS logical file names: the run a DQMIO file holds is written in its path."""

from __future__ import annotations

import re

#: /store/<kind>/<era>/<primary>/DQMIO/<processing>/<run // 10^6 as 3 digits>/<3>/<3>/
#: <5-digit block>/<file>.root (CMS LFN convention; docs/reference/dbs_caf.md A.2).
_LFN_RUN = re.compile(r"/(\d{3})/(\d{3})/(\d{3})/\d{5}/[^/]+$")


def run_of(lfn: str) -> int | None:
    """The run number in a CMS LFN, None when the name does not follow the convention."""
    m = _LFN_RUN.search(lfn or "")
    return int("".join(m.groups())) if m else None
