"""Strict landing success of a saved LunarLander Q network (`rbc_lunar.py --save-model`) from each start.

    python scripts/lunar_expert_success.py runs/<run>/rbc_lunar.pt --episodes 100
    python scripts/lunar_expert_success.py runs/<run>/rbc_lunar.pt --starts shifted --outcomes

Plays the greedy policy (as `collect_demos.py --expert-model` records it) for `--episodes` episodes
from every start distribution of `rbc_lunar.py`, episode i reset with seed `--seed + i`, and prints
the success rate (docs/lunar_lander.md, "Landing success") and the mean return per start.
`--outcomes` also says how each episode ended, by the side it started on: landed, at rest elsewhere
(outside the flags or not on both legs), crashed (a body touched the ground), off screen (|x| >= 1),
or the time limit. `--action-gap` prints how far apart the best and the second-best action's Q values are
on the states the episodes visit (and on a demonstration file's states with `--demo-path`): where the gap is
small beside the values themselves, a small change of the network flips the greedy action.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import rbc_lunar  # noqa: E402


def action_gap(q_network, states: np.ndarray, alpha: float) -> str:
    with torch.no_grad():
        q = np.sort(q_network(torch.as_tensor(np.asarray(states), dtype=torch.float32)).numpy(), axis=1)
    gaps = q[:, -1] - q[:, -2]
    return (
        f"mean max Q {q[:, -1].mean():.1f}, median gap between the best two actions {np.median(gaps):.3f}, "
        f"{(gaps < alpha).mean():.2f} of the states below alpha = {alpha} ({len(states)} states)"
    )


OUTCOMES = ("landed", "at rest elsewhere", "crashed", "off screen", "time limit")


def outcome(env, episode, success: bool) -> str:
    """How an episode ended, read off its last transition and the lander's final state."""
    if success:
        return "landed"
    if not episode["terminated"][-1]:
        return "time limit"
    if abs(episode["next_obs"][-1][0]) >= 1.0:
        return "off screen"
    return "crashed" if env.unwrapped.lander.awake else "at rest elsewhere"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a file written by rbc_lunar.py --save-model")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", nargs="+", default=["demo", "shifted", "wide"], choices=["demo", "shifted", "wide"])
    parser.add_argument("--outcomes", action="store_true", help="count how the episodes ended, by start side")
    parser.add_argument("--per-episode", action="store_true", help="one line per episode: start, end, outcome")
    parser.add_argument("--action-gap", action="store_true", help="the Q gap between the best two actions")
    parser.add_argument("--demo-path", help="with --action-gap: also on this demonstration file's states")
    args = parser.parse_args()
    if not Path(args.model).is_file():
        sys.exit(f"error: model {args.model} does not exist.")
    saved = torch.load(args.model, weights_only=False)
    q_network = rbc_lunar.QNetwork(8, 4, saved["args"].get("ensemble_size", 1), saved["args"].get("dueling", False))
    alpha = saved["args"]["alpha"]
    q_network.load_state_dict(saved["q_network"])
    for start in args.starts:
        env = rbc_lunar.make_env(saved["args"]["env_id"], start, args.seed)
        rng = np.random.default_rng(args.seed)
        returns, lengths, successes, ends, states = [], [], [], Counter(), []
        for i in range(args.episodes):
            episode, episodic_return, length, success = rbc_lunar.run_episode(
                env, q_network, "greedy", 1.0, rng, seed=args.seed + i
            )
            returns.append(episodic_return), lengths.append(length), successes.append(success)
            states.extend(episode["obs"])
            if args.per_episode:
                first, last = episode["obs"][0], episode["next_obs"][-1]
                print(
                    f"  episode {i}: start x {first[0]:+.2f} (x velocity {first[2]:+.2f}), end x {last[0]:+.2f} "
                    f"y {last[1]:+.2f} (velocity {last[2]:+.2f}, {last[3]:+.2f}; angle {last[4]:+.2f}), "
                    f"{length} steps, {outcome(env, episode, success)}"
                )
            side = "left" if episode["obs"][0][0] < 0 else "right"
            ends[side, outcome(env, episode, success)] += 1
        print(
            f"{start} start: success {np.mean(successes):.2f}, return {np.mean(returns):.1f}, "
            f"mean length {np.mean(lengths):.0f}, {args.episodes} episodes"
        )
        if args.outcomes:
            for side in ("left", "right"):
                counts = ", ".join(f"{name} {ends[side, name]}" for name in OUTCOMES)
                print(f"  started {side} of centre ({sum(ends[side, name] for name in OUTCOMES)}): {counts}")
        if args.action_gap:
            print(f"  action gap on these episodes' states: {action_gap(q_network, states, alpha)}")
    if args.action_gap and args.demo_path:
        print(f"action gap on {args.demo_path}: {action_gap(q_network, np.load(args.demo_path)['obs'], alpha)}")
