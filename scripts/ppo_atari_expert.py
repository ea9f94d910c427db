"""Trains an Atari expert with PPO on the game score, to record demonstrations from (docs/atari.md, "Experts").

    python scripts/ppo_atari_expert.py --env-id PongNoFrameskip-v4 --total-timesteps 3000000 \
        --checkpoint-frequency 50000                         # stop at any time ...
    python scripts/ppo_atari_expert.py --env-id PongNoFrameskip-v4 --total-timesteps 3000000 \
        --checkpoint-frequency 50000 --resume checkpoints/<run name>.pt      # ... and go on exactly
    python collect_demos.py --env-id PongNoFrameskip-v4 --expert-model runs/<run name>/expert.pt

Not part of SQIL: the paper's experts were DQN agents; this is PPO (Schulman et al. 2017) as CleanRL's
`ppo_atari.py` runs it, because on a CPU it reaches an expert in fewer updates. The expert plays the very
environment the demonstrations are recorded in (`sqil_dqn_atari.make_env`: 30 no-op resets, frame skip 4,
84x84 grayscale, 4 stacked frames, full games), so what it learned is what it shows. Training alone adds
CleanRL's two signals, neither of which changes an observation: the clipped reward sign(r), and a lost
life counted as an episode's end for the advantage estimates (the game itself goes on). A truncated game
(ALE's frame cap) ends the estimate without bootstrapping too, as in CleanRL.

The policy network is the Nature DQN network of `sqil_dqn_atari.QNetwork`, its last layer giving the
policy's logits; a value head shares its hidden layer. The expert saved for `collect_demos.py` is that
QNetwork alone, acting greedily (the argmax of the logits), as the paper's experts acted near-greedily.
"""

import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqil_dqn_atari import ATARI_EVAL_MAX_STEPS, QNetwork, evaluate, game_states, make_env, restore_games  # noqa: E402


@dataclass
class Args:
    exp_name: str = "ppo_atari_expert"
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    cuda: bool = True
    """if toggled, cuda will be used when available"""
    env_id: str = "PongNoFrameskip-v4"
    """the id of the environment (any `*NoFrameskip-v4` game)"""
    total_timesteps: int = 10_000_000
    """total environment steps (agent steps of 4 frames, all environments together)"""
    num_envs: int = 8
    """the number of parallel game environments"""
    num_steps: int = 128
    """steps per environment in each rollout"""
    learning_rate: float = 2.5e-4
    """the learning rate of Adam"""
    anneal_lr: bool = True
    """anneal the learning rate linearly to 0 at --total-timesteps (a resumed run with another length re-plans it)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """lambda of the generalised advantage estimate"""
    num_minibatches: int = 4
    """minibatches per epoch"""
    update_epochs: int = 4
    """epochs over each rollout"""
    clip_coef: float = 0.1
    """the surrogate clipping coefficient"""
    ent_coef: float = 0.01
    """coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """coefficient of the value loss"""
    max_grad_norm: float = 0.5
    """the maximum norm of the gradient (clipping)"""
    eval_frequency: int = 100_000
    """env steps between greedy evaluations; 0: none until the end"""
    eval_episodes: int = 5
    """games per evaluation, of at most 4,500 agent steps each (the demonstrations' cap)"""
    checkpoint_frequency: int = 0
    """env steps between checkpoints in `checkpoints/` (networks, optimiser, counters, RNG and game states); 0: none"""
    resume: str | None = None
    """continue the run saved in this checkpoint exactly where it stopped, its games included"""


# What a resumed run may change; every other flag defines the experiment and must be the checkpoint's.
RESUMABLE = {"exp_name", "cuda", "total_timesteps", "eval_frequency", "eval_episodes", "checkpoint_frequency", "resume"}


class Agent(nn.Module):
    """The policy (a QNetwork whose outputs are logits) and a value head on its 512 hidden units."""

    def __init__(self, n_actions: int):
        super().__init__()
        self.policy = QNetwork(n_actions)
        self.value = nn.Linear(512, 1)

    def forward(self, obs: torch.Tensor):
        hidden = self.policy.network[:-1]((obs / 255.0).contiguous(memory_format=torch.channels_last))
        return self.policy.network[-1](hidden), self.value(hidden).squeeze(-1)


