"""Local-Airflow harness: `make demo` and `make airflow` against the emulator.

Not part of the product and not a twin: it wires a throwaway Airflow (SQLite, its own
AIRFLOW_HOME under `.airflow/<name>/`) to a `dialsflow_emulator` process.
"""
