"""The sweep of the CarRacing table (paper Figure 1 and Figure 5), run and printed by scripts/sweep.py.

    python scripts/sweep.py car_racing --seeds 1 --steps 2500 --eval-episodes 10 --jobs 2
    python scripts/sweep.py car_racing --seeds 1 --steps 2500 --eval-episodes 10 --report-only

Each (row, start state, seed) is one run of `sqil_car_racing.py`, `bc.py` or `gail_dqn.py`, whose
results.json and log land in `results/car_racing/<row>__<start>__<steps>__<seed>/`. The Random row
plays the uniform policy and the Expert row the scripted expert that recorded the demonstrations
(`collect_demos.car_racing_expert`), both without training, over the same number of episodes (this
file run as a script: `python scripts/car_racing_table.py --play Expert --start rotated --seed 1`).
"Rotated" is the paper's domain shift (the car starts perpendicular to the track), "demo" no shift.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sweep import Run

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


RESULTS = ROOT / "results" / "car_racing"


def run_name(row: str, start: str, seed: int, steps: int) -> str:
    return f"{row}__{start}__{steps}__{seed}"


def runs(args: argparse.Namespace) -> list[Run]:
    found = []
    for row in args.rows:
        for start in STARTS:
            for seed in args.seeds:
                if row in ("Random", "Expert"):
                    script = "scripts/car_racing_table.py"
                    flags = [
                        "--play",
                        row,
                        "--start",
                        start,
                        "--seed",
                        str(seed),
                        "--episodes",
                        str(args.eval_episodes),
                    ]
                else:
                    script, flags, _ = TRAINED[row]
                    flags = [
                        *flags,
                        "--start-state",
                        start,
                        "--seed",
                        str(seed),
                        "--total-gradient-steps",
                        str(args.steps),
                    ]
                    flags += ["--final-eval-episodes", str(args.eval_episodes), "--eval-frequency", "100000000"]
                found.append(Run(run_name(row, start, seed, args.steps), script, tuple(flags)))
    return found


def play(row: str, start: str, seed: int, episodes: int) -> None:
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
    Path("runs/play").mkdir(parents=True, exist_ok=True)  # where the sweep runner looks, as for a trained row
    Path("runs/play/results.json").write_text(
        json.dumps({"row": row, "start": start, "returns": returns, "final_return": float(np.mean(returns))})
    )


def cell(row: str, start: str, args: argparse.Namespace) -> str:
    values = []
    for seed in args.seeds:
        path = args.results / run_name(row, start, seed, args.steps) / "results.json"
        if path.exists():
            results = json.loads(path.read_text())
            values.append(results["final_return"] if row in ("Random", "Expert") else results[TRAINED[row][2]])
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f} (1 seed)"
    return f"{np.mean(values):.0f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.0f} ({len(values)} seeds)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=2500, help="gradient steps of every trained row")
    parser.add_argument("--eval-episodes", type=int, default=10, help="final evaluation episodes (paper: 100)")
    parser.add_argument(
        "--rows", nargs="+", default=["Random", "Expert", *TRAINED], choices=["Random", "Expert", *TRAINED]
    )


def report(args: argparse.Namespace) -> None:
    print("| row | rotated start (domain shift) | paper | default start (no shift) | paper |\n|---|---|---|---|---|")
    for row in ["Random", "BC", "GAIL-DQL-B", "GAIL-DQL-U", "SQIL", "Expert"]:
        shifted, default = (cell(row, start, args) for start in STARTS)
        print(f"| {row} | {shifted} | {PAPER[row][0]} | {default} | {PAPER[row][1]} |")


if __name__ == "__main__":  # a Random or Expert row's run: play, no training
    parser = argparse.ArgumentParser(description="plays the uniform policy or the scripted expert")
    parser.add_argument("--play", choices=["Random", "Expert"], required=True)
    parser.add_argument("--start", choices=STARTS, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--episodes", type=int, default=10)
    played = parser.parse_args()
    play(played.play, played.start, played.seed, played.episodes)