def advantages_and_returns(rewards, values, dones, next_value, next_done, gamma: float, gae_lambda: float):
    """Generalised advantage estimates (Schulman et al. 2016) over a rollout of T steps. dones[t] says that the
    observation of step t began a new episode (or life), so step t - 1 does not bootstrap from it."""
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        following_done, following_value = (
            (next_done, next_value) if t == len(rewards) - 1 else (dones[t + 1], values[t + 1])
        )
        delta = rewards[t] + gamma * following_value * (1.0 - following_done) - values[t]
        last = delta + gamma * gae_lambda * (1.0 - following_done) * last
        advantages[t] = last
    return advantages, advantages + values


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    if min(args.total_timesteps, args.num_envs, args.num_steps, args.num_minibatches, args.update_epochs) < 1:
        fail("--total-timesteps, --num-envs, --num-steps, --num-minibatches and --update-epochs must be at least 1.")
    if (args.num_envs * args.num_steps) % args.num_minibatches:
        fail(f"--num-minibatches {args.num_minibatches} must divide the rollout of {args.num_envs * args.num_steps}.")
    checkpoint = None
    if args.resume:
        try:
            checkpoint = torch.load(args.resume, map_location="cpu", weights_only=False)
            saved = {**vars(args), **checkpoint["args"]}
            checkpoint["games"], checkpoint["agent"]  # what only this script's checkpoints hold
        except Exception as error:
            fail(f"{args.resume} is not a checkpoint of ppo_atari_expert.py ({type(error).__name__}: {error}).")
        if changed := [key for key, value in vars(args).items() if key not in RESUMABLE and saved[key] != value]:
            fail(
                f"{args.resume} was run with "
                + ", ".join(f"--{key.replace('_', '-')} {saved[key]} (now {getattr(args, key)})" for key in changed)
                + "; a resumed run keeps the checkpoint's settings."
            )
    run_name = (
        checkpoint["run_name"] if checkpoint else f"{args.env_id}__{args.exp_name}__{args.seed}__{int(time.time())}"
    )
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    if not args.env_id.endswith("NoFrameskip-v4"):
        fail(f"ppo_atari_expert.py plays Atari games as `<Game>NoFrameskip-v4`, not {args.env_id!r}.")
    try:
        envs = gym.vector.SyncVectorEnv(
            [make_env(args.env_id, args.seed + i) for i in range(args.num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
    except gym.error.Error as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    agent = Agent(int(envs.single_action_space.n)).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in vars(args).items())
    )

    batch_size = args.num_envs * args.num_steps
    iterations = args.total_timesteps // batch_size
    obs_shape = envs.single_observation_space.shape
    obs = torch.zeros((args.num_steps, args.num_envs, *obs_shape), dtype=torch.uint8, device=device)
    actions, logprobs, rewards, dones, values = (
        torch.zeros((args.num_steps, args.num_envs), device=device) for _ in range(5)
    )

    next_obs, infos = envs.reset(seed=args.seed)
    next_done, lives = np.zeros(args.num_envs, dtype=bool), infos["lives"]
    iteration, global_step = 0, 0
    if checkpoint:
        agent.load_state_dict(checkpoint["agent"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_games(envs, checkpoint["games"])
        next_obs, next_done, lives = checkpoint["next_obs"], checkpoint["next_done"], checkpoint["lives"]
        iteration, global_step = checkpoint["iteration"], checkpoint["global_step"]
        random.setstate(checkpoint["python_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        print(f"resumed {run_name} at env step {global_step} from {args.resume}")

    def save_checkpoint() -> None:
        """Between two iterations: the rollout storage is refilled anyway. Written atomically."""
        Path("checkpoints").mkdir(exist_ok=True)
        path = f"checkpoints/{run_name}.pt"
        state = dict(
            args=vars(args),
            run_name=run_name,
            agent=agent.state_dict(),
            optimizer=optimizer.state_dict(),
            games=game_states(envs),
            next_obs=next_obs,
            next_done=next_done,
            lives=lives,
            iteration=iteration,
            global_step=global_step,
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            torch_rng=torch.get_rng_state(),
        )
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)
        tqdm.write(f"env step {global_step}: checkpoint saved to {path}")

    def save_expert() -> str:
        """The policy as a QNetwork of logits, for `collect_demos.py --expert-model`."""
        path = f"runs/{run_name}/expert.pt"
        torch.save({"policy": agent.policy.state_dict(), "args": vars(args), "env_steps": global_step}, path)
        return path

    def evaluate_greedy(episodes: int, seed: int) -> list[float]:
        returns, _ = evaluate(args.env_id, agent.policy, episodes, seed, device, ATARI_EVAL_MAX_STEPS)
        writer.add_scalar("eval/greedy_episodic_return", np.mean(returns), global_step)
        tqdm.write(f"env step {global_step}: greedy evaluation {np.mean(returns):.1f} ({returns})")
        return returns

    start_step, start_time, recent_scores = global_step, time.time(), []
    progress = tqdm(total=iterations * batch_size, initial=global_step, desc="env steps", disable=None, mininterval=2.0)
    while iteration < iterations:
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / iterations) * args.learning_rate

        # The rollout: num_steps steps of every environment with the current stochastic policy.
        for step in range(args.num_steps):
            obs[step] = torch.as_tensor(next_obs, device=device)
            dones[step] = torch.as_tensor(next_done, device=device, dtype=torch.float32)
            with torch.no_grad():
                logits, value = agent(obs[step])
                distribution = torch.distributions.Categorical(logits=logits)
                action = distribution.sample()
            actions[step], logprobs[step], values[step] = action, distribution.log_prob(action), value
            next_obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
            life_lost = infos["lives"] < lives  # after an autoreset the new game's lives: no loss counted
            lives = infos["lives"]
            next_done = terminated | truncated | life_lost
            rewards[step] = torch.as_tensor(np.sign(reward), device=device, dtype=torch.float32)
            global_step += args.num_envs
            for i in np.flatnonzero(terminated | truncated):
                score = float(infos["final_info"]["episode"]["r"][i])
                writer.add_scalar("charts/episodic_return", score, global_step)
                writer.add_scalar("charts/episodic_length", infos["final_info"]["episode"]["l"][i], global_step)
                recent_scores = [*recent_scores[-9:], score]
                progress.set_postfix_str(f"game score {score:.0f}", refresh=False)
        progress.update(batch_size)

        with torch.no_grad():
            _, next_value = agent(torch.as_tensor(next_obs, device=device))
        next_done_tensor = torch.as_tensor(next_done, device=device, dtype=torch.float32)
        advantages, returns = advantages_and_returns(
            rewards, values, dones, next_value, next_done_tensor, args.gamma, args.gae_lambda
        )

        # The update: update_epochs epochs of clipped-surrogate steps on minibatches of the rollout.
        b_obs, b_actions, b_logprobs = obs.flatten(0, 1), actions.flatten(0, 1).long(), logprobs.flatten(0, 1)
        b_advantages, b_returns, b_values = advantages.flatten(), returns.flatten(), values.flatten()
        minibatch_size = batch_size // args.num_minibatches
        for _ in range(args.update_epochs):
            order = torch.randperm(batch_size, device=device)
            for start in range(0, batch_size, minibatch_size):
                rows = order[start : start + minibatch_size]
                logits, new_values = agent(b_obs[rows])
                distribution = torch.distributions.Categorical(logits=logits)
                log_ratio = distribution.log_prob(b_actions[rows]) - b_logprobs[rows]
                ratio = log_ratio.exp()
                mb_advantages = b_advantages[rows]
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
                policy_loss = torch.max(
                    -mb_advantages * ratio, -mb_advantages * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
                ).mean()
                clipped_values = b_values[rows] + (new_values - b_values[rows]).clamp(-args.clip_coef, args.clip_coef)
                value_loss = (
                    0.5 * torch.max((new_values - b_returns[rows]) ** 2, (clipped_values - b_returns[rows]) ** 2).mean()
                )
                entropy = distribution.entropy().mean()
                loss = policy_loss - args.ent_coef * entropy + args.vf_coef * value_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        iteration += 1

        writer.add_scalar("losses/policy_loss", policy_loss.item(), global_step)
        writer.add_scalar("losses/value_loss", value_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy.item(), global_step)
        writer.add_scalar("losses/approx_kl", ((ratio - 1) - log_ratio).mean().item(), global_step)
        sps = (global_step - start_step) / (time.time() - start_time)
        writer.add_scalar("charts/SPS", sps, global_step)
        if iteration % 10 == 0 and recent_scores:  # progress in a log, where no bar is drawn
            tqdm.write(
                f"env step {global_step}: {sps:.0f} env steps/s, mean of the last 10 games {np.mean(recent_scores):.1f}"
            )
        if (
            args.eval_frequency
            and global_step // args.eval_frequency > (global_step - batch_size) // args.eval_frequency
        ):
            evaluate_greedy(args.eval_episodes, seed=args.seed + 1_000_000 + global_step)
            save_expert()
        last_iteration = iteration == iterations
        if args.checkpoint_frequency and (
            last_iteration
            or global_step // args.checkpoint_frequency > (global_step - batch_size) // args.checkpoint_frequency
        ):
            save_checkpoint()

    progress.close()
    wall_time = time.time() - start_time
    print(f"trained {global_step - start_step} env steps in {wall_time:.0f} s")
    print(f"expert saved to {save_expert()}")
    returns = evaluate_greedy(args.eval_episodes, seed=args.seed + 2_000_000)
    results = {"args": vars(args), "env_steps": global_step, "final_greedy_returns": returns, "wall_time_s": wall_time}
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    envs.close()
    writer.close()
