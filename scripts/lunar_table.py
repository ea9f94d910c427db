"""Runs (or resumes) the LunarLander table of paper Figure 4 and prints it as Markdown.

    python scripts/lunar_table.py --seeds 1 2 3 --steps 200000 --jobs 2      # run what is missing
    python scripts/lunar_table.py --seeds 1 2 3 --steps 200000 --report-only  # just the table

Each (row, start state, seed) is one run of `rbc_lunar.py` (or of `bc.py` / `gail_dqn.py` for the
baseline rows) whose results.json lands in
`results/lunar/<row>__<start>__<seed>/`; a run whose results exist is skipped, so the table can be
filled across sessions. The Random row plays the uniform policy (no training).
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROWS = {  # row name -> rbc_lunar.py flags; the paper's numbers (shifted start, default start)
    "BC": (["--loss", "rbc", "--rbc-lambda", "0"], (0.07, 0.93)),
    "SQIL": (["--loss", "sqil"], (0.89, 0.88)),
    "SQIL lambda_samp=0": (["--loss", "sqil", "--lambda-samp", "0"], (0.12, 0.87)),
    "SQIL gamma=0": (["--loss", "sqil", "--gamma", "0"], (0.41, 0.84)),
    "SQIL pi=Unif": (["--loss", "sqil", "--rollout-policy", "uniform"], (0.47, 0.82)),
    "RBC": (["--loss", "rbc"], (0.66, 0.89)),
}
# The same rows with a learned absorbing state, alpha = 0.1 and lambda_samp = 1 (README, "LunarLander"):
# the only setting found so far in which SQIL lands. Chosen on the default start, seed 1.
TUNED = ["--absorbing", "learned", "--alpha", "0.1", "--lambda-samp", "1"]
ROWS.update(
    {
        "SQIL*": (["--loss", "sqil", *TUNED], (0.89, 0.88)),
        "SQIL* lambda_samp=0": (["--loss", "sqil", *TUNED, "--lambda-samp", "0"], (0.12, 0.87)),
        "SQIL* gamma=0": (["--loss", "sqil", *TUNED, "--gamma", "0"], (0.41, 0.84)),
        "SQIL* pi=Unif": (["--loss", "sqil", *TUNED, "--rollout-policy", "uniform"], (0.47, 0.82)),
        "RBC*": (["--loss", "rbc", "--absorbing", "learned", "--alpha", "0.1"], (0.66, 0.89)),
    }
)
# Baselines from their own files (issue: baselines): BC trains on the demonstrations only and is
# evaluated from the given start; it has no training episodes, so only its final evaluation is shown.
# GAIL-DQL rows: the paper's LunarLander rows are GAIL-TRPO (-U 0.67 / 0.93, -B 0.98 / 0.95). alpha = 0.1
# was chosen on the default start, seed 1, from alpha in {1, 0.1} (results/lunar_tuning/).
ROWS["BC (bc.py)"] = ([], (0.07, 0.93))
ROWS["GAIL-DQL-U"] = (["--reward-variant", "unbiased", "--alpha", "0.1"], (0.67, 0.93))
ROWS["GAIL-DQL-B"] = (["--reward-variant", "biased", "--alpha", "0.1"], (0.98, 0.95))
# A third try for the unbiased variant, the reward log D - log(1 - D) (same protocol: default start, seed 1).
ROWS["GAIL-DQL-U logit"] = (
    ["--reward-variant", "unbiased", "--alpha", "0.1", "--reward-formula", "logit"],
    (0.67, 0.93),
)
SCRIPTS = {"BC (bc.py)": "bc.py"} | {
    row: "gail_dqn.py" for row in ROWS if row.startswith("GAIL")
}  # others: rbc_lunar.py
PAPER_RANDOM = (0.10, 0.04)


def run_dir(row: str, start: str, seed: int, steps: int) -> Path:
    return (
        ROOT
        / "results"
        / "lunar"
        / f"{row.replace(' ', '_').replace('=', '').replace('*', '-star').replace('(', '').replace(')', '')}__{start}__{steps}__{seed}"
    )


def run(row: str, start: str, seed: int, steps: int) -> None:
    out = run_dir(row, start, seed, steps)
    if (out / "results.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    flags = [*ROWS[row][0], "--start-state", start, "--seed", str(seed), "--total-gradient-steps", str(steps)]
    with open(out / "log.txt", "w") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per run; runs go in parallel
        command = [sys.executable, str(ROOT / SCRIPTS.get(row, "rbc_lunar.py")), *flags]
        subprocess.run(command, cwd=out, stdout=log, stderr=log, check=True, env=env)
    (produced,) = out.glob("runs/*/results.json")
    produced.rename(out / "results.json")


def random_policy_success(start: str, episodes: int = 1000) -> float:
    sys.path.insert(0, str(ROOT))
    import rbc_lunar

    env = rbc_lunar.make_env("LunarLander-v3", start, seed=0)
    successes = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            done = terminated or truncated
        successes.append(rbc_lunar.landing_success(env, obs, terminated))
    return float(np.mean(successes))


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    stderr = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{np.mean(values):.2f} ± {stderr:.2f} (n={len(values)})"


def report(seeds: list[int], steps: int) -> None:
    print(
        "| row | shifted: best of 100 training eps | shifted: final greedy eval | paper shifted "
        "| default: best of 100 training eps | default: final greedy eval | paper default |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| Random | {random_policy_success('shifted'):.2f} (1000 eps) | same | {PAPER_RANDOM[0]} "
        f"| {random_policy_success('demo'):.2f} (1000 eps) | same | {PAPER_RANDOM[1]} |"
    )
    for row, (_, paper) in ROWS.items():
        cells = []
        for start, paper_value in (("shifted", paper[0]), ("demo", paper[1])):
            results = [
                json.loads((run_dir(row, start, s, steps) / "results.json").read_text())
                for s in seeds
                if (run_dir(row, start, s, steps) / "results.json").exists()
            ]
            cells += [
                cell([r["best_training_success"] for r in results if "best_training_success" in r]),
                cell([r.get("final_greedy_success", r.get("final_deterministic_success")) for r in results]),
                str(paper_value),
            ]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=100_000, help="gradient steps per run")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--starts", nargs="+", default=["shifted", "demo"], choices=["shifted", "demo"])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one CPU core each)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        jobs = [(row, start, seed, args.steps) for seed in args.seeds for row in args.rows for start in args.starts]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run(*job), jobs))
    report(args.seeds, args.steps)
