"""SQIL and RBC on LunarLander, with the paper's ablations (Reddy, Dragan, Levine; Section 5.4).

    python rbc_lunar.py --start-state shifted                 # SQIL (Algorithm 1) with this file's defaults
    python rbc_lunar.py --loss rbc --start-state shifted      # RBC (Eq. 5)
    python rbc_lunar.py --loss rbc --rbc-lambda 0             # plain BC (Eq. 4) on the same network
    python rbc_lunar.py --paper-values                        # the paper's printed LunarLander values
    python rbc_lunar.py --reward-source env --start-state wide --save-model   # soft Q-learning on the true reward

One soft Q network Q(s, .) plays every part: the policy is pi(a|s) = exp((Q(s,a) - V(s)) / alpha)
with V(s) = alpha * logsumexp(Q(s, .) / alpha) (Eq. 1-2). Algorithm 1 alternates gradient steps
with rollouts: one rollout of the imitation policy every `k` gradient steps.
"""

import copy
import json
import os
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = True
    """if toggled, cuda will be used when available"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "sqil"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the final evaluation (`videos/` folder)"""
    save_model: bool = False
    """whether to save the final Q network into `runs/{run_name}`, and the one of the best periodic greedy
    evaluation (the latest of ties) beside it as `{exp_name}_best.pt`"""

    # Algorithm specific arguments
    env_id: str = "LunarLander-v3"
    """the id of the environment"""
    demo_path: str = str(Path(__file__).resolve().parent / "demos" / "LunarLander-v3.npz")
    """the demonstration file (format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes (default: all; the paper used 100)"""
    reward_source: Literal["demos", "env"] = "demos"
    """demos: imitation from the demonstration file (SQIL or RBC); env: soft Q-learning on the environment's own
    reward, without demonstrations (for training an expert)"""
    loss: Literal["sqil", "rbc"] = "sqil"
    """sqil: Algorithm 1, B(D_demo, r_demo) + lambda_samp B(D_samp, 0); rbc: Eq. 5, BC + lambda B(D_demo u D_samp, 0)"""
    start_state: Literal["demo", "shifted", "wide"] = "demo"
    """start states while training: the environment's own (demo), the shifted start never seen in the demos
    (x = +-0.7), or x uniform in [-0.8, 0.8] (wide: covers both, for training an expert)"""
    eval_start_state: Literal["demo", "shifted", "wide"] | None = None
    """start states for evaluation (default: the same as `start_state`)"""
    rollout_policy: Literal["imitation", "uniform"] = "imitation"
    """who samples the rollouts added to D_samp: pi_theta (Algorithm 1) or a uniform random policy (ablation)"""
    epsilon_start: float = 0.0
    """probability of a uniform random action in the first training rollouts, decaying linearly (epsilon-greedy
    on top of the Boltzmann policy; 0: the Boltzmann policy alone, as Algorithm 1)"""
    epsilon_end: float = 0.0
    """probability of a uniform random action in training rollouts after `epsilon_decay_steps` env steps"""
    epsilon_decay_steps: int = 100_000
    """env steps over which epsilon decays from `epsilon_start` to `epsilon_end`"""
    max_episode_steps: int | None = None
    """cut episodes after this many steps, as truncations (default: the environment's own 1,000)"""
    total_gradient_steps: int = 100_000
    """gradient steps of Algorithm 1 (line 4)"""
    k: int = 200
    """one rollout every k gradient steps (Algorithm 1, line 5; paper: 200 for LunarLander)"""
    lambda_samp: float = 1.0
    """weight of the Bellman error on agent transitions (SQIL; the paper printed 1e-6 for LunarLander)"""
    rbc_lambda: float = 1.0
    """weight lambda of the Bellman error penalty in RBC (Eq. 5); 0 gives plain BC (Eq. 4)"""
    r_demo: float = 1.0
    """reward of demonstration transitions (SQIL)"""
    r_samp: float = 0.0
    """reward of the agent's own transitions (SQIL: 0); with --absorbing constant a positive value pays for every
    step an agent episode lasts, as GAIL-DQL-B's always positive reward does (a diagnosis, docs/lunar_lander.md)"""
    paper_values: bool = False
    """use the paper's printed LunarLander values instead of the defaults: lambda_samp 1e-6, alpha 1, absorbing
    constant (V(s_T) = 0), no value clipping, no policy averaging (gamma is the paper's 0.99 already); they do
    not land here (docs/lunar_lander.md)"""
    r_abs: float = 0.0
    """reward per step in an absorbing state: V(terminal) = r_abs / (1 - gamma)"""
    absorbing: Literal["constant", "reward", "learned"] = "reward"
    """value of the absorbing state after a termination. constant: r_abs / (1 - gamma) (paper, Section 2);
    reward: r / (1 - gamma), the reward r of the transition that entered it (r_demo after a demonstration,
    0 after the agent's own episodes; with --reward-source env, which has no such constant, r_abs / (1 - gamma));
    learned: an explicit absorbing state valued by Bellman backups like any other (Kostrikov et al. 2019)"""
    clip_values: bool = True
    """clip the bootstrapped soft value V(s') to the range every soft value lies in when rewards are r_demo and 0:
    [0, (r_demo + alpha log |A|) / (1 - gamma)] (imitation only: --reward-source env never clips; the paper does
    not clip)"""
    td_loss: Literal["mse", "huber"] = "mse"
    """the penalty on each soft Bellman error e: mse, e^2 (Eq. 6, the paper's); huber, e^2 for |e| <= 1 and 2|e| - 1
    beyond (twice DQN's Huber loss, so that small errors weigh as with mse; large ones pull with a bounded gradient)"""
    munchausen: float = 0.0
    """Munchausen soft Q-learning: add munchausen * alpha * log pi(a|s) (the target network's policy, log pi
    clipped to [-1, 0]) to every reward (Vieillard et al. 2020 use 0.9; 0: off, the paper's SQIL)"""
    n_step: int = 1
    """bootstrap from the state n steps on: the target is the discounted sum of the next n rewards (fewer where
    the episode ends first) plus gamma^n V(s_{t+n}), leaving out the intermediate steps' entropy bonuses
    (uncorrected n-step returns, as in Rainbow; 1: the paper's one-step target, Eq. 6)"""
    dueling: bool = False
    """the Q network's last layer outputs V(s) and advantages, Q = V + A - mean A (Wang et al. 2016; the paper:
    Q directly)"""
    ensemble_size: int = 1
    """Q networks fit side by side; Q is their elementwise minimum, in the targets and in acting (clipped double Q
    with 2; 1: the paper's single network)"""
    alpha: float = 0.08
    """temperature of the Boltzmann policy and the soft value (the paper's LunarLander value: 1)"""
    gamma: float = 0.99
    """the discount factor gamma (the paper's LunarLander value)"""
    learning_rate: float = 3e-4
    """the learning rate of Adam (the paper does not print its value)"""
    anneal_lr: bool = False
    """decay the learning rate linearly from `learning_rate` to 0 over the gradient steps"""
    batch_size: int = 128
    """transitions per gradient step: half demonstrations, half agent transitions"""
    buffer_size: int = 1_000_000
    """capacity of the agent's replay buffer D_samp (demonstrations are kept apart and never evicted)"""
    tau: float = 1.0
    """target network update rate (1.0: hard copy)"""
    target_network_frequency: int = 100
    """gradient steps between target network updates"""
    policy_averaging: float = 0.9998
    """evaluate (and save) an exponential moving average of the Q network's weights, updated with this decay after
    every gradient step (0.9998 averages over about the last 5,000 steps; 0: the network itself); training
    rollouts always act with the network itself"""
    eval_frequency: int = 20_000
    """gradient steps between periodic evaluations (the budget's unit, as --total-gradient-steps)"""
    eval_episodes: int = 10
    """episodes per periodic evaluation and policy (greedy and stochastic)"""
    final_eval_episodes: int = 100
    """episodes of the final evaluation, per policy"""


