"""Runs a paper table's sweep, on local processes or as a Slurm job array, then prints the table.

    python scripts/sweep.py lunar --jobs 2                          # run what is missing, two at a time
    python scripts/sweep.py lunar --rows SQIL BC --seeds 4 5 --starts shifted
    python scripts/sweep.py lunar --report-only                     # just the table, from the logs
    python scripts/sweep.py lunar --slurm-partition cpu --slurm-time 60   # one Slurm array job per run
    python scripts/sweep.py my_sweep.py --jobs 2                    # a sweep of your own (below)

A sweep is a list of runs, each a script at the repository root, its flags and the folder (under the
sweep's results folder) that keeps its `log.txt` and `results.json`. A run whose folder holds
`results.json` is done and skipped, so a sweep fills in across sessions and machines: start it again
and it runs what is missing. A run of a script that saves checkpoints (`Run(resumable=True)`) and was
stopped continues from its last one with `--resume`; any other run that stopped starts afresh, and the
log of its earlier attempt is kept as `log.1.txt` (`log.2.txt`, ...).

The sweeps of this repository's tables are the files named in SWEEPS. Each defines `RESULTS` (its
default results folder), `add_arguments(parser)` (its filters: rows, seeds, steps, ...), `runs(args)`
(the list of `Run`) and `report(args)` (prints the table from `args.results`); it may define
`done(folder)` for runs logged before this runner kept `results.json`. Any file with those names is
a sweep too.

Slurm goes through submitit (`pip install submitit`): `--slurm-partition` submits one job array, one
task per missing run, with `--slurm-time` minutes, `--slurm-cpus` cores and `--slurm-gpus` GPUs per
task, then waits for it and prints the table (`--no-wait`: submit and exit; `--report-only` later).
`--submitit-cluster local` or `debug` runs the same array through submitit on this machine (the
tests use `debug`, which needs no cluster).
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.modules.setdefault(
    "sweep", sys.modules[__name__]
)  # sweep files `from sweep import Run`: this module, even as __main__
SWEEPS = {  # name -> the file that defines it
    "lunar": ROOT / "scripts" / "lunar_table.py",  # paper Figure 4, docs/lunar_lander.md
    "lunar_diagnosis": ROOT / "scripts" / "lunar_diagnosis.py",  # docs/lunar_lander.md, "Which factors matter"
    "car_racing": ROOT / "scripts" / "car_racing_table.py",  # paper Figures 1 and 5, docs/car_racing.md
    "mujoco": ROOT / "scripts" / "mujoco_table.py",  # paper Figure 3, docs/mujoco.md
    "atari": ROOT / "scripts" / "atari_table.py",  # paper Figure 2, docs/atari.md
}


@dataclass(frozen=True)
class Run:
    name: str  # its folder under the sweep's results folder
    script: str  # relative to the repository root
    flags: tuple[str, ...]
    resumable: bool = False  # the script writes checkpoints/*.pt in its folder and continues one with --resume


# glibc gives a freed block of over 128 KiB (a batch's activations) back to the system and page-faults it in again at
# the next update: about a fifth of an Atari run's time on a CPU (docs/benchmarks.md). These keep it; a variable the user
# set wins, and other allocators ignore them.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def run_one(run: Run, results: Path, threads: int = 1) -> str:
    """Runs `run` in `results / run.name` unless it is done there; returns what happened, in a few words.
    The script starts in that folder, so its runs/ (TensorBoard) and checkpoints/ land beside the log."""
    out = results / run.name
    if (out / "results.json").exists():
        return "done before"
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = sorted((out / "checkpoints").glob("*.pt"), key=os.path.getmtime) if run.resumable else []
    flags = [*run.flags, "--resume", str(checkpoints[-1])] if checkpoints else list(run.flags)
    if (out / "log.txt").exists() and not checkpoints:  # an earlier attempt that cannot go on: keep its log
        earlier = next(out / f"log.{n}.txt" for n in range(1, 10_000) if not (out / f"log.{n}.txt").exists())
        (out / "log.txt").rename(earlier)
        print(f"{run.name}: starting afresh; the earlier attempt's log is kept as {earlier.name}", flush=True)
    with open(out / "log.txt", "a") as log:  # a resumed run's log goes on
        log.write(f"# python {' '.join([run.script, *flags])}  (started {time.ctime()}, {threads} thread(s))\n")
        log.flush()
        env = {**KEEP_FREED_MEMORY, **os.environ, "OMP_NUM_THREADS": str(threads)}  # one core per run, side by side
        code = subprocess.run(
            [sys.executable, str(ROOT / run.script), *flags], cwd=out, stdout=log, stderr=log, env=env
        ).returncode
    if code != 0:
        raise RuntimeError(f"{run.name} stopped with exit status {code}; its log is {out / 'log.txt'}")
    produced = sorted((out / "runs").glob("*/results.json"), key=os.path.getmtime)
    if not produced:
        raise RuntimeError(f"{run.name} wrote no runs/*/results.json; its log is {out / 'log.txt'}")
    produced[-1].rename(out / "results.json")
    return "resumed and finished" if checkpoints else "finished"


def load_sweep(name: str) -> ModuleType:
    path = SWEEPS.get(name) or Path(name)
    if not path.is_file():
        sys.exit(f"error: no sweep {name!r}: name one of {', '.join(SWEEPS)} or a sweep file.")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    missing = [item for item in ("RESULTS", "add_arguments", "runs", "report") if not hasattr(module, item)]
    if missing:
        sys.exit(f"error: {path} is not a sweep: it defines no {', '.join(missing)}.")
    return module


def run_local(runs: list[Run], results: Path, jobs: int) -> list[str]:
    """Runs on this machine, `jobs` at a time; one that fails leaves the others running."""

    def attempt(run: Run) -> str:
        try:
            outcome = run_one(run, results)
        except RuntimeError as error:
            return f"failed: {error}"
        print(f"{run.name}: {outcome}", flush=True)
        return outcome

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(attempt, runs))


def run_submitit(runs: list[Run], results: Path, args: argparse.Namespace) -> list[str]:
    """One job array, one task per run, through submitit (Slurm, or its local and debug executors)."""
    try:
        import submitit
    except ImportError:
        sys.exit("error: --slurm-partition and --submitit-cluster need submitit: pip install submitit")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules["sweep"])  # the tasks need not import this file
    executor = submitit.AutoExecutor(folder=results / "submitit" / "%j", cluster=args.submitit_cluster)
    executor.update_parameters(
        name=f"sweep-{results.name}",
        timeout_min=args.slurm_time,
        cpus_per_task=args.slurm_cpus,
        gpus_per_node=args.slurm_gpus,
        slurm_partition=args.slurm_partition,
        slurm_array_parallelism=args.slurm_array_parallelism,
    )
    jobs = executor.map_array(run_one, runs, [results] * len(runs), [args.slurm_cpus] * len(runs))
    print(f"submitted {len(jobs)} runs as job array {jobs[0].job_id.split('_')[0]}" if jobs else "nothing to submit")
    if args.no_wait:
        return []
    outcomes = []
    for run, job in zip(runs, jobs):
        try:
            outcomes.append(job.result())
        except Exception as error:  # the task's own error, re-raised by submitit
            outcomes.append(f"failed: {error}")
        print(f"{run.name}: {outcomes[-1]}", flush=True)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("sweep", nargs="?")
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help=f"{', '.join(SWEEPS)}, or a sweep file")
    parser.add_argument("--results", type=Path, help="the folder of the runs (default: the sweep's RESULTS)")
    parser.add_argument("--report-only", action="store_true", help="print the table; run nothing")
    parser.add_argument("--dry-run", action="store_true", help="list the runs that are missing; run nothing")
    parser.add_argument("--jobs", type=int, default=2, help="local runs at once, one CPU core each")
    slurm = parser.add_argument_group("Slurm (through submitit)")
    slurm.add_argument("--slurm-partition", help="submit the missing runs as one job array to this partition")
    slurm.add_argument("--slurm-time", type=int, default=180, help="minutes per run")
    slurm.add_argument("--slurm-cpus", type=int, default=1, help="CPU cores per run (also its torch threads)")
    slurm.add_argument("--slurm-gpus", type=int, default=0, help="GPUs per run")
    slurm.add_argument("--slurm-array-parallelism", type=int, default=64, help="runs of the array at once")
    slurm.add_argument("--no-wait", action="store_true", help="submit and exit; print the table later")
    slurm.add_argument(
        "--submitit-cluster",
        choices=["slurm", "local", "debug"],
        help="submitit's executor (default: slurm with --slurm-partition); local and debug run here",
    )
    module = load_sweep(known.sweep) if known.sweep else None
    if module:
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    args.results = args.results or module.RESULTS
    if args.slurm_partition and not args.submitit_cluster:
        args.submitit_cluster = "slurm"
    if not args.report_only:
        done = getattr(module, "done", lambda out: (out / "results.json").exists())
        missing = [run for run in module.runs(args) if not done(args.results / run.name)]
        print(f"{len(missing)} runs to do in {args.results}", flush=True)
        if args.dry_run:
            for run in missing:
                print(f"{run.name}: python {' '.join([run.script, *run.flags])}")
            return 0
        if args.submitit_cluster:
            outcomes = run_submitit(missing, args.results, args)
            if args.no_wait:
                return 0
        else:
            outcomes = run_local(missing, args.results, args.jobs)
        failed = [outcome for outcome in outcomes if outcome.startswith("failed")]
        for outcome in failed:
            print(outcome, file=sys.stderr)
    module.report(args)
    return 1 if not args.report_only and failed else 0


if __name__ == "__main__":
    sys.exit(main())
