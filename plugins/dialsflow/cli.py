"""`dialsflow` command line: fetch, check-lumis, plan, conditions, certification, export,
connections.

Exit codes: 0 success; 1 some runs failed (fetch, conditions; conditions also for a listed
run OMS does not know) or lumisections are missing (check-lumis);
2 bad input, configuration or an unreachable service (one line on stderr, nothing written),
or a full disk (one line; the fetch stops at the first file that does not fit, whole files
only are left).
Without a dials_default connection, production DIALS is used with cached device credentials
(a notice on stderr says so).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson

from dialsflow import __version__
from dialsflow.config.connections import (
    CONN_IDS,
    CafSettings,
    ConnectionConfigError,
    DbsSettings,
    DialsSettings,
    OmsSettings,
    ServiceConnection,
    from_env,
)
from dialsflow.config.inputs import load_patterns
from dialsflow.config.runs import RunSelection
from dialsflow.errors import DialsflowError, InputError
from dialsflow.times import utc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dialsflow",
                                description="DIALS monitoring elements to parquet.")
    p.add_argument("--version", action="version", version=f"dialsflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch", help="fetch datasets × MEs × runs from DIALS into parquet")
    f.add_argument("-d", "--datasets", required=True,
                   help="JSON list of dataset names or regexes")
    f.add_argument("-m", "--menames", required=True, help="JSON list of ME names or regexes")
    f.add_argument("-t", "--metype", default="auto", choices=["auto", "h1d", "h2d"],
                   help="ME dimension; auto asks DIALS (mixed lists work)")
    f.add_argument("-w", "--workspace", default=None,
                   help="DIALS workspace (default: the connection's, else tracker)")
    f.add_argument("-o", "--outputdir", required=True, type=Path, help="output directory")
    f.add_argument("--runs", default=None,
                   help="FIRST-LAST or a comma list (default: every run DIALS has)")
    f.add_argument("--resubmit", action="store_true",
                   help="skip runs the manifest records as complete")
    f.add_argument("--test", action="store_true",
                   help="first page per run only (marked incomplete in the manifest)")
    f.add_argument("--concurrency", type=int, default=4, help="runs fetched at once (1-32)")

    c = sub.add_parser("check-lumis",
                       help="compare the lumisections on disk with DBS (and DIALS)")
    c.add_argument("-d", "--datasets", required=True,
                   help="JSON list of dataset names or regexes (matched on disk)")
    c.add_argument("-m", "--menames", default=None,
                   help="JSON list of ME names or regexes (default: every ME on disk)")
    c.add_argument("-o", "--outputdir", required=True, type=Path,
                   help="the output directory of dialsflow fetch")
    c.add_argument("--runs", default=None,
                   help="FIRST-LAST or a comma list (default: every run DBS or disk has)")
    c.add_argument("--with-dials", action="store_true",
                   help="also ask DIALS, to tell our gaps from DIALS' gaps")
    c.add_argument("--json", action="store_true", help="print the report as JSON")

    pl = sub.add_parser("plan", help="every run of each job with its status (complete, due, "
                                     "waiting, excluded) and why, as the nightly DAG sees it")
    pl.add_argument("--jobs-file", default=None, type=Path,
                    help="the jobs file (default: $DIALSFLOW_JOBS_FILE, as the DAG reads it)")
    pl.add_argument("-j", "--job", action="append", default=[], dest="jobs", metavar="JOB",
                    help="a job name (repeat for several; default: every job)")
    pl.add_argument("--at", default=None, type=_instant,
                    help="judge waiting and stuck at this ISO time (default: now)")
    pl.add_argument("--runs", default=None, help="FIRST-LAST or a comma list: only these runs")
    pl.add_argument("--json", action="store_true", help="print the plans as JSON")

    ce = sub.add_parser("certification",
                        help="keep the CAF JSONs in force under OUTDIR and refresh its per-LS "
                             "golden/dcs table (maps are not touched)")
    ce.add_argument("-o", "--outputdir", required=True, type=Path,
                    help="the output directory of dialsflow fetch (or a job's output)")
    ce.add_argument("--class", dest="cert_class", default=None,
                    help="CAF class, e.g. Collisions24 (default: caf_default's extra.class)")
    ce.add_argument("--energy", default=None,
                    help="energy tag of the daily DCS-only files (default: 13p6TeV)")

    e = sub.add_parser("export", help="write one dialstools-style file per dataset × ME "
                                      "(all its runs) from an output directory")
    e.add_argument("outputdir", type=Path, help="the output directory of dialsflow fetch")
    e.add_argument("--dataset", action="append", required=True, dest="datasets",
                   metavar="DATASET", help="a dataset name or regex on disk (repeat for several)")
    e.add_argument("--me", action="append", default=None, dest="mes", metavar="ME",
                   help="an ME name or regex on disk (repeat; default: every ME on disk)")
    e.add_argument("--runs", default=None,
                   help="FIRST-LAST or a comma list (default: every complete run on disk)")
    e.add_argument("--to", required=True, type=Path, help="folder of the exported files")
    e.add_argument("--format", default="dialstools", choices=["dialstools"],
                   help="file layout (dialstools: the seed scripts' files)")

    co = sub.add_parser("conditions", help="write the per-LS OMS conditions of runs under "
                                           "OUTDIR/_conditions/oms/ (oms_default connection)")
    co.add_argument("-o", "--outputdir", required=True, type=Path, help="output directory")
    co.add_argument("--runs", required=True, help="FIRST-LAST or a comma list")
    co.add_argument("--hlt-path", action="append", default=None, dest="hlt_paths",
                    metavar="P", help="HLT path or fnmatch pattern whose per-LS rate to keep "
                                      "(repeat; default: HLT_ZeroBias_v*)")
    co.add_argument("--dataset", action="append", default=None, dest="datasets",
                    metavar="D", help="primary dataset whose per-LS rate to keep (repeat; "
                                      "default: ZeroBias)")
    co.add_argument("--force", action="store_true",
                    help="rewrite tables already written with the same paths and datasets")

    sub.add_parser("connections",
                   help="show the connections read from AIRFLOW_CONN_* (secrets masked)")
    return p


def _instant(text: str) -> datetime:
    try:
        return utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _required(conn_id: str) -> ServiceConnection:
    conn = from_env(conn_id)
    if conn is None:
        raise InputError(f"connection {conn_id} is not set: set AIRFLOW_CONN_"
                         f"{conn_id.upper()} (dialsflow-emulator env prints the emulator's)")
    return conn


def _dials_settings() -> DialsSettings:
    """dials_default, or production DIALS with cached device credentials; the latter is
    said at once (stderr), so a failure that follows is not a mystery."""
    conn = from_env("dials_default")
    if conn is None:
        print("dialsflow: notice: no dials_default connection found; using production DIALS "
              "with cached credentials", file=sys.stderr, flush=True)
    return DialsSettings.from_connection(conn)


def _plan(args: argparse.Namespace) -> int:
    from dialsflow.config.jobs import select_jobs
    from dialsflow.pipeline.discovery import plan_job
    from dialsflow.services.caf import CafClient
    from dialsflow.services.dbs import DbsClient
    from dialsflow.services.dials import DialsClient
    from dialsflow.services.oms import oms_client
    from dialsflow.store.manifest import Manifest

    _quiet_stdout(args.json)
    jobs = select_jobs(args.jobs, args.jobs_file)
    runs = RunSelection.parse(args.runs)
    at = args.at or datetime.now(UTC)
    oms_settings = OmsSettings.from_connection(_required("oms_default"))
    caf_base = CafSettings.from_connection(_required("caf_default"))
    dbs_settings = DbsSettings.from_connection(_required("dbs_default"))
    dials_settings = _dials_settings()
    plans = []
    with DbsClient(dbs_settings) as dbs:
        for job in jobs:
            with contextlib.ExitStack() as stack:
                dials = stack.enter_context(DialsClient(dials_settings.for_workspace(
                    job.workspace)))
                oms = stack.enter_context(oms_client(oms_settings, dials))
                caf = stack.enter_context(CafClient(job.caf_settings(caf_base),
                                                    energy=job.certification.energy))
                plans.append(plan_job(job, at=at, dials=dials, oms=oms, caf=caf, dbs=dbs,
                                      manifest=Manifest(job.output), runs=runs))
    if args.json:
        print(orjson.dumps({"jobs": [p.public() for p in plans]}).decode())
    else:
        print("\n\n".join(p.render() for p in plans))
    return 0


def _quiet_stdout(quiet: bool) -> None:
    """With --json, stdout carries the document only: logs go to stderr, warnings only."""
    if quiet:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries are expected, not news


def _connections() -> int:
    status = 0
    for conn_id in CONN_IDS:
        try:
            conn = from_env(conn_id)
        except ConnectionConfigError as exc:
            print(f"{conn_id}: error: {exc}")
            status = 1
            continue
        if conn is None:
            print(f"{conn_id}: not set (AIRFLOW_CONN_{conn_id.upper()})")
            continue
        login = f" login={conn.login}" if conn.login else ""
        secret = " password=***" if conn.password else ""
        print(f"{conn_id}: {conn.host}{login}{secret} extra={dict(conn.extra)}")
    return status


def _certification(args: argparse.Namespace) -> int:
    import re
    from dataclasses import replace

    from dialsflow.config.jobs import DEFAULT_ENERGY
    from dialsflow.pipeline.certification import refresh_from_caf

    energy = args.energy or DEFAULT_ENERGY
    if not re.fullmatch(r"[A-Za-z0-9]{1,20}", energy):
        raise InputError(f"--energy {energy!r}: give an energy tag such as 13p6TeV")
    if args.cert_class is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}",
                                                        args.cert_class):
        raise InputError(f"--class {args.cert_class!r}: give a CAF class such as Collisions24")
    conn = from_env("caf_default")
    if conn is None:
        if args.cert_class is None:
            raise InputError("connection caf_default is not set and no --class given: set "
                             "AIRFLOW_CONN_CAF_DEFAULT or give --class")
        from dialsflow.services.caf import PRODUCTION_CAF

        base = CafSettings(PRODUCTION_CAF, args.cert_class, "golden", True)
    else:
        base = CafSettings.from_connection(conn)
    if args.cert_class:
        base = replace(base, cert_class=args.cert_class)
    result = refresh_from_caf(args.outputdir, base, energy)
    print(f"dialsflow: {result.summary()}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from dialsflow.pipeline.ingest import fetch

    if not 1 <= args.concurrency <= 32:
        raise DialsflowError("--concurrency must be between 1 and 32")
    datasets = load_patterns(args.datasets, "datasets")
    mes = load_patterns(args.menames, "MEs")
    runs = RunSelection.parse(args.runs)
    settings = _dials_settings().for_workspace(args.workspace)
    report = fetch(settings, datasets, mes, args.outputdir, me_type=args.metype, runs=runs,
                   resubmit=args.resubmit, test=args.test, concurrency=args.concurrency)
    print(f"dialsflow: {len(report.written)} runs written, {len(report.skipped)} skipped as "
          f"complete, {len(report.failed)} failed; output in {args.outputdir}")
    for r in report.failed:
        print(f"dialsflow: failed: {r.error}", file=sys.stderr)
    return 1 if report.failed else 0


def _check_lumis(args: argparse.Namespace) -> int:
    from dialsflow.pipeline.completeness import check_units, select_units
    from dialsflow.services.dbs import DbsClient
    from dialsflow.services.dials import DialsClient
    from dialsflow.store.layout import units_on_disk

    _quiet_stdout(args.json)
    datasets = load_patterns(args.datasets, "datasets")
    mes = load_patterns(args.menames, "MEs") if args.menames else None
    runs = RunSelection.parse(args.runs)
    if not args.outputdir.is_dir():
        raise InputError(f"output directory {args.outputdir} does not exist: give the -o of "
                         "dialsflow fetch")
    units = select_units(units_on_disk(args.outputdir), datasets, mes)
    dbs_conn = from_env("dbs_default")
    if dbs_conn is None:
        raise InputError("connection dbs_default is not set: set AIRFLOW_CONN_DBS_DEFAULT to "
                         "the DBS reader (see README, Connections)")
    with contextlib.ExitStack() as stack:
        dbs = stack.enter_context(DbsClient(DbsSettings.from_connection(dbs_conn)))
        dials: dict[str, DialsClient] | None = None
        if args.with_dials:
            settings = _dials_settings()
            dials = {ws: stack.enter_context(DialsClient(settings.for_workspace(ws)))
                     for ws in sorted({k.workspace for k in units})}
        report = check_units(args.outputdir, dict.fromkeys(units, runs), dbs, dials)
    if not report.checks:
        raise InputError(f"nothing to check: no run{' of --runs ' + args.runs if runs else ''}"
                         f" is in DBS or under {args.outputdir} for the chosen datasets")
    if args.json:
        print(orjson.dumps(report.to_json()).decode())
    else:
        print(report.render_table())
    return 0 if report.complete else 1


def _export(args: argparse.Namespace) -> int:
    from dialsflow.pipeline.export import export_units, select_export_units

    runs = RunSelection.parse(args.runs)
    units = select_export_units(args.outputdir, args.datasets, args.mes)
    results = export_units(args.outputdir, units, args.to, runs=runs, fmt=args.format)
    for r in results:
        state = "written" if r.written else "up to date" if r.runs else "no complete run, skipped"
        print(f"dialsflow: {r.path.name}: {state} ({len(r.runs)} runs, {r.rows} rows)")
    return 0


def _conditions(args: argparse.Namespace) -> int:
    from dialsflow.config.conditions import spec_of
    from dialsflow.pipeline.conditions import write_conditions
    from dialsflow.services.dials import DialsClient
    from dialsflow.services.oms import oms_client
    from dialsflow.store.layout import ensure_writable

    runs = RunSelection.parse(args.runs)
    assert runs is not None  # --runs is required
    spec = spec_of(args.hlt_paths, args.datasets)
    settings = OmsSettings.from_connection(_required("oms_default"))
    with contextlib.ExitStack() as stack:
        dials = None
        if settings.via == "dials":
            dials = stack.enter_context(DialsClient(
                _dials_settings().for_workspace(None)))
        oms = stack.enter_context(oms_client(settings, dials))
        ensure_writable(args.outputdir)  # after every input is known good: nothing written
        report = write_conditions(oms, args.outputdir, runs, spec, force=args.force,
                                  only_known=runs.listed is None)
    print(f"dialsflow: conditions: {report.summary()}; output in {args.outputdir}")
    for run in report.unknown:
        print(f"dialsflow: OMS has no run {run}", file=sys.stderr)
    for run, cause in report.failed.items():
        print(f"dialsflow: failed: run {run}: {cause}", file=sys.stderr)
    return 1 if report.failed or report.unknown else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stdout)
    logging.getLogger("cmsdials").setLevel(logging.WARNING)
    try:
        if args.command == "connections":
            return _connections()
        if args.command == "fetch":
            return _fetch(args)
        if args.command == "check-lumis":
            return _check_lumis(args)
        if args.command == "plan":
            return _plan(args)
        if args.command == "conditions":
            return _conditions(args)
        if args.command == "export":
            return _export(args)
        if args.command == "certification":
            return _certification(args)
    except DialsflowError as exc:
        print(f"dialsflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dialsflow: interrupted; completed runs are kept, rerun with --resubmit",
              file=sys.stderr)
        return 130
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
