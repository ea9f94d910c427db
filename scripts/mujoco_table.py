"""The sweep of the MuJoCo results (paper Figure 3, docs/mujoco.md), run and printed by scripts/sweep.py.

    python scripts/sweep.py mujoco --dry-run                      # what is missing
    python scripts/sweep.py mujoco --rows SQIL-logprob-action --jobs 2
    python scripts/sweep.py mujoco --report-only --env-id Humanoid-v5   # docs/mujoco.md has a table per environment

A run directory is named <row>__<env>__<N>demos__<seed>; SQIL rows read the deterministic
evaluations that sqil_sac_continuous.py prints every --eval-frequency steps, BC rows the final
evaluations that bc.py prints (rows BC and BC-<variant>). The report shows every such folder in
results/mujoco/, also the exploratory runs that ROWS does not list (their logs hold their commands).
SQIL runs save a checkpoint every 10,000 steps: a sweep stopped in the middle continues them.
"""

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from sweep import Run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "mujoco"
SAC = ["--no-autotune", "--alpha", "0.2", "--eval-frequency", "10000", "--checkpoint-frequency", "10000"]
SAC += ["--no-checkpoint-buffer", "--no-cuda"]
HUMANOID = ["--demo-path", str(ROOT / "demos" / "Humanoid-v5.npz"), "--lambda-samp", "0.25"]  # sampled actions
# row -> (script, flags, {env: {demonstrations: env steps (SQIL) or None (BC)}}); the headline rows of docs/mujoco.md
ROWS = {
    "SQIL-alpha0.2": ("sqil_sac_continuous.py", SAC, {"HalfCheetah-v5": {25: 120_000, 5: 120_000, 1: 120_000}}),
    "SQIL-alpha0.2-stochdemos-lambda0.25": (
        "sqil_sac_continuous.py",
        [*SAC, *HUMANOID],
        {"Humanoid-v5": {25: 120_000, 5: 100_000, 1: 100_000}},
    ),
    # the same runs with CleanRL's log-probability convention (docs/mujoco.md, "Which log-probability")
    "SQIL-logprob-action": (
        "sqil_sac_continuous.py",
        [*SAC, *HUMANOID, "--log-prob-space", "action"],
        {"Humanoid-v5": {25: 120_000, 5: 100_000}},
    ),
    "BC": ("bc.py", ["--no-cuda"], {"HalfCheetah-v5": {25: None, 5: None, 1: None}}),
    "BC-stochdemos": ("bc.py", ["--no-cuda", *HUMANOID[:2]], {"Humanoid-v5": {25: None, 5: None, 1: None}}),
}


def runs(args: argparse.Namespace) -> list[Run]:
    found = []
    for row, (script, flags, envs) in ROWS.items():
        for env, budgets in envs.items():
            if (args.rows and row not in args.rows) or (args.env_id and env != args.env_id):
                continue
            for demos, steps in budgets.items():
                for seed in args.seeds:
                    command = ["--env-id", env, "--num-demos", str(demos), *flags, "--seed", str(seed)]
                    command += ["--total-timesteps", str(steps)] if steps else []
                    name = f"{row}__{env}__{demos}demos__{seed}"
                    found.append(Run(name, script, tuple(command), resumable=script == "sqil_sac_continuous.py"))
    return found


def done(folder: Path) -> bool:
    """results.json, or for runs logged before the sweep runner kept it, the final evaluation in the log."""
    log = folder / "log.txt"
    return (folder / "results.json").exists() or (log.exists() and "final deterministic evaluation" in log.read_text())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-id", help="only this environment's runs")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="only these rows (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])


def run_logs(results: Path, env_id: str | None):
    """{(row, env, demos): {seed: log text}}"""
    found = defaultdict(dict)
    for log in sorted(results.glob("*__*demos__*/log.txt")):  # not the experts' runs (SAC-expert__<env>__<seed>)
        row, env, demos, seed = log.parent.name.split("__")
        if env_id and env != env_id:
            continue
        found[(row, env, int(demos.removesuffix("demos")))][int(seed)] = log.read_text()
    return found


def fmt(values) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{np.mean(values):,.0f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):,.0f}"


def report(args: argparse.Namespace) -> None:
    found = run_logs(args.results, args.env_id)
    print("| row | demos | seeds | final deterministic / stochastic return (100 episodes) |\n|---|---|---|---|")
    for (row, env, demos), logs in sorted(found.items()):
        if not row.startswith("BC"):
            continue
        logs = {seed: text for seed, text in logs.items() if "final stochastic evaluation" in text}  # finished runs
        if not logs:
            continue
        finals = {
            kind: [
                float(re.search(rf"final {kind} evaluation .*: return ([-\d.]+)", t).group(1)) for t in logs.values()
            ]
            for kind in ("deterministic", "stochastic")
        }
        per_seed = ", ".join(f"{d:,.0f}" for d in finals["deterministic"])
        print(
            f"| {row} {env} | {demos} | {len(logs)} ({per_seed}) | {fmt(finals['deterministic'])} / {fmt(finals['stochastic'])} |"
        )
    print()
    curves = {}  # (row, env, demos) -> {seed: {step: return}}
    for (row, env, demos), logs in sorted(found.items(), key=lambda item: (item[0][1], -item[0][2], item[0][0])):
        if not row.startswith("BC"):  # BC, or BC-<variant>
            pattern = r"step (\d+): deterministic evaluation return ([-\d.]+)"
            curves[(row, env, demos)] = {
                seed: {int(step): float(value) for step, value in re.findall(pattern, text)}
                for seed, text in sorted(logs.items())
            }
    steps = sorted(set().union(*(curve for runs in curves.values() for curve in runs.values())))
    names = [
        f"{row} {env}, {demos} demos (seeds {', '.join(map(str, runs))})" for (row, env, demos), runs in curves.items()
    ]
    print("| steps | " + " | ".join(names) + " |\n|---" + "|---" * len(names) + "|")
    for step in steps:
        cells = []
        for runs in curves.values():
            values = [curve.get(step) for curve in runs.values()]
            present = [v for v in values if v is not None]
            text = " / ".join("-" if v is None else f"{v:,.0f}" for v in values) if present else ""
            if len(present) == len(values) > 1:
                text += f" (**{fmt(present)}**)"
            cells.append(text)
        print(f"| {step // 1000}k | " + " | ".join(cells) + " |")