# ---------------------------------------------------------------------------------------------
# Environment: LunarLander, optionally from the shifted start, and landing success.
# ---------------------------------------------------------------------------------------------
SHIFTED_X = 0.7  # |x| of the shifted start, in observation units (the flags are at |x| = 0.2)
WIDE_X = 0.8  # the wide start draws x uniformly from [-WIDE_X, WIDE_X]


class ShiftedStart(gym.Wrapper):
    """Starts the lander at the top of the screen but at x = +-0.7 (side drawn from the env's RNG)
    instead of x = 0; `wide=True` draws x uniformly from [-0.8, 0.8] instead. The bundled
    demonstrations never visit |x| > 0.6 while y > 1.0 (checked in tests/test_rbc_lunar.py), so every
    shifted episode begins in a state no demonstration has seen."""

    def __init__(self, env: gym.Env, wide: bool = False):
        super().__init__(env)
        self.wide = wide

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        lunar = self.env.unwrapped
        if self.wide:
            x = lunar.np_random.uniform(-WIDE_X, WIDE_X)
        else:
            x = SHIFTED_X if lunar.np_random.random() < 0.5 else -SHIFTED_X
        dx = x * (600 / 30.0 / 2)  # observation x -> world metres (VIEWPORT_W / SCALE / 2)
        for body in [lunar.lander, *lunar.legs]:
            body.position = (body.position[0] + dx, body.position[1])
        obs, *_, info = lunar.step(0)  # one no-op step to read the moved state (and reset reward shaping)
        return obs, info


