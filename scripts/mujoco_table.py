"""Prints the MuJoCo results of docs/mujoco.md from the logs in results/mujoco/ (no training).

    python scripts/mujoco_table.py                        # every environment
    python scripts/mujoco_table.py --env-id Humanoid-v5   # one: docs/mujoco.md has a table per environment

A run directory is named <row>__<env>__<N>demos__<seed>; SQIL rows read the deterministic
evaluations that sqil_sac_continuous.py prints every --eval-frequency steps, BC rows the final
evaluations that bc.py prints (rows BC and BC-<variant>).
"""

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent.parent / "results" / "mujoco"


def runs(env_id: str | None):
    """{(row, env, demos): {seed: log text}}"""
    found = defaultdict(dict)
    for log in sorted(RESULTS.glob("*__*demos__*/log.txt")):  # not the experts' runs (SAC-expert__<env>__<seed>)
        row, env, demos, seed = log.parent.name.split("__")
        if env_id and env != env_id:
            continue
        found[(row, env, int(demos.removesuffix("demos")))][int(seed)] = log.read_text()
    return found


def fmt(values) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{np.mean(values):,.0f} ± {np.std(values, ddof=1) / np.sqrt(len(values)):,.0f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", help="only this environment's runs")
    found = runs(parser.parse_args().env_id)
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
