"""scripts/sweep.py: local runs, the submitit path (debug executor, no cluster), resuming, failures, and the
repository's table sweeps."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import sweep  # noqa: E402

# A sweep of two short rbc_lunar.py runs; its report prints each run's env steps from results.json.
LUNAR_SWEEP = """
import json
from pathlib import Path
from sweep import Run

RESULTS = Path({results!r})

def add_arguments(parser):
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])

def runs(args):
    flags = ("--total-gradient-steps", "200", "--eval-frequency", "100", "--eval-episodes", "1", "--final-eval-episodes", "1")
    return [Run(f"lunar__{{seed}}", "rbc_lunar.py", (*flags, "--seed", str(seed))) for seed in args.seeds]

def report(args):
    for seed in args.seeds:
        path = args.results / f"lunar__{{seed}}" / "results.json"
        print(f"| seed {{seed}} | env steps", json.loads(path.read_text())["env_steps"] if path.exists() else "-", "|")
"""

# A stand-in for a training script that checkpoints: the first call saves a checkpoint and "is killed"
# (exit 1), a call with --resume finishes and says where it resumed from; --fail always fails.
CHECKPOINTING_SCRIPT = """
import json, sys
from pathlib import Path
if "--fail" in sys.argv:
    sys.exit(3)
if "--resume" not in sys.argv:
    Path("checkpoints").mkdir(exist_ok=True)
    Path("checkpoints/run.pt").write_text("step 100")
    print("checkpoint saved; killed")
    sys.exit(1)
resumed = sys.argv[sys.argv.index("--resume") + 1]
Path("runs/run").mkdir(parents=True)
Path("runs/run/results.json").write_text(json.dumps({"resumed_from": resumed, "state": Path(resumed).read_text()}))
"""

FAKE_SWEEP = """
from pathlib import Path
from sweep import Run

RESULTS = Path({results!r})

def add_arguments(parser):
    pass

def runs(args):
    return [Run("resumable", {script!r}, (), resumable=True), Run("broken", {script!r}, ("--fail",))]

def report(args):
    print("report printed")
"""


def run_sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "scripts" / "sweep.py"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_local_sweep_runs_what_is_missing_once_and_prints_its_table(tmp_path):
    (tmp_path / "tiny.py").write_text(LUNAR_SWEEP.format(results=str(tmp_path / "results")))
    first = run_sweep("tiny.py", "--jobs", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "2 runs to do" in first.stdout
    for seed in (1, 2):
        results = json.loads((tmp_path / "results" / f"lunar__{seed}" / "results.json").read_text())
        assert results["args"]["seed"] == seed and results["args"]["total_gradient_steps"] == 200
        assert f"| seed {seed} | env steps {results['env_steps']} |" in first.stdout
        log = (tmp_path / "results" / f"lunar__{seed}" / "log.txt").read_text()
        assert log.startswith("# python rbc_lunar.py --total-gradient-steps 200") and "final greedy evaluation" in log
    logged = (tmp_path / "results" / "lunar__1" / "log.txt").stat().st_mtime_ns
    again = run_sweep("tiny.py", "--seeds", "1", cwd=tmp_path)
    assert again.returncode == 0 and "0 runs to do" in again.stdout
    assert (tmp_path / "results" / "lunar__1" / "log.txt").stat().st_mtime_ns == logged  # not run again


def test_the_slurm_path_submits_one_job_array_through_submitit(tmp_path):
    pytest.importorskip("submitit")
    (tmp_path / "tiny.py").write_text(LUNAR_SWEEP.format(results=str(tmp_path / "results")))
    # The debug executor runs the array's tasks in this process: the same code path as Slurm up to sbatch.
    flags = ("--slurm-partition", "cpu", "--slurm-time", "10", "--slurm-cpus", "1", "--submitit-cluster", "debug")
    done = run_sweep("tiny.py", "--seeds", "3", *flags, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "submitted 1 runs as job array" in done.stdout and "lunar__3: finished" in done.stdout
    assert json.loads((tmp_path / "results" / "lunar__3" / "results.json").read_text())["args"]["seed"] == 3
    assert list((tmp_path / "results" / "submitit").iterdir())  # submitit's own job folder


def test_the_lunar_sweep_submits_its_missing_runs_as_one_job_array(tmp_path):
    """The repository's own LunarLander sweep through submitit (debug executor, --no-wait: built and
    submitted, not run; its runs take minutes)."""
    pytest.importorskip("submitit")
    flags = ("--rows", "SQIL", "BC", "--demos", "scripted", "--starts", "shifted", "--seeds", "9")
    flags += ("--results", str(tmp_path / "results"), "--slurm-partition", "cpu", "--submitit-cluster", "debug")
    done = run_sweep("lunar", *flags, "--no-wait", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 runs to do" in done.stdout and "submitted 2 runs as job array" in done.stdout
    assert not list((tmp_path / "results").glob("*/results.json"))  # submitted only


def test_a_stopped_run_resumes_from_its_checkpoint_and_a_failed_run_is_named(tmp_path):
    script = tmp_path / "checkpointing.py"
    script.write_text(CHECKPOINTING_SCRIPT)
    (tmp_path / "fake.py").write_text(FAKE_SWEEP.format(results=str(tmp_path / "results"), script=str(script)))
    first = run_sweep("fake.py", cwd=tmp_path)
    assert first.returncode == 1
    assert (
        "resumable stopped with exit status 1" in first.stderr and "broken stopped with exit status 3" in first.stderr
    )
    assert "report printed" in first.stdout  # the table of what finished, all the same
    second = run_sweep("fake.py", cwd=tmp_path)
    assert "resumable: resumed and finished" in second.stdout
    results = json.loads((tmp_path / "results" / "resumable" / "results.json").read_text())
    assert results == {
        "resumed_from": str(tmp_path / "results" / "resumable" / "checkpoints" / "run.pt"),
        "state": "step 100",
    }
    log = (tmp_path / "results" / "resumable" / "log.txt").read_text()
    assert "checkpoint saved; killed" in log and "--resume" in log  # the resumed run's log goes on
    assert second.returncode == 1 and "broken stopped with exit status 3" in second.stderr
    # the broken run, which left no checkpoint, started afresh; its first attempt's log is kept, not overwritten
    assert "broken: starting afresh; the earlier attempt's log is kept as log.1.txt" in second.stdout
    assert (tmp_path / "results" / "broken" / "log.1.txt").read_text().startswith("# python ")


def test_a_run_gets_one_thread_and_keeps_freed_memory_unless_the_user_said_otherwise(tmp_path, monkeypatch):
    script = tmp_path / "environment.py"
    script.write_text(
        "import json, os\nfrom pathlib import Path\nPath('runs/run').mkdir(parents=True)\n"
        "names = ('OMP_NUM_THREADS', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_')\n"
        "Path('runs/run/results.json').write_text(json.dumps({name: os.environ.get(name) for name in names}))\n"
    )
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")  # the user's own setting
    assert sweep.run_one(sweep.Run("env", str(script), ()), tmp_path / "results", threads=2) == "finished"
    seen = json.loads((tmp_path / "results" / "env" / "results.json").read_text())
    assert seen == {"OMP_NUM_THREADS": "2", "MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": "12345"}


def test_an_unknown_sweep_is_one_sentence(tmp_path):
    done = run_sweep("nonesuch", "--jobs", "2", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == "error: no sweep 'nonesuch': name one of lunar, lunar_diagnosis, car_racing, mujoco, atari or a sweep file."
    )


def default_args(name: str) -> tuple:
    module = sweep.load_sweep(name)
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    args = parser.parse_args([])
    args.results = module.RESULTS
    return module, args


@pytest.mark.parametrize("name", ["lunar", "lunar_diagnosis", "car_racing", "mujoco"])
def test_every_table_sweep_covers_its_committed_runs(name):
    """The sweeps that replaced the table scripts name their committed runs as before (so they are skipped),
    and each run's script exists."""
    module, args = default_args(name)
    if name == "lunar":
        args.seeds, args.steps = [1, 2, 3, 4, 5], 100_000
    if name == "car_racing":
        args.seeds = [1, 2, 3]
    runs = {run.name: run for run in module.runs(args)}
    assert all((ROOT / run.script).is_file() for run in runs.values())
    done = getattr(module, "done", lambda folder: (folder / "results.json").exists())
    table = {"lunar": "__100000__", "car_racing": "__2500__"}.get(name, "")  # the table's budget; others explore
    if name == "mujoco":  # the headline rows of docs/mujoco.md
        committed = [n for n in runs if not n.startswith("SQIL-logprob-action")]
    else:
        committed = [p.parent.name for p in module.RESULTS.glob(f"*{table}*/results.json")]
    assert committed and all(n in runs and done(module.RESULTS / n) for n in committed), set(committed) - set(runs)