class AbsorbingFlag(gym.ObservationWrapper):
    """Appends the absorbing-state flag, 0, to every observation (`--absorbing learned`). The absorbing
    state itself, all zeros with the flag 1, exists only in the replay buffers."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        low, high = np.append(space.low, 0).astype(np.float32), np.append(space.high, 1).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)

    def observation(self, obs):
        return np.append(obs, 0).astype(np.float32)


def make_env(
    env_id: str,
    start_state: str,
    seed: int,
    max_episode_steps: int | None = None,
    video_folder: str | None = None,
    absorbing_flag: bool = False,
) -> gym.Env:
    env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode="rgb_array" if video_folder else None)
    if start_state in ("shifted", "wide"):
        env = ShiftedStart(env, wide=start_state == "wide")
    if absorbing_flag:
        env = AbsorbingFlag(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # the true environment return, never the SQIL reward
    if video_folder:
        env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
    env.action_space.seed(seed)
    return env


def landing_success(env: gym.Env, obs: np.ndarray, terminated: bool) -> bool:
    """At rest (Box2D put the lander to sleep), both legs down, centre between the flags."""
    return bool(terminated and not env.unwrapped.lander.awake and abs(obs[0]) <= 0.2 and obs[6] > 0 and obs[7] > 0)


# ---------------------------------------------------------------------------------------------
# Demonstrations (format: docs/demonstrations.md); each script carries this small loader.
# ---------------------------------------------------------------------------------------------
class DemoError(ValueError):
    """A demonstration file that cannot be used, with the one sentence that says why."""


def load_demos(path: str, env: gym.Env, num_episodes: int | None) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        lengths = data["episode_lengths"]
    except Exception as error:
        raise DemoError(
            f"{path} is not a demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    expected_obs = {
        "type": "Box",
        "shape": list(env.observation_space.shape),
        "dtype": str(env.observation_space.dtype),
    }
    expected_act = {"type": "Discrete", "n": int(env.action_space.n)}
    if metadata["observation_space"] != expected_obs or metadata["action_space"] != expected_act:
        raise DemoError(
            f"{path} holds observations {metadata['observation_space']} and actions "
            f"{metadata['action_space']}, but the environment has {expected_obs} and {expected_act}."
        )
    if num_episodes is not None and not 1 <= num_episodes <= len(lengths):
        raise DemoError(f"--num-demos {num_episodes} is not between 1 and the {len(lengths)} episodes of {path}.")
    obs = data["obs"]
    ends = np.cumsum(lengths) - 1  # the last step of every episode
    next_obs = np.concatenate([obs[1:], obs[:1]])
    next_obs[ends] = data["final_obs"]
    steps = int(lengths[:num_episodes].sum())
    return dict(
        obs=obs[:steps],
        actions=data["actions"][:steps],
        next_obs=next_obs[:steps],
        terminated=data["terminated"][:steps],
        episode_ends=np.isin(np.arange(steps), ends),
    )


# ---------------------------------------------------------------------------------------------
# The soft Q network and the objectives (paper Eq. 1-6).
# ---------------------------------------------------------------------------------------------
def dueling_q_values(outputs):
    """Q(s, a) = V(s) + A(s, a) - mean_a A(s, a), from a last layer that outputs [V(s), A(s, .)] (Wang et al.
    2016); works on NumPy arrays and tensors alike."""
    value, advantages = outputs[..., :1], outputs[..., 1:]
    return value + advantages - advantages.mean(-1)[..., None]


class QNetwork(nn.Module):
    """Two fully connected layers of 128 units (paper, Section A.3). With `ensemble_size` N > 1, N such
    networks, each fit to the same targets, and Q(s, .) is their elementwise minimum (clipped double Q,
    Fujimoto et al. 2018): where the members disagree, off the data, the pessimistic one decides. With
    `dueling`, the last layer outputs a state value and advantages instead of Q (`dueling_q_values`): a
    gradient step on one action's Q moves the value of every action, so the small differences between
    actions, which decide the greedy policy, are learned apart from the large common value."""

    def __init__(self, obs_dim: int, n_actions: int, ensemble_size: int = 1, dueling: bool = False):
        super().__init__()
        outputs = n_actions + 1 if dueling else n_actions

        def mlp():
            return nn.Sequential(
                nn.Linear(obs_dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, outputs)
            )

        self.dueling = dueling
        self.network = mlp()
        self.others = nn.ModuleList(mlp() for _ in range(ensemble_size - 1))  # none without an ensemble

    def members(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's Q(s, .), stacked: shape (ensemble_size, batch, actions)."""
        if not len(self.others):
            outputs = self.network(x)[None]  # a view: one network costs nothing extra
        else:
            outputs = torch.stack([self.network(x), *(member(x) for member in self.others)])
        return dueling_q_values(outputs) if self.dueling else outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not len(self.others) and not self.dueling:
            return self.network(x)
        return self.members(x).amin(0)


