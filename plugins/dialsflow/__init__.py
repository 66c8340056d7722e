"""dialsflow: per-lumisection DQM monitoring elements from DIALS to parquet."""

__version__ = "0.1.0"
