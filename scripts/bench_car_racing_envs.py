"""Environment steps per second of `sqil_car_racing.run_episodes` (Boltzmann policy of an untrained
network) for several `--num-envs`: how much the environments in subprocesses speed up the rollouts and
evaluations of `sqil_car_racing.py`. Each setting plays `--rounds` rounds of one episode per environment.

    python scripts/bench_car_racing_envs.py --num-envs 1 2 --max-episode-steps 500
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import sqil_car_racing as car  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 2])
parser.add_argument("--max-episode-steps", type=int, default=500)
parser.add_argument("--rounds", type=int, default=2)
parser.add_argument("--start-state", default="rotated")
parser.add_argument("--device", default="cpu")
args = parser.parse_args()

torch.manual_seed(0)
device = torch.device(args.device)
q_network = car.QNetwork(5).to(device)
for num_envs in args.num_envs:
    envs = car.make_vector_env("CarRacing-v3", args.start_state, 0, num_envs, args.max_episode_steps)
    car.run_episodes(envs, q_network, "boltzmann", 0.1, device, seeds=list(range(num_envs)))  # warm up
    start, steps = time.perf_counter(), 0
    for _ in range(args.rounds):
        steps += sum(episode[4] for episode in car.run_episodes(envs, q_network, "boltzmann", 0.1, device))
    elapsed = time.perf_counter() - start
    envs.close()
    print(f"num_envs {num_envs}: {steps} env steps in {elapsed:.1f} s, {steps / elapsed:.0f} env steps/s", flush=True)
