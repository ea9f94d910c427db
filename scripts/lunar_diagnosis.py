"""The LunarLander diagnosis: from a SQIL configuration that lands, one factor at a time towards the
paper's printed values (docs/lunar_lander.md, "Which factors matter").

    python scripts/sweep.py lunar_diagnosis --jobs 2            # run what is missing, then print the table
    python scripts/sweep.py lunar_diagnosis --points B G --jobs 2   # only these points
    python scripts/sweep.py lunar_diagnosis --report-only

Each (point, start, seed) is one run of `rbc_lunar.py` with the point's flags written out in full
(so the table does not move when the file's defaults do), logged to
`results/lunar_diagnosis/<point>__<start>__<steps>__<seed>/`.
"""

import argparse
import json
import re
from pathlib import Path

import numpy as np
from sweep import Run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "lunar_diagnosis"
BASE = {"--lambda-samp": "1", "--alpha": "0.08", "--gamma": "0.97", "--absorbing": "reward"}
BASE |= {"--learning-rate": "1e-3", "--clip-values": False}  # the file's defaults when the diagnosis began
S3 = (1, 2, 3)
S5 = (1, 2, 3, 4, 5)
EXPERT = {"--demo-path": "demos/expert/LunarLander-v3.npz"}  # the trained expert's demonstrations
EXPERT2 = {"--demo-path": "demos/expert2/LunarLander-v3.npz"}  # the second expert's (lands from both starts)
G3 = {"--gamma": "0.99", "--learning-rate": "3e-4"}
G3C = {**G3, "--clip-values": True}
POLYAK = {"--tau": "0.005", "--target-network-frequency": "1"}
# epsilon-greedy on top of the Boltzmann rollouts, 1 -> 0.05 over the first 20,000 env steps (about a tenth of a
# 100k run: SB3's and imitation's DQN schedule, exploration_fraction 0.1)
EPS = {"--epsilon-start": "1", "--epsilon-end": "0.05", "--epsilon-decay-steps": "20000"}
AVG = {"--policy-averaging": "0.9998"}
BC = {"--loss": "rbc", "--rbc-lambda": "0"}
# (point, what changes from BASE, start state, seeds, gradient steps), in the order the table shows them
POINTS = [
    ("B", {}, "demo", S3, 50_000),
    ("B", {}, "shifted", S3, 50_000),
    ("reward_a0.08_g0.97", {}, "demo", (1,), 100_000),  # B for longer
    ("B_constant", {"--absorbing": "constant"}, "demo", S3, 50_000),
    ("B_constant", {"--absorbing": "constant"}, "shifted", (1,), 50_000),
    ("dieng", {"--absorbing": "constant"}, "demo", (1,), 100_000),  # DI-engine's alpha and gamma
    ("B_alpha1", {"--alpha": "1"}, "demo", S3, 50_000),
    ("B_alpha0.3", {"--alpha": "0.3"}, "shifted", (1,), 50_000),
    ("B_lambda1e-6", {"--lambda-samp": "1e-6"}, "demo", S3, 50_000),
    ("B_lambda0.1", {"--lambda-samp": "0.1"}, "shifted", (1,), 50_000),
    ("B_k50", {"--k": "50"}, "demo", (1,), 50_000),
    ("B_k50", {"--k": "50"}, "shifted", S3, 50_000),
    ("B_gamma0.98", {"--gamma": "0.98"}, "demo", (1, 2), 50_000),
    ("B_gamma0.98", {"--gamma": "0.98"}, "shifted", (1, 2), 50_000),
    ("B_gamma0.99", {"--gamma": "0.99"}, "demo", S3, 50_000),
    ("B_gamma0.99", {"--gamma": "0.99"}, "shifted", S3, 50_000),
    ("G", {"--gamma": "0.99"}, "demo", S3, 100_000),
    ("G", {"--gamma": "0.99"}, "shifted", S3, 100_000),
    ("G_target1000", {"--gamma": "0.99", "--target-network-frequency": "1000"}, "demo", (1,), 100_000),
    ("G_target1000", {"--gamma": "0.99", "--target-network-frequency": "1000"}, "shifted", (1,), 100_000),
    ("G_lr3e-4", {"--gamma": "0.99", "--learning-rate": "3e-4"}, "demo", (1,), 100_000),
    ("G_lr3e-4", {"--gamma": "0.99", "--learning-rate": "3e-4"}, "shifted", (1,), 100_000),
    ("G_lambda0.25", {"--gamma": "0.99", "--lambda-samp": "0.25"}, "demo", (1,), 100_000),
    ("G_lambda0.25", {"--gamma": "0.99", "--lambda-samp": "0.25"}, "shifted", (1,), 100_000),
    ("reward_a0.1", {"--alpha": "0.1", "--gamma": "0.99"}, "demo", (1,), 100_000),
    ("constant_a0.1", {"--alpha": "0.1", "--gamma": "0.99", "--absorbing": "constant"}, "demo", (1,), 100_000),
    # Session 15: gamma 0.99 with a smaller learning rate, then with its soft values clipped to their range.
    ("G_lr3e-4_clip", {**G3C}, "shifted", S3, 100_000),
    ("G_lr3e-4_clip", {**G3C}, "demo", S3, 100_000),
    # On the trained expert's demonstrations
    ("E_G_lr3e-4", {**EXPERT, **G3}, "shifted", (1, 2), 100_000),
    ("E_G_lr3e-4_rerun", {**EXPERT, **G3}, "shifted", (1,), 100_000),  # seed 1 again, logging the value range
    ("E_G_lr3e-4_clip", {**EXPERT, **G3C}, "shifted", S3, 100_000),
    ("E_G_lr3e-4_clip", {**EXPERT, **G3C}, "demo", S3, 100_000),
    ("E_G_lr3e-4_clip_anneal", {**EXPERT, **G3C, "--anneal-lr": True}, "shifted", S3, 100_000),
    ("E_G_clip", {**EXPERT, "--gamma": "0.99", "--clip-values": True}, "shifted", (1, 2), 100_000),  # lr 1e-3
    # Session 16: the new defaults with a Polyak-averaged target (tau 0.005 every step) instead of a copy every 100
    ("E_G_lr3e-4_clip_polyak", {**EXPERT, **G3C, **POLYAK}, "shifted", S3, 100_000),
    # Session 17, one factor each on the defaults, 3 seeds first (paired with the defaults' seeds 1-3): epsilon-greedy
    # exploration in SQIL's rollouts (imitation's and DI-engine's acting); the weight of the agent's transitions that
    # kept Humanoid's walk (docs/mujoco.md; r_eff >= r_demo / (1 + lambda)); the policy evaluated an average of the
    # network's weights over about the last 5,000 gradient steps (and BC with the same average, for fairness)
    ("E_G_lr3e-4_clip_eps", {**EXPERT, **G3C, **EPS}, "shifted", S3, 100_000),
    ("G_lr3e-4_clip_eps", {**G3C, **EPS}, "shifted", S3, 100_000),
    ("E_G_lr3e-4_clip_lambda0.25", {**EXPERT, **G3C, "--lambda-samp": "0.25"}, "shifted", S3, 100_000),
    ("G_lr3e-4_clip_lambda0.25", {**G3C, "--lambda-samp": "0.25"}, "shifted", S3, 100_000),
    ("E_G_lr3e-4_clip_avg", {**EXPERT, **G3C, **AVG}, "shifted", S3, 100_000),
    ("G_lr3e-4_clip_avg", {**G3C, **AVG}, "shifted", S3, 100_000),
    ("BC_avg", {**G3C, **BC, **AVG}, "shifted", S3, 100_000),
    # Session 19, on the second expert's demonstrations (a faster machine than before: the defaults rerun on it,
    # since seeded runs repeat on one machine but not across machines), one factor each on the defaults
    ("E2_G_lr3e-4_clip", {**EXPERT2, **G3C}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_huber", {**EXPERT2, **G3C, "--td-loss": "huber"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_ens2", {**EXPERT2, **G3C, "--ensemble-size": "2"}, "shifted", S3, 100_000),
    ("E2_G_lr1e-4_clip", {**EXPERT2, **G3C, "--learning-rate": "1e-4"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_gamma0.995", {**EXPERT2, **G3C, "--gamma": "0.995"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_alpha0.04", {**EXPERT2, **G3C, "--alpha": "0.04"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_alpha0.16", {**EXPERT2, **G3C, "--alpha": "0.16"}, "shifted", S3, 100_000),
    # the paper's "standard implementation" evicts old agent experience (A.3); OpenAI Baselines' DQN keeps 50,000
    ("E2_G_lr3e-4_clip_buffer50k", {**EXPERT2, **G3C, "--buffer-size": "50000"}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_buffer50k", {**EXPERT2, **G3C, "--buffer-size": "50000"}, "demo", S3, 100_000),
    ("E2_G_lr3e-4_clip_buffer20k", {**EXPERT2, **G3C, "--buffer-size": "20000"}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_buffer20k", {**EXPERT2, **G3C, "--buffer-size": "20000"}, "demo", S3, 100_000),
    ("G_lr3e-4_clip_buffer20k", {**G3C, "--buffer-size": "20000"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_buffer10k", {**EXPERT2, **G3C, "--buffer-size": "10000"}, "shifted", S3, 100_000),
    ("G_lr3e-4_clip_buffer50k", {**G3C, "--buffer-size": "50000"}, "shifted", S3, 100_000),
    # the greedy action in the shifted region is decided by Q differences of about 0.1 on values of about 66
    # (docs/lunar_lander.md, "The action gap"): a last layer that learns a value and advantages apart
    ("E2_G_lr3e-4_clip_dueling", {**EXPERT2, **G3C, "--dueling": True}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_dueling", {**EXPERT2, **G3C, "--dueling": True}, "demo", S3, 100_000),
    ("G_lr3e-4_clip_dueling", {**G3C, "--dueling": True}, "shifted", S3, 100_000),
    (
        "E2_G_lr3e-4_clip_dueling_buffer50k",
        {**EXPERT2, **G3C, "--dueling": True, "--buffer-size": "50000"},
        "shifted",
        S3,
        100_000,
    ),  # fmt: skip
    # Session 20: the fresher agent buffer with each of the two single changes that steadied a seed or two
    ("E2_G_lr3e-4_clip_buffer20k_avg", {**EXPERT2, **G3C, "--buffer-size": "20000", **AVG}, "shifted", S3, 100_000),
    (
        "E2_G_lr3e-4_clip_buffer20k_dueling",
        {**EXPERT2, **G3C, "--buffer-size": "20000", "--dueling": True},
        "shifted",
        S3,
        100_000,
    ),  # fmt: skip
    # n-step targets (--n-step: the sum of the next n rewards, then gamma^n V): value from the demonstrated states
    # reaches the shifted states in fewer backups
    ("E2_G_lr3e-4_clip_n3", {**EXPERT2, **G3C, "--n-step": "3"}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_n5", {**EXPERT2, **G3C, "--n-step": "5"}, "shifted", S5, 100_000),
    # Session 21: does the 5-step target hold on the scripted file, from the default start, and further out?
    ("G_lr3e-4_clip_n5", {**G3C, "--n-step": "5"}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_n5", {**EXPERT2, **G3C, "--n-step": "5"}, "demo", S3, 100_000),
    ("E2_G_lr3e-4_clip_n10", {**EXPERT2, **G3C, "--n-step": "10"}, "shifted", S3, 100_000),
    (
        "E2_G_lr3e-4_clip_n5_buffer20k",
        {**EXPERT2, **G3C, "--n-step": "5", "--buffer-size": "20000"},
        "shifted",
        S3,
        100_000,
    ),  # fmt: skip
    ("G_lr3e-4_clip_n5", {**G3C, "--n-step": "5"}, "demo", S3, 100_000),
    ("E_G_lr3e-4_clip_n5", {**EXPERT, **G3C, "--n-step": "5"}, "shifted", S5, 100_000),
    ("E_G_lr3e-4_clip_n5", {**EXPERT, **G3C, "--n-step": "5"}, "demo", S3, 100_000),
    ("E2_G_lr3e-4_clip_n5_avg", {**EXPERT2, **G3C, "--n-step": "5", **AVG}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_n5", {**EXPERT2, **G3C, "--n-step": "5"}, "shifted", S3, 200_000),  # near 0.9 at 80-90k
    # ... or a target that widens the gaps (and keeps each policy near the last): Munchausen soft Q-learning
    ("E2_G_lr3e-4_clip_munchausen", {**EXPERT2, **G3C, "--munchausen": "0.9"}, "shifted", S3, 100_000),
    # Session 23: GAIL-DQL-B lands from the shifted start with a positive agent reward and a terminal value of 0.
    # SQIL with that terminal value (the paper's), without and with a constant positive reward on agent transitions
    ("E2_G_lr3e-4_clip_constant", {**EXPERT2, **G3C, "--absorbing": "constant"}, "shifted", S3, 100_000),
    (
        "E2_G_lr3e-4_clip_constant_rsamp0.5",
        {**EXPERT2, **G3C, "--absorbing": "constant", "--r-samp": "0.5"},
        "shifted",
        S3,
        100_000,
    ),  # fmt: skip
    # Session 24: the greedy policy swings between evaluations (best periodic 0.97, final 0.55). Less gradient noise
    # (four times the batch), and an averaged network evaluated on its own
    ("E2_G_lr3e-4_clip_b512", {**EXPERT2, **G3C, "--batch-size": "512"}, "shifted", (1, 2), 100_000),  # 734 s a run
    ("E2_G_lr3e-4_clip_avg", {**EXPERT2, **G3C, **AVG}, "shifted", S3, 100_000),
    # The averaged network as a copy (since 2026-12-03): the run trains exactly as the row without averaging and reports
    # both networks' final evaluations on the same episodes, so averaging's effect is measured within each run
    ("E2_G_lr3e-4_clip_avgp", {**EXPERT2, **G3C, **AVG}, "shifted", S5, 100_000),
    ("G_lr3e-4_clip_avgp", {**G3C, **AVG}, "shifted", S5, 100_000),
    ("E2_G_lr3e-4_clip_avgp", {**EXPERT2, **G3C, **AVG}, "demo", S3, 100_000),
    ("G_lr3e-4_clip_avgp", {**G3C, **AVG}, "demo", S3, 100_000),
    ("E_G_lr3e-4_clip_avgp", {**EXPERT, **G3C, **AVG}, "shifted", S3, 100_000),
    # 5-step targets with the averaged network on the other files and the default start: a candidate default
    ("G_lr3e-4_clip_n5_avg", {**G3C, "--n-step": "5", **AVG}, "shifted", (2,), 100_000),
    # Session 26: 5-step targets with the averaged copy, paired within each run (the network itself repeats `_n5`)
    ("E2_G_lr3e-4_clip_n5_avgp", {**EXPERT2, **G3C, "--n-step": "5", **AVG}, "shifted", S5, 100_000),
    ("G_lr3e-4_clip_n5_avgp", {**G3C, "--n-step": "5", **AVG}, "shifted", S5, 100_000),
    ("E_G_lr3e-4_clip_n5_avgp", {**EXPERT, **G3C, "--n-step": "5", **AVG}, "shifted", S3, 100_000),
    ("E2_G_lr3e-4_clip_n5_avgp", {**EXPERT2, **G3C, "--n-step": "5", **AVG}, "demo", S3, 100_000),
    ("G_lr3e-4_clip_n5_avgp", {**G3C, "--n-step": "5", **AVG}, "demo", S3, 100_000),
]


def run_name(point: str, start: str, seed: int, steps: int) -> str:
    return f"{point}__{start}__{steps}__{seed}"


def switch(flag: str, on: bool) -> list[str]:
    """A boolean flag as tyro spells it: --clip-values or --no-clip-values."""
    return [flag if on else "--no-" + flag[2:]]


def runs(args: argparse.Namespace) -> list[Run]:
    found = []
    for point, changes, start, seeds, steps in POINTS:
        if args.points and point not in args.points:
            continue
        flags = {**BASE, **changes}
        if "--demo-path" in flags:  # written relative to the repository in the table; the run starts in its folder
            flags["--demo-path"] = str(ROOT / flags["--demo-path"])
        command = [switch(k, v) if isinstance(v, bool) else [k, v] for k, v in flags.items()]
        command = [item for items in command for item in items]
        for seed in seeds:
            rest = ["--start-state", start, "--seed", str(seed), "--total-gradient-steps", str(steps)]
            rest += ["--eval-frequency", "10000"]
            found.append(Run(run_name(point, start, seed, steps), "rbc_lunar.py", (*command, *rest)))
    return found


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} (1 seed)"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):.2f}"


def report(args: argparse.Namespace) -> None:
    print(
        "| point | flags changed from B | start | steps | final greedy (100 eps) | best periodic (10 eps) | per seed |"
    )
    print("|---|---|---|---|---|---|---|")
    for point, changes, start, seeds, steps in POINTS:
        done = [args.results / run_name(point, start, s, steps) for s in seeds]
        done = [folder for folder in done if (folder / "results.json").exists()]
        if not done:
            continue
        results = [json.loads((d / "results.json").read_text()) for d in done]
        finals = [result["final_greedy_success"] for result in results]
        periodic = r"eval greedy return [-\d.]+ success ([\d.]+)"
        best = [max(map(float, re.findall(periodic, (d / "log.txt").read_text()))) for d in done]
        change = " ".join(" ".join(switch(k, v) if isinstance(v, bool) else [k, v]) for k, v in changes.items())
        change = change or "-"
        per_seed = " / ".join(f"{f:.2f}" for f in finals)
        if all("final_greedy_success_unaveraged" in result for result in results):  # the same runs' own network
            unaveraged = [result["final_greedy_success_unaveraged"] for result in results]
            per_seed += f" (unaveraged: {' / '.join(f'{u:.2f}' for u in unaveraged)}, {cell(unaveraged)})"
        print(f"| {point} | `{change}` | {start} | {steps // 1000}k | {cell(finals)} | {cell(best)} | {per_seed} |")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", nargs="*", help="run only these points (default: every missing run)")
