"""Airflow adapters: task context and XCom in, pipeline calls, typed payloads out."""
