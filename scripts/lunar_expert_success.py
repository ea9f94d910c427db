"""Strict landing success of a saved LunarLander Q network (`rbc_lunar.py --save-model`) from each start.

    python scripts/lunar_expert_success.py runs/<run>/rbc_lunar.pt --episodes 100

Plays the greedy policy (as `collect_demos.py --expert-model` records it) for `--episodes` episodes
from every start distribution of `rbc_lunar.py`, episode i reset with seed `--seed + i`, and prints
the success rate (docs/lunar_lander.md, "Landing success") and the mean return per start.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import rbc_lunar  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a file written by rbc_lunar.py --save-model")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--starts", nargs="+", default=["demo", "shifted", "wide"], choices=["demo", "shifted", "wide"])
    args = parser.parse_args()
    if not Path(args.model).is_file():
        sys.exit(f"error: model {args.model} does not exist.")
    saved = torch.load(args.model, weights_only=False)
    q_network = rbc_lunar.QNetwork(8, 4)
    q_network.load_state_dict(saved["q_network"])
    for start in args.starts:
        env = rbc_lunar.make_env(saved["args"]["env_id"], start, args.seed)
        rng = np.random.default_rng(args.seed)
        results = [
            rbc_lunar.run_episode(env, q_network, "greedy", 1.0, rng, seed=args.seed + i)[1:]
            for i in range(args.episodes)
        ]
        returns, lengths, successes = zip(*results)
        print(
            f"{start} start: success {np.mean(successes):.2f}, return {np.mean(returns):.1f}, "
            f"mean length {np.mean(lengths):.0f}, {args.episodes} episodes"
        )
