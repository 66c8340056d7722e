"""The production topology (docker-compose.yaml) natively, without Docker: for developers and tests.

    .venv/bin/python -m deploy.native start  [--home DIR] [--db NAME] [--redis-db N|auto]
                                             [--executor celery|local] [--port 8080]
                                             [--dags DIR] [--emulator] ...
    .venv/bin/python -m deploy.native status [--home DIR]
    .venv/bin/python -m deploy.native restart COMPONENT [--home DIR] [--kill]
    .venv/bin/python -m deploy.native stop   [--home DIR] [--drop-db] [--purge]

Same components as the compose file (api-server, scheduler, dag-processor, triggerer, one
Celery worker; PostgreSQL metadata DB; Redis broker; Celery results in PostgreSQL), each a
background process in its own process group with a log file and a recorded PID, so `stop`
ends exactly what `start` began. Everything a deployment owns is named by its home folder
(default `.airflow/deploy/`): its database, its Redis database (claimed with a key, so two
deployments never share one), its ports (refused when busy), its secrets and admin password
(files in the home, mode 600). A test can therefore run one beside a developer's without
either noticing.
`--executor local` runs the same on the LocalExecutor: no broker and no Celery worker, the
scheduler runs tasks in its own worker processes (a single-host deployment).
Each component runs under `supervise.py`, compose's `restart: always` natively: when it
exits by itself (the scheduler, dag-processor and triggerer exit on a lost PostgreSQL
connection, e.g. a database restart) it is started again after a backoff. `restart` stops
one component (SIGTERM, or SIGKILL of its whole process tree with --kill) and starts it
again with the environment it had.
Connections come from `--connections-env FILE` (deploy/connections.env) or, with
`--emulator`, from a `dialsflow-emulator` started beside the components.

Modules: cli (commands), lifecycle (start, stop, restart), deployment (the recorded state),
processes and supervise (process groups, restart policy), resources (ports, PostgreSQL,
Redis, secrets), env (component environment), emulator (`--emulator`).
"""
