"""Summarises the training episodes of a run from its TensorBoard log (no training).

    python scripts/training_episodes.py runs/<run name> [--block 5000]

Prints, for each block of environment steps, how many training episodes ended in it and their mean
length and return (`charts/episodic_length`, `charts/episodic_return`), then every fifth logged value
of the critic and entropy scalars the run has. docs/mujoco.md uses it to show when Humanoid runs
start falling early.
"""

import argparse

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run's TensorBoard folder, runs/<run name>")
    parser.add_argument("--block", type=int, default=5000, help="environment steps per printed block")
    args = parser.parse_args()
    log = EventAccumulator(args.run_dir, size_guidance={"scalars": 0})
    log.Reload()
    lengths, returns = log.Scalars("charts/episodic_length"), log.Scalars("charts/episodic_return")
    print("| steps | episodes | mean length | mean return |\n|---|---|---|---|")
    for start in range(0, max(event.step for event in lengths) + 1, args.block):
        block = [(n.value, r.value) for n, r in zip(lengths, returns) if start <= n.step < start + args.block]
        if block:
            length, ret = np.mean(block, axis=0)
            print(f"| {start // 1000}k-{(start + args.block) // 1000}k | {len(block)} | {length:.1f} | {ret:.1f} |")
    for tag in ("losses/alpha", "losses/entropy", "losses/q_demo", "losses/q_samp"):
        if tag in log.Tags()["scalars"]:
            values = log.Scalars(tag)[4::5]
            print(tag + ": " + ", ".join(f"{event.step // 1000}k {event.value:.2f}" for event in values))
