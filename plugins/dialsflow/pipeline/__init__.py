"""What dialsflow does, free of Airflow: units, discovery, ingest, completeness."""
