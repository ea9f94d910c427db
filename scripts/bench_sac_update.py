"""Times one SAC gradient step (critic step + the delayed actor and temperature steps) of
sqil_sac_continuous.py against the same step written the way a standard single-file SAC writes it
(CleanRL's sac_continuous_action.py: two separate critic modules, torch.distributions for the
likelihood, plain Adam, the temperature's likelihood recomputed, Polyak updates by copy_), on the
same batch sizes and networks. Not a test: a benchmark, run on a quiet machine.

    python scripts/bench_sac_update.py --env-id HalfCheetah-v5 --steps 2000 --threads 2
"""

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import sqil_sac_continuous as sac  # noqa: E402


def ours(obs_dim, action_space, batch, device, compile_mode=None, gamma=0.99, tau=0.005):
    """The update of sqil_sac_continuous.py (SQIL mode: balanced batch of demo + agent rows). With
    compile_mode, the two loss functions (forward and backward) go through torch.compile."""
    action_dim = action_space.shape[0]
    actor = sac.Actor(obs_dim, action_space).to(device)
    qf, qf_target = (
        sac.TwinSoftQNetwork(obs_dim, action_dim).to(device),
        sac.TwinSoftQNetwork(obs_dim, action_dim).to(device),
    )
    qf_target.load_state_dict(qf.state_dict())
    q_opt = torch.optim.Adam(qf.parameters(), lr=1e-3, fused=True)
    a_opt = torch.optim.Adam(actor.parameters(), lr=3e-4, fused=True)
    log_alpha = torch.zeros((), requires_grad=True, device=device)
    alpha_opt = torch.optim.Adam([log_alpha], lr=3e-4)
    state = {"alpha": log_alpha.exp().detach()}

    def critic_loss(obs, actions, rewards, next_obs, terminated, alpha):
        with torch.no_grad():
            next_actions, next_log_prob, _ = actor(next_obs)
            targets = sac.soft_q_target(
                rewards, qf_target(next_obs, next_actions).min(0).values, next_log_prob, terminated, gamma, alpha
            )
        squared = (qf(obs, actions) - targets) ** 2
        half = len(obs) // 2
        return squared[:, :half].mean(1).sum() + squared[:, half:].mean(1).sum()

    def actor_loss(obs, alpha):
        pi, log_prob, _ = actor(obs)
        return (alpha * log_prob - qf(obs, pi).min(0).values).mean(), log_prob.detach()

    if compile_mode:
        critic_loss = torch.compile(critic_loss, mode=None if compile_mode == "default" else compile_mode)
        actor_loss = torch.compile(actor_loss, mode=None if compile_mode == "default" else compile_mode)

    def step(i, obs, actions, rewards, next_obs, terminated):
        alpha = state["alpha"]
        loss = critic_loss(obs, actions, rewards, next_obs, terminated, alpha)
        q_opt.zero_grad()
        loss.backward()
        q_opt.step()
        if i % 2 == 0:
            qf.requires_grad_(False)
            for _ in range(2):
                loss, log_prob = actor_loss(obs, alpha)
                a_opt.zero_grad()
                loss.backward()
                a_opt.step()
                alpha_loss = (-log_alpha.exp() * (log_prob - action_dim)).mean()
                alpha_opt.zero_grad()
                alpha_loss.backward()
                alpha_opt.step()
                state["alpha"] = log_alpha.exp().detach()
            qf.requires_grad_(True)
        with torch.no_grad():
            for p, tp in zip(qf.parameters(), qf_target.parameters()):
                tp.lerp_(p, tau)

    return step


