# dialsflow production image: Apache Airflow 3.3.2 on Python 3.11 with our locked dependencies.
# Built by docker-compose.yaml (`docker compose build`); dags/, plugins/ and include/ are
# mounted at run time, so changing a DAG, the library or the jobs file needs no rebuild.
#
# Base: the *slim* variant of the official image, same Airflow and Python as the full
# `apache/airflow:3.3.2-python3.11`, which adds ~30 providers (Google, Amazon, Snowflake,
# ...) installed at Airflow's own constraints-3.3.2. dialsflow uses none of them. pandas is
# no longer one of our dependencies, so the old conflict (our pandas 3 against the Google
# provider's pandas < 2.2) is gone, but slim is still the better base:
#   - the slim image has only Airflow core, so constraints.txt (our full lock, resolved *with*
#     apache-airflow==3.3.2 and the celery provider, tested by `make test`) fully determines
#     the environment: the same versions as .venv on developer machines and CI. On the full
#     image, our pins of shared packages (numpy, pyarrow, urllib3 < 2 for cmsdials, ...)
#     would override the versions those providers were installed and tested with;
#   - the full image brings pandas along (Google provider and friends), and cmsdials imports
#     pandas whenever it is installed: ~1 s and ~60 MB more at the start of every task;
#   - smaller image, fewer packages to patch.
# To use the full image anyway, change the FROM line and expect `pip check` to complain
# about providers dialsflow does not use.
#
# Pin by digest for bit-for-bit rebuilds once pulled at CERN:
#   docker buildx imagetools inspect apache/airflow:slim-3.3.2-python3.11
# and replace the tag below with  apache/airflow:slim-3.3.2-python3.11@sha256:<digest>
FROM apache/airflow:slim-3.3.2-python3.11

# The base image defines AIRFLOW_VERSION (3.3.2); naming it in the install command stops
# pip from ever up- or downgrading Airflow itself (the official "extend the image" recipe).
# requirements.txt pins exactly dialsflow's runtime dependencies and its `airflow` extra
# (pyproject.toml): cmsdials, omsapi, pyarrow, numpy, ..., the celery provider, celery below
# 5.7, the PostgreSQL drivers psycopg2-binary + asyncpg, the apprise and smtp providers
# (alerts, run by the DAG processor); constraints.txt pins every
# transitive dependency. Nothing of development: no pandas, no emulator (requirements-dev.txt).
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/dialsflow/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/dialsflow/requirements.txt -c /opt/dialsflow/constraints.txt \
    && pip check \
    && python -c "import importlib.util as u; assert not u.find_spec('pandas'), \
        'pandas in the image: cmsdials would import it at the start of every task'"

# The dialsflow package itself is not pip-installed: Airflow *appends* /opt/airflow/plugins
# (mounted) to sys.path, so a copy in site-packages would shadow the mounted one and a code
# change would need a rebuild. One copy, the mounted one: the DAG imports it from there, and
# so does the CLI in a container: PYTHONPATH=/opt/airflow/plugins python -m dialsflow.cli ...
ENV DIALSFLOW_JOBS_FILE=/opt/airflow/include/jsons/jobs_cern.json \
    DIALSFLOW_OUTPUT_ROOT=/opt/airflow/output
