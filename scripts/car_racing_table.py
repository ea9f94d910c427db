"""Runs (or resumes) the CarRacing table of paper Figure 1 (and Figure 5) and prints it as Markdown.

    python scripts/car_racing_table.py --seeds 1 --steps 2500 --eval-episodes 10 --jobs 2
    python scripts/car_racing_table.py --seeds 1 --steps 2500 --eval-episodes 10 --report-only

Each (row, start state, seed) is one run of `sqil_car_racing.py`, `bc.py` or `gail_dqn.py`, whose
results.json and log land in `results/car_racing/<row>__<start>__<steps>__<seed>/`; a run whose
results exist is skipped, so the table can be filled across sessions. The Random row plays the
uniform policy and the Expert row the scripted expert that recorded the demonstrations
(`collect_demos.car_racing_expert`), both without training, over the same number of episodes.
"Rotated" is the paper's domain shift (the car starts perpendicular to the track), "demo" no shift.
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
sys.path.insert(0, str(ROOT))
PAPER = {  # Figure 1 / Figure 5: (domain shift, no shift), mean over 100 episodes, 3 seeds
    "Random": ("-21 ± 56", "-68 ± 4"),
    "BC": ("-45 ± 18", "698 ± 10"),
    "GAIL-DQL-B": ("-91 ± 4", "-34 ± 21"),
    "GAIL-DQL-U": ("-97 ± 3", "-66 ± 8"),
    "SQIL": ("375 ± 19", "704 ± 6"),
    "Expert": ("480 ± 11", "704 ± 79"),
}
# row -> (script, flags, the results.json key of the reported policy)
TRAINED = {
    "BC": ("bc.py", ["--env-id", "CarRacing-v3"], "final_deterministic_return"),
    "GAIL-DQL-B": (
        "gail_dqn.py",
        ["--env-id", "CarRacing-v3", "--reward-variant", "biased", "--alpha", "0.1"],
        "final_greedy_return",
    ),
    "GAIL-DQL-U": (
        "gail_dqn.py",
        ["--env-id", "CarRacing-v3", "--reward-variant", "unbiased", "--alpha", "0.1"],
        "final_greedy_return",
    ),
    "SQIL": ("sqil_car_racing.py", [], "final_greedy_return"),
}
STARTS = ("rotated", "demo")


def run_dir(row: str, start: str, seed: int, steps: int) -> Path:
    return ROOT / "results" / "car_racing" / f"{row}__{start}__{steps}__{seed}"


def run(row: str, start: str, seed: int, steps: int, eval_episodes: int) -> None:
    out = run_dir(row, start, seed, steps)
    if (out / "results.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    if row in ("Random", "Expert"):
        return play(row, start, seed, eval_episodes, out)
    script, flags, _ = TRAINED[row]
    flags = [*flags, "--start-state", start, "--seed", str(seed), "--total-gradient-steps", str(steps)]
    flags += ["--final-eval-episodes", str(eval_episodes), "--eval-frequency", "100000000"]
    with open(out / "log.txt", "w") as log:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per run; runs go in parallel
        subprocess.run(
            [sys.executable, str(ROOT / script), *flags], cwd=out, stdout=log, stderr=log, check=True, env=env
        )
    (produced,) = out.glob("runs/*/results.json")
    produced.rename(out / "results.json")


def play(row: str, start: str, seed: int, episodes: int, out: Path) -> None:
    """Random: the uniform policy; Expert: the scripted expert, which reads the track and recovers from
    the rotated start too. Both from the same start states and preprocessing as the trained rows."""
    import collect_demos
    import sqil_car_racing

    env = sqil_car_racing.make_env("CarRacing-v3", start, seed)
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + 2_000_000 + episode)
        done = False
        while not done:
            action = env.action_space.sample() if row == "Random" else collect_demos.car_racing_expert(env, obs)
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        returns.append(float(info["episode"]["r"]))
    (out / "results.json").write_text(
        json.dumps({"row": row, "start": start, "returns": returns, "final_return": float(np.mean(returns))})
    )


def cell(row: str, start: str, seeds: list[int], steps: int) -> str:
    values = []
    for seed in seeds:
        path = run_dir(row, start, seed, steps) / "results.json"
        if path.exists():
            results = json.loads(path.read_text())
            values.append(results["final_return"] if row in ("Random", "Expert") else results[TRAINED[row][2]])
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f} (1 seed)"
    return f"{np.mean(values):.0f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.0f} ({len(values)} seeds)"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=2500, help="gradient steps of every trained row")
    parser.add_argument("--eval-episodes", type=int, default=10, help="final evaluation episodes (paper: 100)")
    parser.add_argument("--rows", nargs="+", default=["Random", "Expert", *TRAINED])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        jobs = [(row, start, seed) for row in args.rows for start in STARTS for seed in args.seeds]
        with ThreadPoolExecutor(args.jobs) as pool:
            for job in [pool.submit(run, *job, args.steps, args.eval_episodes) for job in jobs]:
                job.result()
    print("| row | rotated start (domain shift) | paper | default start (no shift) | paper |\n|---|---|---|---|---|")
    for row in ["Random", "BC", "GAIL-DQL-B", "GAIL-DQL-U", "SQIL", "Expert"]:
        shifted, default = (cell(row, start, args.seeds, args.steps) for start in STARTS)
        print(f"| {row} | {shifted} | {PAPER[row][0]} | {default} | {PAPER[row][1]} |")