def standard(obs_dim, action_space, batch, device, gamma=0.99, tau=0.005):
    """The same update in the standard single-file style (two critic modules, distributions, plain Adam)."""
    action_dim = action_space.shape[0]

    def critic():
        return nn.Sequential(
            nn.Linear(obs_dim + action_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1)
        ).to(device)

    trunk = nn.Sequential(nn.Linear(obs_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU()).to(device)
    mean_head, log_std_head = nn.Linear(256, action_dim).to(device), nn.Linear(256, action_dim).to(device)
    actor_params = [*trunk.parameters(), *mean_head.parameters(), *log_std_head.parameters()]
    q1, q2, q1_t, q2_t = critic(), critic(), critic(), critic()
    q1_t.load_state_dict(q1.state_dict())
    q2_t.load_state_dict(q2.state_dict())
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=1e-3)
    a_opt = torch.optim.Adam(actor_params, lr=3e-4)
    log_alpha = torch.zeros(1, requires_grad=True, device=device)
    alpha_opt = torch.optim.Adam([log_alpha], lr=1e-3)
    state = {"alpha": 1.0}

    def get_action(x):
        h = trunk(x)
        log_std = -5 + 3.5 * (torch.tanh(log_std_head(h)) + 1)
        normal = torch.distributions.Normal(mean_head(h), log_std.exp())
        u = normal.rsample()
        y = torch.tanh(u)
        log_prob = (normal.log_prob(u) - torch.log(1 - y.pow(2) + 1e-6)).sum(1, keepdim=True)
        return y, log_prob

    def step(i, obs, actions, rewards, next_obs, terminated):
        alpha = state["alpha"]
        with torch.no_grad():
            na, nl = get_action(next_obs)
            x = torch.cat([next_obs, na], 1)
            target = torch.min(q1_t(x), q2_t(x)) - alpha * nl
            y = rewards + (1 - terminated.float()) * gamma * target.view(-1)
        x = torch.cat([obs, actions], 1)
        loss = F.mse_loss(q1(x).view(-1), y) + F.mse_loss(q2(x).view(-1), y)
        q_opt.zero_grad()
        loss.backward()
        q_opt.step()
        if i % 2 == 0:
            for _ in range(2):
                pi, log_pi = get_action(obs)
                x = torch.cat([obs, pi], 1)
                actor_loss = (alpha * log_pi - torch.min(q1(x), q2(x))).mean()
                a_opt.zero_grad()
                actor_loss.backward()
                a_opt.step()
                with torch.no_grad():
                    _, log_pi = get_action(obs)
                alpha_loss = (-log_alpha.exp() * (log_pi - action_dim)).mean()
                alpha_opt.zero_grad()
                alpha_loss.backward()
                alpha_opt.step()
                state["alpha"] = log_alpha.exp().item()
        for net, net_t in ((q1, q1_t), (q2, q2_t)):
            for p, tp in zip(net.parameters(), net_t.parameters()):
                tp.data.copy_(tau * p.data + (1 - tau) * tp.data)

    return step


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-id", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--compile",
        nargs="*",
        default=[],
        help="also time our update with its loss functions under torch.compile in these modes "
        "(default, reduce-overhead = CUDA graphs, max-autotune-no-cudagraphs)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    env = gym.make(args.env_id)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    n = 50_000
    data = [
        torch.randn(n, obs_dim),
        torch.rand(n, action_dim) * 2 - 1,
        torch.randn(n),
        torch.randn(n, obs_dim),
        torch.rand(n) < 0.01,
    ]
    data = [tensor.to(device) for tensor in data]
    variants = [("sqil_sac_continuous.py", lambda: ours(obs_dim, env.action_space, args.batch_size, device))]
    for mode in args.compile:
        variants.append(
            (
                f"sqil_sac_continuous.py, torch.compile mode={mode}",
                lambda mode=mode: ours(obs_dim, env.action_space, args.batch_size, device, mode),
            )
        )
    variants.append(("standard single-file SAC", lambda: standard(obs_dim, env.action_space, args.batch_size, device)))
    for name, make in variants:
        try:
            step = make()
            compile_start = time.perf_counter()
            for i in range(args.steps + 100):
                if i == 100:  # warm-up (and compilation) excluded
                    torch.cuda.synchronize() if device.type == "cuda" else None
                    start = time.perf_counter()
                idx = torch.randint(0, n, (args.batch_size,), device=device)
                step(i, *(tensor[idx] for tensor in data))
            torch.cuda.synchronize() if device.type == "cuda" else None
            elapsed = time.perf_counter() - start
        except Exception as error:  # a compile mode that fails here is reported, not fatal
            print(f"{name}: failed ({type(error).__name__}: {str(error)[:300]})")
            continue
        print(
            f"{name}: {elapsed / args.steps * 1e3:.2f} ms per environment step's updates "
            f"({args.steps / elapsed:.0f} updates/s; warm-up {start - compile_start:.1f} s), {args.device}, "
            f"{args.threads} threads, torch {torch.__version__}",
            flush=True,
        )
    print(f"numpy {np.__version__}; batch {args.batch_size}; {args.env_id}")
