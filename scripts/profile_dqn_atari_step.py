"""Where one environment step of sqil_dqn_atari.py spends its time, part by part, on a device: to find
why the file is slower than the DQN reference on a GPU (docs/benchmarks.md, Atari). Not a test.

Each part runs --repeats times on filled buffers and an untrained network; on CUDA every timing ends
with a synchronize, so a part's cost includes the GPU work it launched.

    python scripts/profile_dqn_atari_step.py --device cuda
"""

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import sqil_dqn_atari as atari  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
parser.add_argument("--repeats", type=int, default=500)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

device = torch.device(args.device)
torch.manual_seed(0)
np.random.seed(0)
envs = gym.vector.SyncVectorEnv([atari.make_env(args.env_id, 0)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
n_actions = int(envs.single_action_space.n)
q_network = atari.QNetwork(n_actions).to(device, memory_format=torch.channels_last)
target_network = atari.QNetwork(n_actions).to(device, memory_format=torch.channels_last)
optimizer = torch.optim.Adam(q_network.parameters(), lr=1e-4, fused=device.type == "cuda")
demo_buffer = atari.FrameReplayBuffer(5_000, 1, (84, 84), device)
agent_buffer = atari.FrameReplayBuffer(5_000, 1, (84, 84), device)
obs, _ = envs.reset(seed=0)
for buffer in (demo_buffer, agent_buffer):
    buffer.start_episodes(np.arange(1), obs[:, -1])
    for _ in range(2_000):
        buffer.add(np.arange(1), obs[:, -1], np.zeros(1, dtype=np.int64), np.zeros(1, dtype=bool))
half = args.batch_size // 2
rewards = torch.cat([torch.ones(half), torch.zeros(args.batch_size - half)]).to(device)


def act_boltzmann():
    with torch.no_grad():
        return atari.boltzmann_actions(q_network(torch.as_tensor(obs, device=device)), 1.0).cpu().numpy()


def act_greedy():
    with torch.no_grad():
        return q_network(torch.as_tensor(obs, device=device)).argmax(dim=1).cpu().numpy()


def act_boltzmann_on_host():
    with torch.no_grad():
        q_values = q_network(torch.as_tensor(obs, device=device)).cpu()
    return torch.multinomial(F.softmax(q_values, dim=-1), 1).squeeze(1).numpy()


def act_reference_style():  # CleanRL: float conversion on the host, then the copy
    with torch.no_grad():
        return q_network(torch.Tensor(obs).to(device)).argmax(dim=1).cpu().numpy()


def env_step():
    envs.step(np.zeros(1, dtype=np.int64))


def store():
    agent_buffer.add(np.arange(1), obs[:, -1], np.zeros(1, dtype=np.int64), np.zeros(1, dtype=bool))


def sample():
    atari.balanced_batch(demo_buffer, agent_buffer, args.batch_size)


def gradient_step():
    batch_obs, batch_actions, batch_next_obs, batch_terminated = atari.balanced_batch(
        demo_buffer, agent_buffer, args.batch_size
    )
    q_sa = q_network(batch_obs).gather(1, batch_actions[:, None]).squeeze(1)
    with torch.no_grad():
        next_q_values = target_network(batch_next_obs)
    errors = atari.soft_bellman_error(q_sa, next_q_values, rewards, batch_terminated, 0.99, 1.0)
    loss = (errors[:half] ** 2).mean() + (errors[half:] ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(q_network.parameters(), 10.0)
    optimizer.step()


def synchronize():
    if device.type == "cuda":
        torch.cuda.synchronize()


print(f"{args.env_id}, device {device}, batch {args.batch_size}, {args.repeats} repeats, ms per call:")
for part in (
    act_boltzmann,
    act_greedy,
    act_boltzmann_on_host,
    act_reference_style,
    env_step,
    store,
    sample,
    gradient_step,
):
    for _ in range(20):
        part()
    synchronize()
    start = time.perf_counter()
    for _ in range(args.repeats):
        part()
    synchronize()
    print(f"  {part.__name__:24s} {(time.perf_counter() - start) / args.repeats * 1000:7.3f}", flush=True)
