"""Steady-state speed and peak memory of sqil_dqn_atari.py beside a standard DQN reference, same
machine, same game, batch size, train frequency and buffer size. Not a test: a benchmark.

The reference is CleanRL's dqn_atari.py loop (hard-max DQN, Nature network, plain Adam, Stable
Baselines3's ReplayBuffer of stacked frames with optimize_memory_usage=True, SB3's Atari wrappers),
re-written here for gymnasium 1.x (CleanRL's file targets older wrapper names) with one change for
a fair comparison: epsilon is held at its final 0.01, so the reference runs its network on almost
every step, as it does for most of a real run (CleanRL's first 1M steps are mostly random actions).

    pip install stable-baselines3==2.9.2   # the reference's buffer and wrappers
    python scripts/bench_dqn_atari.py --total-timesteps 6000 --learning-starts 1000 --train-frequency 1 4

Each configuration runs in its own process; "peak RSS" is that process's maximum resident memory,
"steady" is env steps per second from the first gradient step to the end.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def reference(args) -> None:
    """CleanRL's dqn_atari.py training loop (gymnasium 1.x names), printing the steady-state speed."""
    import ale_py
    import gymnasium as gym
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    try:
        from stable_baselines3.common.atari_wrappers import (
            ClipRewardEnv,
            EpisodicLifeEnv,
            FireResetEnv,
            MaxAndSkipEnv,
            NoopResetEnv,
        )
        from stable_baselines3.common.buffers import ReplayBuffer
    except ImportError:
        sys.exit("error: the reference needs Stable Baselines3: pip install stable-baselines3==2.9.2")

    gym.register_envs(ale_py)

    def make_env():
        env = gym.make(args.env_id)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = NoopResetEnv(env, noop_max=30)
        env = MaxAndSkipEnv(env, skip=4)
        env = EpisodicLifeEnv(env)
        if "FIRE" in env.unwrapped.get_action_meanings():
            env = FireResetEnv(env)
        env = ClipRewardEnv(env)
        env = gym.wrappers.ResizeObservation(env, (84, 84))
        env = gym.wrappers.GrayscaleObservation(env)
        env = gym.wrappers.FrameStackObservation(env, 4)
        env.action_space.seed(args.seed)
        return env

    class QNetwork(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.network = nn.Sequential(
                nn.Conv2d(4, 32, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(3136, 512),
                nn.ReLU(),
                nn.Linear(512, n),
            )

        def forward(self, x):
            return self.network(x / 255.0)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = True
    device = torch.device(args.device)
    envs = gym.vector.SyncVectorEnv([make_env], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    q_network = QNetwork(envs.single_action_space.n).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4)
    target_network = QNetwork(envs.single_action_space.n).to(device)
    target_network.load_state_dict(q_network.state_dict())
    rb = ReplayBuffer(
        args.buffer_size,
        envs.single_observation_space,
        envs.single_action_space,
        device,
        optimize_memory_usage=True,
        handle_timeout_termination=False,
    )
    obs, _ = envs.reset(seed=args.seed)
    learning_start = None
    for global_step in range(args.total_timesteps):
        if random.random() < 0.01:
            actions = np.array([envs.single_action_space.sample()])
        else:
            q_values = q_network(torch.Tensor(obs).to(device))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        real_next_obs = next_obs.copy()
        for idx, trunc in enumerate(truncations):
            if trunc:
                real_next_obs[idx] = infos["final_obs"][idx]
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
        obs = next_obs
        if global_step > args.learning_starts:
            if global_step % args.train_frequency == 0:
                data = rb.sample(args.batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data.next_observations).max(dim=1)
                    td_target = data.rewards.flatten() + 0.99 * target_max * (1 - data.dones.flatten())
                old_val = q_network(data.observations).gather(1, data.actions).squeeze()
                loss = F.mse_loss(td_target, old_val)
                if global_step % 100 == 0:  # CleanRL logs (and so synchronises) every 100 steps
                    loss.item(), old_val.mean().item()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                learning_start = learning_start or (global_step, time.time())
            if global_step % 1000 == 0:
                target_network.load_state_dict(q_network.state_dict())
    steps = args.total_timesteps - learning_start[0]
    print(f"steady state since the first gradient step: {steps / (time.time() - learning_start[1]):.1f} env steps/s")


def run(command: list[str]) -> tuple[float | None, float, str]:
    """Runs one configuration in its own process: (steady env steps/s, peak RSS in MiB, output)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    match = re.search(r"steady state since the first gradient step: ([\d.]+)", output)
    if status != 0 or not match:
        print(output[-3000:])
    return (float(match.group(1)) if match else None), usage.ru_maxrss / 1024, output


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    parser.add_argument("--total-timesteps", type=int, default=6000)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--train-frequency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--demo-path", default=None, help="passed to sqil_dqn_atari.py")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["ours", "reference"], default=None)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.reference:
        args.train_frequency = args.train_frequency[0]
        reference(args)
        sys.exit()

    import torch

    common = ["--env-id", args.env_id, "--total-timesteps", str(args.total_timesteps), "--seed", str(args.seed)]
    common += ["--learning-starts", str(args.learning_starts), "--batch-size", str(args.batch_size)]
    common += ["--buffer-size", str(args.buffer_size)]
    print(
        f"{args.env_id}, {args.total_timesteps} env steps, learning from {args.learning_starts}, batch "
        f"{args.batch_size}, buffer {args.buffer_size:,}, device {args.device}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, torch threads default"
    )
    print("| implementation | train frequency | steady env steps/s | peak RSS (MiB) |")
    print("|---|---|---|---|")
    for frequency in args.train_frequency:
        ours = [sys.executable, "sqil_dqn_atari.py", *common, "--train-frequency", str(frequency)]
        ours += ["--eval-frequency", "0", "--eval-episodes", "0"]
        ours += ["--no-cuda"] if args.device == "cpu" else []
        ours += ["--demo-path", args.demo_path] if args.demo_path else []
        theirs = [sys.executable, __file__, "--reference", *common, "--train-frequency", str(frequency)]
        theirs += ["--device", args.device]
        for name, command in (
            ("sqil_dqn_atari.py (soft Q, SQIL batch)", ours),
            ("CleanRL-style DQN reference", theirs),
        ):
            if args.only and not name.startswith({"ours": "sqil", "reference": "CleanRL"}[args.only]):
                continue
            sps, rss, _ = run(command)
            print(f"| {name} | {frequency} | {sps if sps is None else f'{sps:.1f}'} | {rss:.0f} |", flush=True)
