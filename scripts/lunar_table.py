"""The sweep of the LunarLander table (paper Figure 4), run and printed by scripts/sweep.py.

    python scripts/sweep.py lunar --seeds 1 2 3 --steps 100000 --jobs 2      # run what is missing
    python scripts/sweep.py lunar --seeds 1 2 3 --steps 100000 --report-only  # just the table

Each (row, demonstration file, start state, seed) is one run of `rbc_lunar.py` (or of `bc.py` /
`gail_dqn.py` for the baseline rows) whose log and results.json land in
`results/lunar_fig4/<row>__<demos>__<start>__<steps>__<seed>/`. The Random row plays the uniform
policy (no training) when the table is printed.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from sweep import Run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "lunar_fig4"
DEMOS = {  # name -> demonstration file
    "scripted": ROOT / "demos" / "LunarLander-v3.npz",
    "expert": ROOT / "demos" / "expert" / "LunarLander-v3.npz",
    "expert2": ROOT / "demos" / "expert2" / "LunarLander-v3.npz",  # the expert that lands from both starts
}
GAIL_LEARNER = ["--learning-rate", "3e-4", "--alpha", "0.08"]  # rbc_lunar.py's defaults (gail_dqn.py: 1e-3, 1)
ROWS = {  # row name -> (script, flags); the paper's numbers (shifted start, default start)
    "BC": ("rbc_lunar.py", ["--loss", "rbc", "--rbc-lambda", "0"], (0.07, 0.93)),
    "SQIL": ("rbc_lunar.py", [], (0.89, 0.88)),  # rbc_lunar.py's defaults
    "SQIL-lambda_samp0": ("rbc_lunar.py", ["--lambda-samp", "0"], (0.12, 0.87)),
    "SQIL-gamma0": ("rbc_lunar.py", ["--gamma", "0"], (0.41, 0.84)),
    "SQIL-piUnif": ("rbc_lunar.py", ["--rollout-policy", "uniform"], (0.47, 0.82)),
    "RBC": ("rbc_lunar.py", ["--loss", "rbc"], (0.66, 0.89)),
    "SQIL-paper-values": ("rbc_lunar.py", ["--paper-values"], (0.89, 0.88)),
    "BC-bc.py": ("bc.py", ["--env-id", "LunarLander-v3"], (0.07, 0.93)),
    # the paper's LunarLander GAIL rows are GAIL-TRPO (-U 0.67 / 0.93, -B 0.98 / 0.95); ours use soft Q-learning
    # with rbc_lunar.py's learning rate and temperature, so that only the reward differs from SQIL's
    "GAIL-DQL-U": ("gail_dqn.py", ["--reward-variant", "unbiased", *GAIL_LEARNER], (0.67, 0.93)),
    "GAIL-DQL-B": ("gail_dqn.py", ["--reward-variant", "biased", *GAIL_LEARNER], (0.98, 0.95)),
    # not in the paper: GAIL-DQL-B with a reward that is negative where the agent looks unlike the expert, which
    # tests whether B's lead needs a reward that is positive everywhere (a bonus for not ending)
    "GAIL-DQL-B-logit": (
        "gail_dqn.py",
        ["--reward-variant", "biased", "--reward-formula", "logit", *GAIL_LEARNER],
        ("-", "-"),
    ),
}
PAPER_RANDOM = (0.10, 0.04)


def run_name(row: str, demos: str, start: str, seed: int, steps: int) -> str:
    return f"{row}__{demos}__{start}__{steps}__{seed}"


def runs(args: argparse.Namespace) -> list[Run]:
    found = []
    for seed in args.seeds:  # seed-major: a sweep stopped early has every row at its first seeds
        for demos in args.demos:
            for row in args.rows:
                for start in args.starts:
                    if row == "Random":
                        continue
                    script, flags, _ = ROWS[row]
                    flags = [*flags, "--demo-path", str(DEMOS[demos]), "--start-state", start, "--seed", str(seed)]
                    flags += ["--total-gradient-steps", str(args.steps), "--eval-frequency", str(args.steps // 10)]
                    found.append(Run(run_name(row, demos, start, seed, args.steps), script, tuple(flags)))
    return found


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
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    stderr = np.std(values, ddof=1) / np.sqrt(len(values))
    return f"{np.mean(values):.2f} ± {stderr:.2f} (n={len(values)})"


def with_best_periodic(result: dict, path: Path) -> dict:
    """gail_dqn.py's results.json has no best periodic evaluation: it is read from the run's log."""
    if "best_eval_greedy_success" not in result and (log := path.with_name("log.txt")).exists():
        found = re.findall(r"eval greedy return [-\d.]+ success ([\d.]+)", log.read_text())
        if found:
            result["best_eval_greedy_success"] = max(map(float, found))
    return result


def report(args: argparse.Namespace) -> None:
    seeds, steps, demo_names = args.seeds, args.steps, args.demos
    for demos in demo_names:
        print(f"\n{demos} demonstrations ({DEMOS[demos].relative_to(ROOT)}), {steps} gradient steps\n")
        print(
            "| row | shifted: best of 100 training eps | shifted: final greedy | shifted: best periodic | paper "
            "| default: best of 100 training eps | default: final greedy | default: best periodic | paper |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        if demos == demo_names[0] and "Random" in args.rows:
            print(
                f"| Random | {random_policy_success('shifted'):.2f} (1000 eps) | same | - | {PAPER_RANDOM[0]} "
                f"| {random_policy_success('demo'):.2f} (1000 eps) | same | - | {PAPER_RANDOM[1]} |"
            )
        for row, (_, _, paper) in ROWS.items():
            cells = []
            for start, paper_value in (("shifted", paper[0]), ("demo", paper[1])):
                paths = [args.results / run_name(row, demos, start, s, steps) / "results.json" for s in seeds]
                results = [with_best_periodic(json.loads(path.read_text()), path) for path in paths if path.exists()]
                cells += [
                    cell([r["best_training_success"] for r in results if "best_training_success" in r]),
                    cell([r.get("final_greedy_success", r.get("final_deterministic_success")) for r in results]),
                    cell([r["best_eval_greedy_success"] for r in results if "best_eval_greedy_success" in r]),
                    str(paper_value),
                ]
            if any(c != "-" for c in cells[::4] + cells[1::4]):
                print(f"| {row} | " + " | ".join(cells) + " |")
        expert = ROOT / "results" / "lunar_expert" / demos / "success.txt"  # the expert's own greedy success
        if expert.exists():
            text = expert.read_text()
            shifted, default = (
                re.search(rf"{start} start: success ([\d.]+)", text).group(1) for start in ("shifted", "demo")
            )
            print(f"| Expert ({expert.relative_to(ROOT)}) | - | {shifted} | - | 0.93 | - | {default} | - | 0.89 |")
        paired_averaging(args, demos)


def paired_averaging(args: argparse.Namespace, demos: str) -> None:
    """Runs with --policy-averaging also evaluate the network itself on the same final episodes: the difference
    is what averaging changed in that run."""
    lines = []
    for row in ROWS:
        for start in ("shifted", "demo"):
            paths = [args.results / run_name(row, demos, start, s, args.steps) / "results.json" for s in args.seeds]
            results = [json.loads(path.read_text()) for path in paths if path.exists()]
            pairs = [
                (r["final_greedy_success"], r["final_greedy_success_unaveraged"])
                for r in results
                if "final_greedy_success_unaveraged" in r
            ]
            if pairs:
                diffs = [a - b for a, b in pairs]
                up = sum(d > 0 for d in diffs)
                lines.append(
                    f"| {row} | {start} | {cell([a for a, _ in pairs])} | {cell([b for _, b in pairs])} "
                    f"| {np.mean(diffs):+.2f} ({up} of {len(diffs)} up) |"
                )
    if lines:
        print("\nFinal greedy success of the averaged policy and of the network itself, the same runs and episodes:\n")
        print("| row | start | averaged | network itself | difference |\n|---|---|---|---|---|")
        print("\n".join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--steps", type=int, default=100_000, help="gradient steps per run")
    parser.add_argument("--rows", nargs="+", default=["Random", *ROWS], choices=["Random", *ROWS])
    parser.add_argument("--demos", nargs="+", default=list(DEMOS), choices=list(DEMOS))
    parser.add_argument("--starts", nargs="+", default=["shifted", "demo"], choices=["shifted", "demo"])