def test_the_lunar_report_pairs_each_averaged_run_with_its_own_network(tmp_path, capsys):
    """The paired table: per row and start, the averaged policy's and the same runs' network's final success and
    their mean difference; runs without the unaveraged evaluation (GAIL-DQL, older logs) are left out."""
    module, args = default_args("lunar")
    args.results, args.seeds, args.steps = tmp_path, [1, 2], 100_000
    finals = {1: (0.8, 0.5), 2: (0.4, 0.6)}  # seed -> (averaged, network itself)
    for seed, (averaged, itself) in finals.items():
        folder = tmp_path / module.run_name("SQIL", "expert2", "shifted", seed, 100_000)
        folder.mkdir()
        result = {"final_greedy_success": averaged, "final_greedy_success_unaveraged": itself}
        (folder / "results.json").write_text(json.dumps(result))
    unpaired = tmp_path / module.run_name("GAIL-DQL-B", "expert2", "shifted", 1, 100_000)
    unpaired.mkdir()
    (unpaired / "results.json").write_text(json.dumps({"final_greedy_success": 0.9}))
    module.paired_averaging(args, "expert2")
    out = capsys.readouterr().out
    assert "| SQIL | shifted | 0.60 ± 0.20 (n=2) | 0.55 ± 0.05 (n=2) | +0.05 (1 of 2 up) |" in out
    assert "GAIL" not in out


def test_the_atari_sweep_keeps_the_agent_buffers_in_its_checkpoints_only_when_asked():
    """By default SQIL's and GAIL-DQL's checkpoints leave the agent buffer out (committable); --checkpoint-buffer
    keeps it, and changes no other flag."""
    module, args = default_args("atari")
    args.rows, args.seeds = ["SQIL-alpha0.1", "GAIL-DQL-B", "BC"], [2]
    default = {run.name: run.flags for run in module.runs(args)}
    args.checkpoint_buffer = True
    kept = {run.name: run.flags for run in module.runs(args)}
    for learner in ("SQIL-alpha0.1__PongNoFrameskip-v4__2", "GAIL-DQL-B__PongNoFrameskip-v4__2"):
        assert "--no-checkpoint-buffer" in default[learner] and "--no-checkpoint-buffer" not in kept[learner]
        assert [flag for flag in default[learner] if flag != "--no-checkpoint-buffer"] == list(kept[learner])
    assert default["BC__PongNoFrameskip-v4__2"] == kept["BC__PongNoFrameskip-v4__2"]
