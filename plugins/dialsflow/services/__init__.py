"""One client per upstream service (DIALS, DBS, CAF, OMS), each built from its settings."""
