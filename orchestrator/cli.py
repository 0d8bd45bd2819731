"""``lrsweep``: a thin command layer over the library.

Every command is a small function over a library call. User mistakes (bad spec files, unknown
sweeps, bad SQL) become ONE line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Fits are many small BLAS calls: on a loaded 2-core machine threaded OpenBLAS made report
# generation ~10x slower (4.5 s -> 45 s measured). Must be set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import orchestrator.ray_local  # noqa: E402,F401  (Ray pinned to 127.0.0.1 before anything imports ray)

__all__ = ["main"]

EXIT_USAGE = 2


# Every user mistake is an LrsweepError (trials/errors.py); these OS errors are user mistakes
# too when they reach the CLI (a spec path, an output path that cannot be written).
_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError,
)


def _store_of(args: argparse.Namespace) -> str:
    if getattr(args, "store", None):
        return args.store
    from orchestrator.execution import default_store

    return default_store()


# ---------------------------------------------------------------------------------- commands
def cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from orchestrator.execution import plan_against_store, resolve_store
    from orchestrator.plan_view import plan_json, render_plan
    from orchestrator.spec import load_spec

    spec = load_spec(args.spec)
    store = resolve_store(spec, args.spec, args.store)
    the_plan = plan_against_store(spec, store)
    if args.json:
        print(plan_json(the_plan))
    else:
        Console(width=None if args.wide else min(Console().width, 100)).print(render_plan(the_plan, wide=args.wide))
        if spec.search is not None:
            print(_search_plan_line(spec, store))
    return 0


def _search_plan_line(spec: object, store: str) -> str:
    from orchestrator.search.study import study_path

    s = spec.search  # type: ignore[attr-defined]
    path = study_path(store, spec.name)  # type: ignore[attr-defined]
    where = f"study {path}" if path.exists() else "no study yet"
    return (f"then search: {s.n_trials} trials over {sorted(s.space)} ({s.sampler}, seed {s.seed}, "
            f"objective {s.objective}, stopping {s.stopping}); {where}")


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.execution import run_sweep
    from orchestrator.run_summary import summary_lines

    if args.report:  # refused before anything trains (--force here is about stored results)
        from orchestrator.report_output import check_output

        check_output(args.report)

    from orchestrator.signals import SweepInterrupted, stop_on_signals

    try:
        with stop_on_signals():
            outcome = run_sweep(args.spec, store=args.store, address=args.address, force=args.force,
                                progress=not args.quiet,
                                init_store_in_nonempty_dir=args.init_store_in_nonempty_dir)
    except SweepInterrupted as exc:
        print(f"lrsweep: interrupted by {exc.name}: what finished is stored, running lineages keep their "
              f"last checkpoint; rerun `lrsweep run {args.spec}` to resume", file=sys.stderr)
        return exc.exit_code
    print("\n".join(summary_lines(outcome)))
    if args.report:
        _report_one(outcome.store, outcome.sweep_id, args.report)
    return 1 if outcome.failed else 0


def _report_one(store: str, sweep_id: str, out: str, force: bool = False) -> None:
    from orchestrator.report_output import report_one

    report_one(store, sweep_id, out, force=force)


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.report_output import report_command

    sweeps = list(dict.fromkeys([*args.sweep, *(args.compare or [])]))
    return report_command(_store_of(args), sweeps, args.output, force=args.force)


def cmd_query(args: argparse.Namespace) -> int:
    from orchestrator.query import run_query

    print(run_query(_store_of(args), args.sql, fmt=args.format))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.status import sweep_status

    print(sweep_status(_store_of(args), args.sweep, as_json=args.json, wide=args.wide))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from orchestrator.reporting import fit_table

    print(fit_table(_store_of(args), args.sweep, as_json=args.json, wide=args.wide))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from orchestrator.reporting import export_curve

    text = export_curve(_store_of(args), args.sweep, args.lineage, args.branch)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from orchestrator.store import ResultsStore, StoreError

    store = ResultsStore(_store_of(args))
    if not store.check_version():
        raise StoreError(f"results store {store.root!r} is empty: no sweep has written results yet")
    known = store.sweep_ids()
    if args.sweep not in known:
        raise StoreError(f"sweep_id {args.sweep!r} is not in results store {store.root!r}; "
                         f"sweeps there: {', '.join(known)}")
    merged = store.compact(args.sweep)
    print(f"compacted {args.sweep}: " + ", ".join(f"{n} {table} fragments" for table, n in merged.items()))
    return 0


def cmd_trial(args: argparse.Namespace) -> int:
    from trials.__main__ import load_lineage_file, run_and_write
    from trials.errors import ConfigError

    if args.lineage:
        from orchestrator.planner import plan
        from orchestrator.spec import load_spec

        matches = [lin for lin in plan(load_spec(args.spec)).lineages if lin.lineage_id.startswith(args.lineage)]
        if len(matches) != 1:
            raise ConfigError("--lineage", args.lineage,
                              f"the id (or a unique prefix) of one planned lineage ({len(matches)} match; see `lrsweep plan`)")
        spec = matches[0]
    else:
        spec = load_lineage_file(args.spec)
    summary = run_and_write(spec, args.output, checkpoint_dir=args.checkpoint_dir, threads=args.threads)
    print(f"lineage {spec.lineage_id} {summary['status']}: {summary['rows']} curve rows "
          f"in {summary['wall_time_s']:.1f} s -> {summary['path']}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from orchestrator.data_prepare import run_prepare

    return run_prepare(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    from orchestrator.store.migrate import migrate_store

    report = migrate_store(_store_of(args))
    print(report)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from orchestrator.jobs import job_status, submit

    job_id = submit(args.spec, address=args.address, store=args.store, wait=args.wait,
                    shared_store=args.shared_store, token_file=args.token_file)
    if not args.wait:
        print(job_id)
        return 0
    status = job_status(job_id, address=args.address, token_file=args.token_file)
    print(f"{job_id} {status}")
    return 0 if status == "SUCCEEDED" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    import datetime as dt

    from orchestrator.jobs import list_jobs

    jobs = list_jobs(address=args.address, token_file=args.token_file)
    if args.json:
        print(json.dumps(jobs, indent=2, default=str))
        return 0

    def when(ms: int | None) -> str:
        return "-" if not ms else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    rows = [("job", "status", "sweep file", "started (UTC)", "ended (UTC)")]
    rows += [(j["job_id"], j["status"], j["sweep_file"], when(j["start_time"]), when(j["end_time"])) for j in jobs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from orchestrator.jobs import follow_logs, job_logs

    if args.follow:
        status = follow_logs(args.job_id, address=args.address, token_file=args.token_file)
        return 0 if status == "SUCCEEDED" else 1
    sys.stdout.write(job_logs(args.job_id, address=args.address, token_file=args.token_file))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from orchestrator.jobs import stop_job

    print(stop_job(args.job_id, address=args.address, token_file=args.token_file))
    return 0


# ---------------------------------------------------------------------------------- parser
_SPEC_HELP = "the sweep file (.toml, .yaml or .yml)"
_STORE_HELP = "results store (path or URI); default: ./lrsweep-results"
_SWEEP_HELP = "the sweep's id (its `name`; see `lrsweep status`)"
_WIDE_HELP = "every column, however wide (the default table fits 100 columns)"
_DASHBOARD_HELP = "Ray dashboard address, e.g. http://127.0.0.1:8265"
_JOB_HELP = "the job id `lrsweep submit` printed (see `lrsweep jobs`)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lrsweep")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lrsweep", description="Plan, run and analyse LR-schedule sweeps.")
    p.add_argument("--version", action="version", version=f"lrsweep {_version()}",
                   help="print lrsweep's version and exit")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("plan", cmd_plan, "Show the lineages a sweep file needs, what its store already holds and "
                               "what `run` would train (no training).")
    sp.add_argument("spec", help=_SPEC_HELP)
    sp.add_argument("--json", action="store_true", help="print the plan as JSON")
    sp.add_argument("--wide", action="store_true", help=_WIDE_HELP)
    sp.add_argument("--store", help="results store to plan against; default: the spec's `store`")

    sp = add("run", cmd_run, "Run (or resume) a sweep on Ray Tune: embedded local Ray unless --address.")
    sp.add_argument("spec", help=_SPEC_HELP)
    sp.add_argument("--store", help="results store (path or URI); default: the spec's `store`")
    sp.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded local Ray)")
    sp.add_argument("--force", action="store_true", help="delete stored results the edited spec invalidates")
    sp.add_argument("--report", metavar="HTML", help="write the HTML report when the sweep finishes")
    sp.add_argument("-q", "--quiet", action="store_true", help="no live progress display")
    sp.add_argument("--init-store-in-nonempty-dir", action="store_true",
                    help="make the store in an existing non-empty folder that holds no store (refused otherwise)")

    sp = add("submit", cmd_submit, "Submit `lrsweep run SPEC` to a Ray cluster as a Ray Job.")
    sp.add_argument("spec", help=_SPEC_HELP)
    sp.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://127.0.0.1:8265")
    sp.add_argument("--store", help="results store as seen from the cluster (default: the spec's `store`, "
                                    "relative to the spec file; else ./lrsweep-results)")
    sp.add_argument("--shared-store", action="store_true",
                    help="the store is a local path mounted at the same path on every node of the cluster")
    sp.add_argument("--wait", action="store_true", help="wait for the job to finish")

    sp = add("jobs", cmd_jobs, "List the sweeps submitted to a Ray cluster.")
    sp.add_argument("--address", required=True, help=_DASHBOARD_HELP)
    sp.add_argument("--json", action="store_true", help="print the jobs as JSON")

    sp = add("logs", cmd_logs, "Print a submitted job's logs.")
    sp.add_argument("job_id", help=_JOB_HELP)
    sp.add_argument("--address", required=True, help=_DASHBOARD_HELP)
    sp.add_argument("-f", "--follow", action="store_true", help="stream the logs until the job ends")

    sp = add("stop", cmd_stop, "Stop a submitted job.")
    sp.add_argument("job_id", help=_JOB_HELP)
    sp.add_argument("--address", required=True, help=_DASHBOARD_HELP)

    for sub_name in ("submit", "jobs", "logs", "stop"):  # the cluster's token, never this machine's own
        sub.choices[sub_name].add_argument(
            "--token-file", help="a file holding the cluster's token (default: RAY_AUTH_TOKEN; lrsweep never "
                                 "sends this machine's own ~/.ray/auth_token)")

    for name, fn, help_ in (("status", cmd_status, "Summarise the sweeps in a store (or one sweep)."),):
        sp = add(name, fn, help_)
        sp.add_argument("sweep", nargs="?", help="one sweep's id (default: every sweep in the store)")
        sp.add_argument("--store", help=_STORE_HELP)
        sp.add_argument("--json", action="store_true", help="print the summaries as JSON (every column)")
        sp.add_argument("--wide", action="store_true", help=_WIDE_HELP)

    sp = add("query", cmd_query, "Run one read-only SQL statement over the store: views `final_losses`, `curves`, `lineages`, `curve_rows`, `runs`, `settings`, `sweeps`.")
    sp.add_argument("sql", help="one read-only SQL statement (DuckDB dialect), quoted")
    sp.add_argument("--store", help=_STORE_HELP)
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table",
                    help="output format (default: table)")

    sp = add("fit", cmd_fit, "Fit scaling laws per schedule and print them.")
    sp.add_argument("sweep", help=_SWEEP_HELP)
    sp.add_argument("--store", help=_STORE_HELP)
    sp.add_argument("--json", action="store_true", help="print the fits and warnings as JSON")
    sp.add_argument("--wide", action="store_true", help=_WIDE_HELP)

    sp = add("report", cmd_report,
             "Write the self-contained HTML report of a sweep; of several sweeps side by side.")
    sp.add_argument("sweep", nargs="+", help="one sweep, or several to compare side by side")
    sp.add_argument("--compare", metavar="SWEEP", action="append",
                    help="another sweep to put side by side with the first (repeatable)")
    sp.add_argument("-o", "--output", default="report.html",
                    help="the HTML file to write (default: report.html); an existing file lrsweep "
                         "did not write is refused unless --force")
    sp.add_argument("--force", action="store_true",
                    help="overwrite --output even if lrsweep did not write it")
    sp.add_argument("--store", help=_STORE_HELP)

    sp = add("export", cmd_export, "Export one lineage branch's curve as step,lr,loss CSV.")
    sp.add_argument("sweep", help=_SWEEP_HELP)
    sp.add_argument("lineage", help="lineage id (or a unique prefix; see `lrsweep query \"SELECT * FROM lineages\"`)")
    sp.add_argument("--branch", default=None, help="branch, e.g. h=800 (default: the trunk)")
    sp.add_argument("--store", help=_STORE_HELP)
    sp.add_argument("-o", "--output", help="CSV file to write (default: standard output)")

    sp = add("compact", cmd_compact, "Merge a sweep's small curve fragments.")
    sp.add_argument("sweep", help=_SWEEP_HELP)
    sp.add_argument("--store", help=_STORE_HELP)

    sp = add("trial", cmd_trial, "Run one lineage with no Ray (a lineage TOML, or a sweep file + --lineage).")
    sp.add_argument("spec", help="a lineage TOML, or a sweep file with --lineage")
    sp.add_argument("--lineage", help="lineage id (or unique prefix) when SPEC is a sweep file")
    sp.add_argument("-o", "--output", default="curve.csv", help="curve output (.csv or .parquet)")
    sp.add_argument("--checkpoint-dir", help="keep rows and checkpoints here and resume from them")
    sp.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest on a busy machine)")

    sp = add("data", cmd_data, "Prepare token shards for the llama workload (docs/data.md).")
    from orchestrator.data_prepare import add_prepare_arguments
    add_prepare_arguments(sp.add_subparsers(dest="data_command", required=True).add_parser(
        "prepare", help="tokenize text into train/val shards and a manifest", description="Tokenize text files, "
        "folders or globs with a BPE trained here (or a tokenizer.json) into token shards and manifest.json."))

    sp = add("migrate", cmd_migrate, "Migrate a results store written by an older lrsweep to this schema version.")
    sp.add_argument("--store", help=_STORE_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trials.errors import LrsweepError, one_line

    try:
        return int(args.fn(args) or 0)
    except (LrsweepError, *_OS_ERRORS) as exc:
        print(f"lrsweep: error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("lrsweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
