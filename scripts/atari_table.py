"""The sweep of the Atari comparison (paper Figure 2), run and printed by scripts/sweep.py.

    python scripts/sweep.py atari --games PongNoFrameskip-v4 --seeds 1 2 3 --jobs 2   # run or continue what is missing
    python scripts/sweep.py atari --games PongNoFrameskip-v4 --report-only            # just the table

Each (row, game, seed) is one run of `sqil_dqn_atari.py`, `bc.py` or `gail_dqn.py` on the bundled
demonstrations of the game's trained expert (demos/<game>.npz), logged to
`results/atari_fig2/<row>__<game>__<seed>/`. The learners that interact save a checkpoint every 50,000 env
steps (SQIL) or 5,000 gradient steps (GAIL-DQL; each about 16 minutes of one core on 2026-12-06), so a sweep stopped
in the middle continues them with --resume. The checkpoints hold no agent buffer, so they can be committed and a run can go on on another
machine: a resumed SQIL run refills its buffer with 1,000 env steps before updating (docs/atari.md, "Long
runs"), a resumed GAIL-DQL run starts its buffer with one game. `--checkpoint-buffer` keeps the buffers
in the checkpoints instead (7.1 KB per frame: about 7 GB each at 1M, beside the log, too big to commit),
so that a resumed run on the same machine goes on with it. The
learners that interact follow the authors' Atari code where this project has the flag: one update
per 4 env steps, batches of 32 demonstration + 32 agent transitions, the target network copied every
10,000 updates, learning rate 1e-4. GAIL-DQL takes one whole game every 250
gradient steps, about 4 env steps per update for games of about 1,000 steps; its budget is in
gradient steps (250,000), so its env steps are what its games last (the table prints them).
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
from sweep import Run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "atari_fig2"
GAMES = ("PongNoFrameskip-v4", "BreakoutNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4")
AUTHORS = ["--batch-size", "64", "--target-network-frequency", "10000", "--learning-rate", "1e-4", "--no-cuda"]
SQIL = [*AUTHORS, "--train-frequency", "4", "--total-timesteps", "1000000", "--eval-frequency", "100000"]
SQIL += ["--checkpoint-frequency", "50000", "--no-checkpoint-buffer"]
# GAIL-DQL: the same soft Q-learner as SQIL's default row (temperature 0.1, a 1M buffer), only the reward differs
GAIL = [*AUTHORS, "--k", "250", "--total-gradient-steps", "250000", "--eval-frequency", "25000"]
GAIL += ["--checkpoint-frequency", "5000", "--no-checkpoint-buffer", "--alpha", "0.1", "--buffer-size", "1000000"]
BC = ["--total-gradient-steps", "10000", "--eval-frequency", "2500", "--eval-episodes", "3"]
ROWS = {  # row -> (script, flags, saves checkpoints, the results.json key of the final greedy score)
    # 10,000 batches of 128 are about 40 passes over the 18 training games of a 20-game file (2 held out)
    "BC": ("bc.py", [*BC, "--no-cuda"], False, "final_deterministic_return"),
    "SQIL": ("sqil_dqn_atari.py", [*SQIL, "--alpha", "1"], True, "final_greedy_returns"),  # the authors' temperature
    "GAIL-DQL-U": ("gail_dqn.py", [*GAIL, "--reward-variant", "unbiased"], True, "final_greedy_return"),
    "GAIL-DQL-B": ("gail_dqn.py", [*GAIL, "--reward-variant", "biased"], True, "final_greedy_return"),
    # one factor from SQIL: the temperature LunarLander needed (docs/lunar_lander.md), now the file's default; at
    # alpha = 1 the entropy bonus per step (log 6 = 1.8 in Pong) outweighs r_demo = 1 and rollouts stay near uniform
    "SQIL-alpha0.1": ("sqil_dqn_atari.py", [*SQIL, "--alpha", "0.1"], True, "final_greedy_returns"),
}


def run_name(row: str, game: str, seed: int) -> str:
    return f"{row}__{game}__{seed}"


def runs(args: argparse.Namespace) -> list[Run]:
    found = []
    for seed in args.seeds:  # seed-major: a sweep stopped early has every row at its first seeds
        for game in args.games:
            for row in args.rows:
                script, flags, resumable, _ = ROWS[row]
                flags = [*flags, "--env-id", game, "--demo-path", str(ROOT / "demos" / f"{game}.npz")]
                if args.checkpoint_buffer:
                    flags = [flag for flag in flags if flag != "--no-checkpoint-buffer"]
                found.append(Run(run_name(row, game, seed), script, (*flags, "--seed", str(seed)), resumable))
    return found


def periodic(log: str) -> list[tuple[int, float]]:
    """(env steps, greedy evaluation return) of every periodic evaluation in a run's log."""
    sqil = re.findall(r"global_step=(\d+), greedy evaluation return (-?[\d.]+)", log)
    gail = re.findall(r"env steps (\d+), eval greedy return (-?[\d.]+)", log)
    return [(int(steps), float(score)) for steps, score in sqil + gail]


def logged_env_steps(log: str) -> int:
    """The furthest env step named in a run's log, by its training games and evaluations."""
    found = re.findall(r"global_step=(\d+)|env steps (\d+)", log)
    return max((int(sqil or gail) for sqil, gail in found), default=0)


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f} (n=1)"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.1f} (n={len(values)})"


def report(args: argparse.Namespace) -> None:
    for game in args.games:
        demos = ROOT / "demos" / f"{game}.npz"
        print(f"\n{game}, demonstrations {demos.relative_to(ROOT)}\n")
        print("| row | final greedy return | best periodic greedy return | env steps | runs still going |")
        print("|---|---|---|---|---|")
        for row, (_, _, _, key) in ROWS.items():
            finals, bests, env_steps, going = [], [], [], []
            for seed in args.seeds:
                folder = args.results / run_name(row, game, seed)
                log = (folder / "log.txt").read_text() if (folder / "log.txt").exists() else ""
                if (folder / "results.json").exists():
                    result = json.loads((folder / "results.json").read_text())
                    finals.append(float(np.mean(result[key])))
                    env_steps.append(result.get("env_steps"))
                elif log:
                    going.append(f"seed {seed} logged to {logged_env_steps(log):,} env steps")
                if periodic(log):
                    bests.append(max(score for _, score in periodic(log)))
            steps = "-" if not env_steps or None in env_steps else f"{int(np.mean(env_steps)):,}"
            print(f"| {row} | {cell(finals)} | {cell(bests)} | {steps} | {'; '.join(going) or '-'} |")
        if demos.exists():
            with np.load(demos, allow_pickle=False) as data:
                returns = data["episode_returns"] if "episode_returns" in data.files else None
            if returns is not None:
                print(f"| Expert (the {len(returns)} recorded games) | {np.mean(returns):.1f} | - | - | - |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--games", nargs="+", default=["PongNoFrameskip-v4"], choices=GAMES)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument(
        "--checkpoint-buffer",
        action="store_true",
        help="keep SQIL's and GAIL-DQL's agent buffers in their checkpoints (7.1 KB per frame, beside the log, not "
        "committed), so a run resumed on the same machine goes on with its buffer instead of starting it afresh",
    )
