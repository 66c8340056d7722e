"""The "DIALS ingestion" page of the Airflow UI: a plugin FastAPI app over the output tree."""