def soft_value(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """V(s) = alpha * log sum_a exp(Q(s, a) / alpha)  (Eq. 2)."""
    return alpha * torch.logsumexp(q_values / alpha, dim=-1)


def soft_bellman_error(
    q_sa, next_q_values, rewards, terminated, gamma, alpha: float, absorbing_value, value_range=None
):
    """Q(s, a) - (r + gamma V(s')), the term squared in B (Eq. 6). A terminated transition enters an
    absorbing state whose value is `absorbing_value` (a number, or one per row); a truncated one
    bootstraps from s'. `gamma` is a number or one discount per row (gamma^m for an m-step transition).
    `value_range` (low, high), if given, clips V(s') into it."""
    next_v = soft_value(next_q_values, alpha)
    if value_range is not None:
        next_v = next_v.clamp(*value_range)
    next_v = torch.where(terminated, absorbing_value, next_v)
    return q_sa - (rewards + gamma * next_v)


def bellman_penalty(errors: torch.Tensor, td_loss: str) -> torch.Tensor:
    """The per-row penalty B on soft Bellman errors: the square (Eq. 6), or with `td_loss="huber"` the square
    up to |e| = 1 and 2|e| - 1 beyond, so that one far-off target cannot dominate a batch's gradient."""
    if td_loss == "mse":
        return errors**2
    return 2.0 * F.huber_loss(errors, torch.zeros_like(errors), reduction="none", delta=1.0)


MUNCHAUSEN_LOG_PI_MIN = 1.0  # log pi is clipped to [-1, 0] in the bonus (Vieillard et al. 2020: l_0 = -1)


def munchausen_bonus(target_q_values, actions, alpha: float, scale: float) -> torch.Tensor:
    """Munchausen RL (Vieillard et al. 2020): `scale * alpha * log pi(a|s)`, pi the target network's Boltzmann
    policy, clipped below at -1 nats. Added to every reward, it makes the soft Q-learner regularise each
    policy towards the previous one (KL) and widens the gaps between actions' Q values by 1 / (1 - scale)."""
    log_pi = (target_q_values - soft_value(target_q_values, alpha)[..., None]) / alpha
    log_pi = log_pi.gather(-1, actions[:, None]).squeeze(-1)
    return scale * alpha * log_pi.clamp(-MUNCHAUSEN_LOG_PI_MIN, 0.0)


def soft_value_range(r_min: float, r_max: float, alpha: float, gamma: float, n_actions: int):
    """Every soft value lies in [r_min, r_max + alpha log |A|] / (1 - gamma): each step pays a reward
    in [r_min, r_max] and an entropy bonus alpha H(pi(.|s)) in [0, alpha log |A|] (Eq. 1-2)."""
    return r_min / (1.0 - gamma), (r_max + alpha * float(np.log(n_actions))) / (1.0 - gamma)


def absorbing_value(rewards: torch.Tensor, absorbing: str, r_abs: float, gamma: float, imitation: bool):
    """V(s_T) after a termination (Section 2): the paper's constant r_abs / (1 - gamma), or with
    `--absorbing reward` r / (1 - gamma) per row, the reward of the transition that entered the absorbing
    state repeated forever (r_demo after a demonstration, 0 after the agent). Learning from the
    environment's reward, where that would repeat a landing's +100 forever, keeps the constant."""
    if absorbing == "reward" and imitation:
        return rewards / (1.0 - gamma)
    return r_abs / (1.0 - gamma)


@torch.no_grad()
def average_weights(average: nn.Module, network: nn.Module, decay: float) -> None:
    """An exponential moving average of weights, one step: w_avg <- decay * w_avg + (1 - decay) * w."""
    for averaged, current in zip(average.parameters(), network.parameters()):
        averaged.lerp_(current, 1.0 - decay)


def bc_nll(q_values: torch.Tensor, actions: torch.Tensor, alpha: float) -> torch.Tensor:
    """-log pi(a|s) = -(Q(s, a) - V(s)) / alpha  (Eq. 4, with the temperature written out)."""
    return -(q_values.gather(1, actions[:, None]).squeeze(1) - soft_value(q_values, alpha)) / alpha


class TransitionBuffer:
    """Transitions (s, a, r, s', terminated, discount, last reward) held as tensors on the training device;
    with one-step targets the discount is gamma and the last reward r (`n_step_transitions` makes them). SQIL
    keeps two: the demonstrations, filled once with r = r_demo and never evicted, and the agent's own, r = 0,
    a circular buffer."""

    def __init__(self, capacity: int, obs_dim: int, device: torch.device):
        self.obs = torch.zeros((capacity, obs_dim), device=device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.discounts = torch.zeros(capacity, device=device)
        self.last_rewards = torch.zeros(capacity, device=device)
        self.fields = (self.obs, self.actions, self.rewards, self.next_obs, self.terminated)
        self.fields += (self.discounts, self.last_rewards)
        self.capacity, self.size, self.position, self.device = capacity, 0, 0, device

    def add(self, obs, actions, rewards, next_obs, terminated, discounts, last_rewards) -> None:
        """Adds a batch of transitions (a whole rollout at once), overwriting the oldest when full."""
        n = min(len(actions), self.capacity)
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for buffer, values in zip(self.fields, (obs, actions, rewards, next_obs, terminated, discounts, last_rewards)):
            buffer[rows] = torch.as_tensor(np.asarray(values)[-n:], device=self.device).to(buffer.dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int):
        idx = torch.randint(0, self.size, (n,), device=self.device)
        return [field[idx] for field in self.fields]


def n_step_transitions(obs, actions, rewards, next_obs, terminated, episode_ends, n: int, gamma: float):
    """From each step t, m = min(n, steps left in its episode) steps on: the discounted sum of the m rewards,
    s_{t+m}, whether the episode terminated there, gamma^m (the bootstrap's discount) and the m-th reward (an
    absorbing state's value, `--absorbing reward`, repeats it). `episode_ends` marks each episode's last step;
    with n = 1 this is the one-step transition itself, discount gamma."""
    rewards, length = np.asarray(rewards, dtype=np.float32), len(actions)
    ends = np.flatnonzero(episode_ends)
    steps_left = ends[np.searchsorted(ends, np.arange(length))] - np.arange(length) + 1
    m = np.minimum(n, steps_left)
    last = np.arange(length) + m - 1
    returns = np.zeros(length, dtype=np.float32)
    for i in range(n):  # reward i steps on, where the episode lasts that long
        returns += np.where(i < m, gamma**i * rewards[np.minimum(np.arange(length) + i, length - 1)], 0.0)
    discounts = (gamma**m).astype(np.float32)
    return obs, actions, returns, np.asarray(next_obs)[last], np.asarray(terminated)[last], discounts, rewards[last]


def with_absorbing_states(obs, actions, rewards, next_obs, terminated, n_actions: int):
    """Kostrikov et al. (2019), Section 4.2: a terminated transition leads to an explicit absorbing
    state instead of s_T, and the absorbing state loops to itself under every action. Nothing is
    terminal any more: every target bootstraps, and the self-loops get the reward of whoever reached
    it (r_demo after a demonstration, 0 after the agent's own episode: the rewards of the transitions
    that terminated). Observations carry the absorbing flag as their last feature."""
    next_obs, terminated = np.array(next_obs, dtype=np.float32), np.asarray(terminated, dtype=bool)
    absorbing_state = np.zeros(next_obs.shape[1], dtype=np.float32)
    absorbing_state[-1] = 1.0
    next_obs[terminated] = absorbing_state
    loops = np.tile(absorbing_state, (int(terminated.sum()) * n_actions, 1))
    loop_actions = np.tile(np.arange(n_actions), int(terminated.sum()))
    loop_rewards = np.repeat(np.asarray(rewards, dtype=np.float32)[terminated], n_actions)
    return (
        np.concatenate([np.asarray(obs, dtype=np.float32), loops]),
        np.concatenate([np.asarray(actions), loop_actions]),
        np.concatenate([np.asarray(rewards, dtype=np.float32), loop_rewards]),
        np.concatenate([next_obs, loops]),
        np.zeros(len(next_obs) + len(loops), dtype=bool),
    )


def balanced_batch(demo_buffer: TransitionBuffer, agent_buffer: TransitionBuffer, batch_size: int):
    """SQIL's balanced sample (Section 4): rows [:batch_size // 2] from D_demo, the rest from D_samp,
    however few agent transitions there are yet."""
    half = batch_size // 2
    return [torch.cat(pair) for pair in zip(demo_buffer.sample(half), agent_buffer.sample(batch_size - half))]


# ---------------------------------------------------------------------------------------------
# Acting: one episode with the imitation policy (Boltzmann or greedy) or the uniform policy.
# ---------------------------------------------------------------------------------------------
def numpy_q_function(q_network: QNetwork):
    """The Q network's current weights as a NumPy function of one observation. Acting calls the network
    once per env step on a single 8-number state; NumPy does that in microseconds, a PyTorch call costs
    about 0.5 ms of overhead. The weights are copied, so call this again after gradient steps."""
    members = [
        [(m.weight.detach().cpu().numpy().T, m.bias.detach().cpu().numpy()) for m in network[::2]]
        for network in (q_network.network, *q_network.others)
    ]

    def member_q_values(obs: np.ndarray, layers) -> np.ndarray:
        x = obs
        for weight, bias in layers[:-1]:
            x = np.maximum(x @ weight + bias, 0.0)
        outputs = x @ layers[-1][0] + layers[-1][1]
        return dueling_q_values(outputs) if q_network.dueling else outputs

    def q_values(obs: np.ndarray) -> np.ndarray:
        if len(members) == 1:
            return member_q_values(obs, members[0])
        return np.min([member_q_values(obs, layers) for layers in members], axis=0)

    return q_values


def boltzmann_action(q_values: np.ndarray, alpha: float, rng: np.random.Generator) -> int:
    """A draw from pi(a|s) proportional to exp(Q(s, a) / alpha) (Eq. 1), by the Gumbel-max trick."""
    return int(np.argmax(q_values / alpha + rng.gumbel(size=q_values.shape[-1])))


def run_episode(
    env: gym.Env, q_network: QNetwork, policy: str, alpha: float, rng: np.random.Generator, seed=None, epsilon=0.0
):
    """Plays one episode, each action uniform with probability `epsilon` and from `policy` otherwise; returns
    its transitions (with the environment's rewards), true return, length and landing success."""
    q_values = numpy_q_function(q_network)
    obs, _ = env.reset(seed=seed)
    episode = {"obs": [], "actions": [], "rewards": [], "next_obs": [], "terminated": []}
    done = False
    while not done:
        if policy == "uniform":
            action = env.action_space.sample()
        elif epsilon > 0.0 and rng.random() < epsilon:  # no draw at all when epsilon is 0
            action = int(rng.integers(env.action_space.n))
        elif policy == "greedy":
            action = int(np.argmax(q_values(obs)))
        else:
            action = boltzmann_action(q_values(obs), alpha, rng)
        next_obs, reward, terminated, truncated, info = env.step(action)
        for key, value in zip(episode, (obs, action, reward, next_obs, terminated)):
            episode[key].append(value)
        obs, done = next_obs, terminated or truncated
    stats = info["episode"]
    return (
        {k: np.asarray(v) for k, v in episode.items()},
        float(stats["r"]),
        int(stats["l"]),
        landing_success(env, obs, terminated),
    )


def evaluate(env: gym.Env, q_network: QNetwork, policy: str, episodes: int, alpha: float, seed: int):
    rng = np.random.default_rng(seed)  # evaluation draws its own actions: it leaves training's streams alone
    results = [run_episode(env, q_network, policy, alpha, rng, seed=seed + i)[1:] for i in range(episodes)]
    returns, _, successes = zip(*results)
    return float(np.mean(returns)), float(np.mean(successes))


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


# Section A.3 and Section 2; the paper evaluates the network itself, not an average of its weights
PAPER_VALUES = dict(lambda_samp=1e-6, alpha=1.0, absorbing="constant", clip_values=False, policy_averaging=0.0)


def check_args(args: Args) -> str | None:
    """The one sentence that explains why these flags cannot run, or None."""
    positive = ("total_gradient_steps", "k", "batch_size", "buffer_size", "target_network_frequency", "ensemble_size")
    positive += ("eval_frequency", "eval_episodes", "final_eval_episodes")
    for name in positive:
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}."
    if args.batch_size < 2 and args.reward_source == "demos":
        return "--batch-size must be at least 2: half of every batch comes from each buffer."
    if not 0.0 <= args.gamma < 1.0:
        return f"--gamma must be in [0, 1), not {args.gamma}: absorbing states are worth r / (1 - gamma)."
    if args.alpha <= 0.0:
        return f"--alpha must be positive, not {args.alpha} (a small value approaches the hard max)."
    for name in ("epsilon_start", "epsilon_end"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            return f"--{name.replace('_', '-')} must be a probability in [0, 1], not {getattr(args, name)}."
    if args.epsilon_decay_steps < 1:
        return f"--epsilon-decay-steps must be at least 1, not {args.epsilon_decay_steps}."
    if not 0.0 < args.tau <= 1.0:
        return f"--tau must be in (0, 1], not {args.tau}."
    if not 0.0 <= args.munchausen < 1.0:
        return f"--munchausen must be in [0, 1), not {args.munchausen}."
    if args.n_step < 1:
        return f"--n-step must be at least 1, not {args.n_step}."
    if args.n_step > 1 and (args.munchausen or args.absorbing == "learned"):
        return "--n-step above 1 takes neither --munchausen nor --absorbing learned (both are written for one-step targets)."
    if not 0.0 <= args.policy_averaging < 1.0:
        return f"--policy-averaging must be in [0, 1), not {args.policy_averaging}."
    defaults = Args()
    if args.paper_values:  # a flag beside --paper-values that sets one of its values would be lost
        for name in PAPER_VALUES:
            if getattr(args, name) != getattr(defaults, name):
                return f"--paper-values sets --{name.replace('_', '-')}; give one or the other."
    if args.loss == "rbc" and args.r_samp != 0.0:
        return "--r-samp is a reward of SQIL's; RBC's penalty gives every transition 0 (Eq. 5)."
    if args.reward_source == "env":
        imitation_only = ("demo_path", "num_demos", "loss", "rollout_policy", "lambda_samp", "rbc_lambda")
        imitation_only += ("r_demo", "r_samp")
        changed = [name for name in imitation_only if getattr(args, name) != getattr(defaults, name)]
        if args.absorbing == "learned":
            changed.append("absorbing learned")
        if changed:
            flags = ", ".join("--" + name.replace("_", "-") for name in changed)
            return f"--reward-source env learns from the environment's reward alone; it takes no {flags}."
    return None


if __name__ == "__main__":
    args = tyro.cli(Args)
    if error := check_args(args):
        fail(error)
    if args.paper_values:
        args = replace(args, **PAPER_VALUES)
    eval_start_state = args.eval_start_state or args.start_state
    run_name = (
        f"{args.env_id}__{args.exp_name}__{args.loss if args.reward_source == 'demos' else 'env-reward'}"
        f"__{args.start_state}__{args.seed}"
        f"__{int(time.time())}__{os.getpid()}"  # the process id keeps runs started in the same second apart
    )
    if args.track:
        try:
            import wandb
        except ImportError:
            fail("--track needs Weights and Biases: pip install wandb")
        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=vars(args),
            name=run_name,
            save_code=True,
        )
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()),
    )

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    learned_absorbing = args.absorbing == "learned"
    try:
        env = make_env(args.env_id, args.start_state, args.seed, args.max_episode_steps, None, learned_absorbing)
        eval_env = make_env(
            args.env_id, eval_start_state, args.seed + 10_000, args.max_episode_steps, None, learned_absorbing
        )
    except gym.error.Error as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    if not isinstance(env.action_space, gym.spaces.Discrete) or not hasattr(env.unwrapped, "lander"):
        fail(f"rbc_lunar.py needs a LunarLander environment with discrete actions, not {args.env_id!r}.")
    obs_dim, n_actions = env.observation_space.shape[0], int(env.action_space.n)

    q_network = QNetwork(obs_dim, n_actions, args.ensemble_size, args.dueling).to(device)
    target_network = QNetwork(obs_dim, n_actions, args.ensemble_size, args.dueling).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # one kernel per step
    # The policy that is evaluated and saved: the network itself, or an average of its recent weights
    # (--policy-averaging), which greedy evaluations from the shifted start swing less with (docs/lunar_lander.md).
    # A copy, not a new network: drawing no initial weights leaves the random streams, and so training, as without it.
    policy_network = copy.deepcopy(q_network) if args.policy_averaging else q_network

    # D_demo: the demonstrations with reward r_demo (SQIL; 0 in RBC's penalty), never evicted.
    # D_samp: the agent's rollouts with reward 0 (imitation) or the environment's reward (--reward-source env).
    imitation = args.reward_source == "demos"
    agent_buffer = TransitionBuffer(args.buffer_size, obs_dim, device)
    if imitation:
        try:
            demos = load_demos(args.demo_path, env.unwrapped, args.num_demos)
        except DemoError as error:
            fail(str(error))
        demo_reward = args.r_demo if args.loss == "sqil" else 0.0
        agent_reward = args.r_samp if args.loss == "sqil" else 0.0
        demo_obs, demo_next_obs = demos["obs"], demos["next_obs"]
        if learned_absorbing:  # a zero flag column: no demonstration state is absorbing
            demo_obs, demo_next_obs = np.pad(demo_obs, ((0, 0), (0, 1))), np.pad(demo_next_obs, ((0, 0), (0, 1)))
        demo_transitions = (demo_obs, demos["actions"], np.full(len(demo_obs), demo_reward), demo_next_obs)
        demo_transitions = (*demo_transitions, demos["terminated"])
        demo_ends = demos["episode_ends"]
        if learned_absorbing:  # one-step targets only (check_args): every row is its own segment
            demo_transitions = with_absorbing_states(*demo_transitions, n_actions)
            demo_ends = np.ones(len(demo_transitions[1]), dtype=bool)
        demo_buffer = TransitionBuffer(len(demo_transitions[1]), obs_dim, device)
        demo_buffer.add(*n_step_transitions(*demo_transitions, demo_ends, args.n_step, args.gamma))
    half = args.batch_size // 2
    value_range = None  # where every soft value lies (imitation: rewards demo_reward and agent_reward, or r_abs)
    if imitation:
        rewards_seen = (demo_reward, agent_reward) + ((args.r_abs,) if args.absorbing == "constant" else ())
        lowest = min(rewards_seen) - args.munchausen * args.alpha * MUNCHAUSEN_LOG_PI_MIN  # the bonus is <= 0
        value_range = soft_value_range(lowest, max(rewards_seen), args.alpha, args.gamma, n_actions)
    clip_range = value_range if args.clip_values else None

    rollout_policy = "boltzmann" if args.rollout_policy == "imitation" else "uniform"
    env.reset(seed=args.seed)  # seeds the environment's RNG; later resets continue its stream
    rng = np.random.default_rng(args.seed)  # the Boltzmann policy's action draws in training rollouts
    env_steps, training_successes, best_eval, start_time = 0, [], {}, time.time()
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    progress = tqdm(range(args.total_gradient_steps), "gradient steps", disable=None, mininterval=2.0)
    for step in progress:
        # Algorithm 1, lines 5-7: every k gradient steps, one rollout joins D_samp (the first before
        # any gradient step, so that both halves of every batch exist from the start).
        if step % args.k == 0:
            decay = min(1.0, env_steps / args.epsilon_decay_steps)
            epsilon = args.epsilon_start + decay * (args.epsilon_end - args.epsilon_start)
            rollout, episodic_return, length, success = run_episode(
                env, q_network, rollout_policy, args.alpha, rng, epsilon=epsilon
            )
            rollout_rewards = rollout["rewards"] if not imitation else np.full(len(rollout["rewards"]), agent_reward)
            transitions = (rollout["obs"], rollout["actions"], rollout_rewards, rollout["next_obs"])
            transitions = (*transitions, rollout["terminated"])
            ends = np.arange(len(rollout["actions"])) == len(rollout["actions"]) - 1  # one episode
            if learned_absorbing:  # one-step targets only (check_args): every row is its own segment
                transitions = with_absorbing_states(*transitions, n_actions)
                ends = np.ones(len(transitions[1]), dtype=bool)
            agent_buffer.add(*n_step_transitions(*transitions, ends, args.n_step, args.gamma))
            if args.rollout_policy == "uniform":  # the ablation's rollouts say nothing of pi_theta: measure it
                _, episodic_return, length, success = run_episode(env, q_network, "boltzmann", args.alpha, rng)
            env_steps += len(rollout["actions"])
            training_successes.append(success)
            writer.add_scalar("charts/episodic_return", episodic_return, step)
            writer.add_scalar("charts/episodic_length", length, step)
            writer.add_scalar("charts/success", success, step)
            writer.add_scalar("charts/env_steps", env_steps, step)
            writer.add_scalar("charts/epsilon", epsilon, step)

        # Algorithm 1, line 4: one gradient step on a batch of half demonstrations, half agent
        # transitions (plain soft Q-learning, --reward-source env: agent transitions only).
        if imitation:
            batch = balanced_batch(demo_buffer, agent_buffer, args.batch_size)
        else:
            batch = agent_buffer.sample(args.batch_size)
        obs, actions, rewards, next_obs, terminated, discounts, last_rewards = batch
        member_q_values = q_network.members(obs)  # every member fits the same targets (one member: plain SQIL)
        q_values = member_q_values.amin(0)  # the Q that acts, and that BC's likelihood reads
        q_sa = member_q_values.gather(2, actions.expand(len(member_q_values), -1)[..., None]).squeeze(2)
        with torch.no_grad():
            next_q_values = target_network(next_obs)
        v_terminal = absorbing_value(last_rewards, args.absorbing, args.r_abs, args.gamma, imitation)
        if args.munchausen:  # the bonus joins the reward of every step, never the absorbing state's value
            with torch.no_grad():
                rewards = rewards + munchausen_bonus(target_network(obs), actions, args.alpha, args.munchausen)
        errors = soft_bellman_error(
            q_sa, next_q_values, rewards, terminated, discounts, args.alpha, v_terminal, clip_range
        )
        penalties = bellman_penalty(errors, args.td_loss)
        bellman_demo, bellman_samp = penalties[..., :half].mean(), penalties[..., half:].mean()
        if not imitation:  # soft Q-learning: the mean soft Bellman penalty
            loss = penalties.mean()
        elif args.loss == "sqil":  # Eq. 8: B(D_demo, r_demo) + lambda_samp * B(D_samp, 0), as batch means
            loss = bellman_demo + args.lambda_samp * bellman_samp
        else:  # Eq. 5: BC negative log-likelihood (Eq. 4) + lambda * B(D_demo u D_samp, 0)
            bc_loss = bc_nll(q_values[:half], actions[:half], args.alpha).mean()
            loss = bc_loss + args.rbc_lambda * penalties.mean()
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1.0 - step / args.total_gradient_steps)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if args.policy_averaging:
            average_weights(policy_network, q_network, args.policy_averaging)

        if step % args.target_network_frequency == 0:
            for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                target_param.data.copy_(args.tau * param.data + (1.0 - args.tau) * target_param.data)

        if step % 1000 == 0:
            writer.add_scalar("losses/loss", loss.item(), step)
            if imitation:  # the two halves of the balanced batch
                writer.add_scalar("losses/bellman_demo", bellman_demo.item(), step)
                writer.add_scalar("losses/bellman_samp", bellman_samp.item(), step)
                writer.add_scalar("losses/q_demo", q_sa[..., :half].mean().item(), step)
                writer.add_scalar("losses/q_samp", q_sa[..., half:].mean().item(), step)
            if imitation and args.loss == "rbc":
                writer.add_scalar("losses/bc", bc_loss.item(), step)
            writer.add_scalar("losses/q_values", q_sa.mean().item(), step)
            if value_range is not None:  # bootstrapped values outside their range: what --clip-values clips
                next_v = soft_value(next_q_values, args.alpha)
                writer.add_scalar("losses/below_range_fraction", (next_v < value_range[0]).float().mean().item(), step)
                writer.add_scalar("losses/above_range_fraction", (next_v > value_range[1]).float().mean().item(), step)
            elapsed = time.time() - start_time
            writer.add_scalar("charts/SPS", int(env_steps / elapsed), step)
            writer.add_scalar("charts/gradient_steps_per_s", int((step + 1) / elapsed), step)
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], step)

        if (step + 1) % args.eval_frequency == 0:
            for policy in ("greedy", "boltzmann"):
                mean_return, success_rate = evaluate(
                    eval_env,
                    policy_network,
                    policy,
                    args.eval_episodes,
                    args.alpha,
                    seed=args.seed + 1_000_000 + step,
                )
                writer.add_scalar(f"eval/{policy}_episodic_return", mean_return, step)
                writer.add_scalar(f"eval/{policy}_success", success_rate, step)
                if args.save_model and policy == "greedy" and success_rate >= best_eval.get(policy, 0.0):
                    best = {"args": vars(args), "q_network": policy_network.state_dict(), "gradient_steps": step + 1}
                    torch.save(best, f"runs/{run_name}/{args.exp_name}_best.pt")
                best_eval[policy] = max(best_eval.get(policy, 0.0), success_rate)
                progress.set_postfix_str(f"eval {policy} success {success_rate:.2f}", refresh=False)
                tqdm.write(
                    f"step {step + 1}: env steps {env_steps}, eval {policy} return {mean_return:.1f} success {success_rate:.2f}"
                )

    # The paper's metric (Figure 4): the best success rate over 100 consecutive training episodes.
    wall_time = time.time() - start_time
    print(
        f"trained {args.total_gradient_steps} gradient steps and {env_steps} env steps in {wall_time:.0f} s "
        f"({args.total_gradient_steps / wall_time:.0f} gradient steps/s, {env_steps / wall_time:.0f} env steps/s)"
    )
    window = min(100, len(training_successes))
    best_training_success = float(np.convolve(training_successes, np.ones(window) / window, "valid").max())
    print(f"best success over {window} consecutive training episodes: {best_training_success:.2f}")
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save({"args": vars(args), "q_network": policy_network.state_dict()}, model_path)
        print(f"model saved to {model_path}")
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_env = make_env(
        args.env_id, eval_start_state, args.seed + 20_000, args.max_episode_steps, video_folder, learned_absorbing
    )
    results = {
        "args": vars(args),
        "env_steps": env_steps,
        "training_episodes": len(training_successes),
        "best_training_success": best_training_success,
        "best_training_success_window": window,
        **{f"best_eval_{policy}_success": value for policy, value in best_eval.items()},  # periodic evaluations
        "wall_time_s": wall_time,
        "device": str(device),
    }
    for policy in ("greedy", "boltzmann"):
        mean_return, success_rate = evaluate(
            final_env, policy_network, policy, args.final_eval_episodes, args.alpha, seed=args.seed + 2_000_000
        )
        writer.add_scalar(f"eval/final_{policy}_episodic_return", mean_return, args.total_gradient_steps)
        writer.add_scalar(f"eval/final_{policy}_success", success_rate, args.total_gradient_steps)
        results[f"final_{policy}_return"], results[f"final_{policy}_success"] = mean_return, success_rate
        print(
            f"final {policy} evaluation ({eval_start_state} start): return {mean_return:.1f}, success {success_rate:.2f}"
        )
    if args.policy_averaging:  # the network that trained, on the same episodes: what averaging changed, paired
        mean_return, success_rate = evaluate(
            final_env, q_network, "greedy", args.final_eval_episodes, args.alpha, seed=args.seed + 2_000_000
        )
        results["final_greedy_return_unaveraged"], results["final_greedy_success_unaveraged"] = (
            mean_return,
            success_rate,
        )
        print(
            f"final greedy evaluation of the unaveraged network: return {mean_return:.1f}, success {success_rate:.2f}"
        )
    final_env.close()
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    env.close()
    writer.close()
