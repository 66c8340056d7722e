# dialsflow production image: Apache Airflow 3.3.2 on Python 3.11 with our locked dependencies.
# Built by docker-compose.yaml (`docker compose build`); dags/, plugins/ and include/ are
# mounted at run time, so changing a DAG or the jobs file needs no rebuild.
#
# Base: the *slim* variant of the official image, same Airflow and Python as the full
# `apache/airflow:3.3.2-python3.11`. Why not the full one: it ships ~30 providers (Google,
# Amazon, Snowflake, ...) installed against Airflow's own constraints-3.3.2, and ours pin
# pandas 3.1.1, which the Google provider refuses (it needs pandas < 2.2): resolving
# `apache-airflow[<the full image's extras>]==3.3.2` together with requirements.txt and
# constraints.txt has no solution. Installing our lock on top of the full image would leave
# those providers with broken requirements. The slim image has only Airflow core, so
# constraints.txt (our full lock, resolved *with* apache-airflow==3.3.2 and the celery
# provider, and tested by `make test`) fully determines the environment: the same versions
# as .venv on developer machines and CI. To use the full image anyway, change the FROM line
# and expect `pip check` to complain about providers dialsflow does not use.
#
# Pin by digest for bit-for-bit rebuilds once pulled at CERN:
#   docker buildx imagetools inspect apache/airflow:slim-3.3.2-python3.11
# and replace the tag below with  apache/airflow:slim-3.3.2-python3.11@sha256:<digest>
FROM apache/airflow:slim-3.3.2-python3.11

# The base image defines AIRFLOW_VERSION (3.3.2); naming it in the install command stops
# pip from ever up- or downgrading Airflow itself (the official "extend the image" recipe).
# requirements.txt holds our direct pins (PostgreSQL drivers psycopg2-binary + asyncpg,
# celery provider, celery pinned below 5.7, cmsdials, omsapi, pandas, pyarrow, ...);
# constraints.txt pins every transitive dependency. The emulator's packages (starlette,
# uvicorn) come along: small, and the same lock as CI.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/dialsflow/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/dialsflow/requirements.txt -c /opt/dialsflow/constraints.txt \
    && pip check

# Airflow puts /opt/airflow/plugins (mounted) on sys.path: that is where `dialsflow` is
# imported from, so the library is never installed twice in two versions.
ENV DIALSFLOW_JOBS_FILE=/opt/airflow/include/jsons/jobs_cern.json \
    DIALSFLOW_OUTPUT_ROOT=/opt/airflow/output
