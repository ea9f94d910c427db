"""Strict landing success of the scripted LunarLander expert (`collect_demos.lunar_expert`, the
expert behind demos/LunarLander-v3.npz) from each start state of rbc_lunar.py.

    python scripts/lunar_scripted_expert_success.py --episodes 100
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import rbc_lunar  # noqa: E402
from collect_demos import lunar_expert  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed `seed + i`")
    args = parser.parse_args()
    for start in ("demo", "shifted", "wide"):
        env = rbc_lunar.make_env("LunarLander-v3", start, args.seed)
        successes, returns = [], []
        for i in range(args.episodes):
            obs, _ = env.reset(seed=args.seed + i)
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(lunar_expert(env, obs))
                done = terminated or truncated
            successes.append(rbc_lunar.landing_success(env, obs, terminated))
            returns.append(info["episode"]["r"])
        print(
            f"{start} start: success {np.mean(successes):.2f}, return {np.mean(returns):.1f}, {args.episodes} episodes"
        )
