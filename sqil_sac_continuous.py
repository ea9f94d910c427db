"""SQIL on soft actor-critic, for continuous actions (Reddy, Dragan, Levine; Section 5.3).

    python sqil_sac_continuous.py --env-id HalfCheetah-v5                           # SQIL, r_demo = 10 (paper)
    python sqil_sac_continuous.py --env-id Humanoid-v5                              # SQIL, r_demo = 5 (paper)
    python sqil_sac_continuous.py --env-id Humanoid-v5 --reward-source env --autotune   # plain SAC (the experts)

SQIL changes three things in SAC and nothing else (Section 5.3):
1. the demonstrations enter the replay buffer first, each rewarded with the constant r_demo, and are
   never evicted;
2. the agent's own transitions are rewarded with 0, whatever the environment pays;
3. every critic step draws half of its batch from the demonstrations and half from the agent's own
   transitions: loss = B(D_demo, r_demo) + lambda_samp * B(D_samp, 0) (Eq. 8), with SAC's soft target.
`--reward-source env` undoes all three: plain SAC on the environment's reward, the reinforcement
learning upper bound, and (with `--autotune`) how this project trained the experts behind the bundled
demonstrations. The defaults are the settings of the SQIL results in docs/mujoco.md: a fixed temperature of 0.2,
and on Humanoid the sampled-action demonstrations with lambda_samp = 0.25.
"""

import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

# Defaults that depend on the environment (matched by the start of --env-id; 1 elsewhere): r_demo is the
# paper's (Section A.3); lambda_samp is the paper's 1 except on Humanoid (docs/mujoco.md, Humanoid).
R_DEMO = {"HalfCheetah": 10.0, "Humanoid": 5.0}
LAMBDA_SAMP = {"Humanoid": 0.25}


def env_default(table: dict[str, float]):
    """The flag's --help shows its value per environment instead of None."""
    shown = ", ".join(f"{value:g} on {name}" for name, value in table.items())
    return tyro.conf.arg(metavar="FLOAT", help_behavior_hint=f"(default: {shown}, else 1)")


@dataclasses.dataclass
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
    """whether to save the actor and critics into `runs/{run_name}`"""

    # Algorithm specific arguments
    env_id: str = "HalfCheetah-v5"
    """the id of the environment (any gymnasium environment with vector observations and Box actions)"""
    reward_source: Literal["sqil", "env"] = "sqil"
    """sqil: demonstrations with r_demo, agent transitions with 0, balanced batches; env: plain SAC on the true reward"""
    demo_path: Annotated[
        str | None, tyro.conf.arg(metavar="STR", help_behavior_hint="(default: demos/<env-id>.npz)")
    ] = None
    """the demonstration file (format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes (default: all)"""
    r_demo: Annotated[float | None, env_default(R_DEMO)] = None
    """reward of demonstration transitions (the paper's values, Section A.3)"""
    lambda_samp: Annotated[float | None, env_default(LAMBDA_SAMP)] = None
    """weight of the Bellman error on agent transitions (Eq. 8; the paper: 1)"""
    total_timesteps: int = 1_000_000
    """environment steps of the experiment"""
    max_episode_steps: int | None = None
    """cut episodes after this many steps, as truncations (default: the environment's own, 1,000 for MuJoCo)"""
    buffer_size: int = 1_000_000
    """capacity of the agent's replay buffer (demonstrations are kept apart and never evicted)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 0.005
    """target smoothing coefficient (Polyak averaging)"""
    batch_size: int = 256
    """transitions per gradient step (SQIL: half demonstrations, half agent transitions)"""
    learning_starts: int = 5_000
    """environment steps of uniformly random actions before learning starts"""
    policy_lr: float = 3e-4
    """the learning rate of the actor and of the temperature"""
    q_lr: float = 1e-3
    """the learning rate of the critics"""
    policy_frequency: int = 2
    """the actor is updated this many times every this many steps (delayed, as TD3 and CleanRL)"""
    target_network_frequency: int = 1
    """environment steps between Polyak updates of the target critics"""
    alpha: float = 0.2
    """entropy temperature: fixed, or the starting value of --autotune"""
    autotune: bool = False
    """tune the temperature towards --target-entropy (Haarnoja et al. 2018b) instead of keeping --alpha fixed"""
    target_entropy: Annotated[float | None, tyro.conf.arg(metavar="FLOAT", help_behavior_hint="(default: -dim(A))")] = (
        None
    )
    """the entropy --autotune aims at"""
    log_prob_space: Literal["squashed", "action"] = "squashed"
    """where log pi(a|s) is a density: of tanh(u) in [-1, 1]^d (squashed; Stable-Baselines3) or of the action
    rescaled to the bounds (action; CleanRL), which subtracts sum log((high - low) / 2). With a fixed --alpha the
    entropy bonus per step differs by alpha times that sum: 0 where the bounds are +-1, 3.1 on Humanoid"""
    backup_entropy: bool = True
    """SAC's critic target adds the next step's entropy bonus -alpha log pi(a'|s'); --no-backup-entropy keeps
    the entropy in the actor's loss only (Yu et al. 2022), so that with SQIL's rewards (0 and r_demo > 0) no
    state is worth less than an ended episode (docs/mujoco.md, Humanoid)"""
    eval_frequency: int = 10_000
    """environment steps between evaluations of the deterministic (mean) action (the budget's unit, as
    --total-timesteps); 0: none"""
    eval_episodes: int = 10
    """episodes per periodic evaluation"""
    final_eval_episodes: int = 10
    """episodes of the final evaluation, per policy (deterministic and stochastic)"""
    checkpoint_frequency: int = 0
    """environment steps between checkpoints (networks, optimisers, agent buffer) in `checkpoints/`; 0: none"""
    checkpoint_buffer: bool = True
    """keep the agent buffer in checkpoints (Humanoid: 2.8 KB per step); without it a checkpoint is a few MB
    and a resumed run refills the buffer with `learning_starts` steps of its current policy before updating"""
    resume: str | None = None
    """continue the run saved in this checkpoint (a new episode starts where it stopped)"""


# What a resumed run may change: its length, evaluation, checkpointing, logging and device. Every other flag
# defines the experiment and must be the checkpoint's (--demo-path may name a moved copy of the same file).
RESUMABLE = {
    "exp_name", "torch_deterministic", "cuda", "track", "wandb_project_name", "wandb_entity", "capture_video",
    "save_model", "demo_path", "total_timesteps", "learning_starts", "eval_frequency", "eval_episodes",
    "final_eval_episodes", "checkpoint_frequency", "checkpoint_buffer", "resume",
}  # fmt: skip


def with_env_defaults(args: Args) -> Args:
    """args with r_demo and lambda_samp filled in for args.env_id where not given (SQIL only: plain SAC has none,
    and a plain-SAC checkpoint saved before lambda_samp had a per-environment default holds 1.0)."""
    if args.reward_source != "sqil":
        return dataclasses.replace(args, r_demo=None, lambda_samp=None)

    def default(table: dict[str, float]) -> float:
        return next((value for name, value in table.items() if args.env_id.startswith(name)), 1.0)

    return dataclasses.replace(
        args,
        r_demo=default(R_DEMO) if args.r_demo is None else args.r_demo,
        lambda_samp=default(LAMBDA_SAMP) if args.lambda_samp is None else args.lambda_samp,
    )


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------
def make_env(env_id: str, seed: int, max_episode_steps: int | None = None, video_folder: str | None = None):
    env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode="rgb_array" if video_folder else None)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # the true environment return, never the SQIL reward
    if video_folder:
        env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
    env.action_space.seed(seed)
    return env


# ---------------------------------------------------------------------------------------------
# Demonstrations (format: docs/demonstrations.md); each script carries this small loader.
# ---------------------------------------------------------------------------------------------
def space_to_dict(space: gym.Space) -> dict:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}


class DemoError(ValueError):
    """A demonstration file that cannot be used, with the one sentence that says why."""


def load_demos(path: str, env: gym.Env, num_episodes: int | None) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist (docs/demonstrations.md says how to make one).")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        recorded = (metadata["observation_space"], metadata["action_space"])
        lengths = data["episode_lengths"]
    except Exception as error:
        raise DemoError(
            f"{path} is not a demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    expected = (space_to_dict(env.observation_space), space_to_dict(env.action_space))
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]} and actions {recorded[1]}, "
            f"but the environment has observations {expected[0]} and actions {expected[1]}."
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
        episodes=len(lengths[:num_episodes]),
        mean_return=float(data["episode_returns"][:num_episodes].mean()),
    )


# ---------------------------------------------------------------------------------------------
# Networks: twin soft Q functions and a tanh-squashed Gaussian actor, 2 x 256 units (paper, A.3).
# ---------------------------------------------------------------------------------------------
class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied with one batched matrix product: input (n, batch, in)."""

    def __init__(self, n: int, in_features: int, out_features: int):
        super().__init__()
        bound = 1.0 / np.sqrt(in_features)  # nn.Linear's default initialisation, per member
        self.weight = nn.Parameter(torch.empty(n, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinSoftQNetwork(nn.Module):
    """SAC's two critics Q_1, Q_2 held in one module, so one pass computes both: returns (2, batch)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int = 256):
        super().__init__()
        self.network = nn.Sequential(
            EnsembleLinear(2, obs_dim + action_dim, hidden),
            nn.ReLU(),
            EnsembleLinear(2, hidden, hidden),
            nn.ReLU(),
            EnsembleLinear(2, hidden, 1),
        )

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, actions], -1).expand(2, -1, -1)
        return self.network(x).squeeze(-1)


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class Actor(nn.Module):
    """a = tanh(u) rescaled to the action bounds, u ~ N(mu(s), sigma(s)) (the same policy as bc.py)."""

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, hidden: int = 256, log_prob_space: str = "squashed"):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(obs_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2 * action_space.shape[0]),
        )
        self.register_buffer("action_scale", torch.tensor((action_space.high - action_space.low) / 2.0).float())
        self.register_buffer("action_bias", torch.tensor((action_space.high + action_space.low) / 2.0).float())
        # the density of the rescaled action is that of tanh(u) divided by the rescale's Jacobian, prod(scale)
        scale = (action_space.high.astype(np.float64) - action_space.low) / 2.0
        self.log_prob_shift = float(np.log(scale).sum()) if log_prob_space == "action" else 0.0

    def forward(self, obs: torch.Tensor):
        """Returns a sampled action, its log-likelihood log pi(a|s), and the deterministic (mean) action."""
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)  # reparameterised, so the actor loss differentiates through it
        log_prob = squashed_gaussian_log_prob(u, mean, log_std) - self.log_prob_shift
        return self.rescale(torch.tanh(u)), log_prob, self.rescale(torch.tanh(mean))

    def rescale(self, squashed: torch.Tensor) -> torch.Tensor:
        return squashed * self.action_scale + self.action_bias


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log density of tanh(u), u ~ N(mean, exp(log_std)), summed over action dimensions. The change of
    variables subtracts log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), a form that stays finite
    where tanh(u) rounds to +-1. (The affine rescale to the action bounds subtracts a constant: Actor's
    log_prob_shift, with --log-prob-space action.)"""
    gaussian = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    log_det = 2.0 * (np.log(2.0) - u - F.softplus(-2.0 * u))
    return (gaussian - log_det).sum(-1)


def soft_q_target(rewards, next_q_min, next_log_prob, terminated, gamma: float, alpha):
    """y = r + gamma * (1 - terminated) * (min_j Q'_j(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s'),
    SAC's soft target. A terminated transition ends in an absorbing state of value 0; a truncated one
    (the time limit) is stored as not terminated and bootstraps from s'."""
    next_soft_value = next_q_min - alpha * next_log_prob
    return rewards + gamma * (~terminated).float() * next_soft_value


# ---------------------------------------------------------------------------------------------
# Replay buffers: the demonstrations (filled once, never evicted) and the agent's own transitions.
# ---------------------------------------------------------------------------------------------
class ReplayBuffer:
    """Transitions (s, a, r, s', terminated) as tensors on the training device; circular when full.
    The reward is the environment's: SQIL never reads it, `--reward-source env` does."""

    def __init__(self, capacity: int, obs_dim: int, action_dim: int, device: torch.device):
        self.obs = torch.zeros((capacity, obs_dim), device=device)
        self.actions = torch.zeros((capacity, action_dim), device=device)
        self.rewards = torch.zeros(capacity, device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.capacity, self.size, self.position, self.device = capacity, 0, 0, device

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Adds a batch of transitions, overwriting the oldest when full."""
        n = len(actions)
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for buffer, values in zip(
            (self.obs, self.actions, self.rewards, self.next_obs, self.terminated),
            (obs, actions, rewards, next_obs, terminated),
        ):
            buffer[rows] = torch.as_tensor(np.asarray(values), device=self.device).to(buffer.dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int):
        idx = torch.randint(0, self.size, (n,), device=self.device)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx]

    def state_dict(self) -> dict:
        # A copy, not a view: torch.save writes a view's whole storage (the empty capacity too).
        keys = ("obs", "actions", "rewards", "next_obs", "terminated")
        arrays = {k: getattr(self, k)[: self.size].to("cpu", copy=True) for k in keys}
        return {**arrays, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.size = len(state["actions"])
        for key in ("obs", "actions", "rewards", "next_obs", "terminated"):
            getattr(self, key)[: self.size] = state[key].to(self.device)
        self.position = state["position"]


def balanced_batch(demo_buffer: ReplayBuffer, agent_buffer: ReplayBuffer, batch_size: int, r_demo: float):
    """SQIL's balanced sample: rows [:batch_size // 2] from D_demo with reward r_demo, the rest from
    D_samp with reward 0 (the environment's reward is dropped)."""
    half = batch_size // 2
    demo, agent = demo_buffer.sample(half), agent_buffer.sample(batch_size - half)
    obs, actions, _, next_obs, terminated = (torch.cat(pair) for pair in zip(demo, agent))
    rewards = torch.cat(
        [torch.full((half,), r_demo, device=obs.device), torch.zeros(batch_size - half, device=obs.device)]
    )
    return obs, actions, rewards, next_obs, terminated


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def evaluate(env: gym.Env, actor: Actor, episodes: int, deterministic: bool, device, seed: int):
    """Mean and standard deviation of the true return over `episodes` episodes."""
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            with torch.no_grad():
                sampled, _, mean = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])
            action = (mean if deterministic else sampled)[0].cpu().numpy()
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        returns.append(float(info["episode"]["r"]))
    return float(np.mean(returns)), float(np.std(returns))


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    counts = (
        "total_timesteps buffer_size batch_size policy_frequency target_network_frequency "
        "eval_episodes final_eval_episodes max_episode_steps"
    ).split()  # flags that count steps or episodes
    if too_small := [name for name in counts if getattr(args, name) is not None and getattr(args, name) < 1]:
        name = too_small[0]
        fail(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    sqil_only = (args.demo_path, args.num_demos, args.r_demo, args.lambda_samp)
    if args.reward_source == "env" and any(value is not None for value in sqil_only):
        fail("--demo-path, --num-demos, --r-demo and --lambda-samp are SQIL's; --reward-source env uses none.")
    args = with_env_defaults(args)
    if args.target_entropy is not None and not args.autotune:
        fail("--target-entropy is what --autotune aims at; without --autotune the temperature is --alpha.")
    sqil = args.reward_source == "sqil"
    checkpoint = None
    if args.resume:
        if not Path(args.resume).is_file():
            fail(f"checkpoint {args.resume} does not exist.")
        try:
            checkpoint = torch.load(args.resume, map_location="cpu", weights_only=False)
            saved = vars(with_env_defaults(Args(**checkpoint["args"])))
            checkpoint["log_alpha"]  # what only this script's checkpoints hold
        except Exception as error:
            fail(f"{args.resume} is not a checkpoint of sqil_sac_continuous.py ({type(error).__name__}: {error}).")
        changed = [key for key, value in vars(args).items() if key not in RESUMABLE and saved[key] != value]
        if changed:
            fail(
                f"{args.resume} was run with "
                + ", ".join(f"--{key.replace('_', '-')} {saved[key]} (now {getattr(args, key)})" for key in changed)
                + "; a resumed run keeps the checkpoint's settings."
            )
    run_name = (
        checkpoint["run_name"]
        if checkpoint
        else f"{args.env_id}__{args.exp_name}__{args.reward_source}__{args.seed}"
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

    try:
        env = make_env(args.env_id, args.seed, args.max_episode_steps)
        eval_env = make_env(args.env_id, args.seed + 10_000, args.max_episode_steps)
    except (gym.error.Error, ImportError) as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    if not (
        isinstance(env.action_space, gym.spaces.Box)
        and env.action_space.is_bounded()
        and len(env.observation_space.shape) == 1
    ):
        fail(
            f"sqil_sac_continuous.py needs vector observations and bounded Box actions; {args.env_id!r} "
            f"has {env.observation_space} and {env.action_space}."
        )
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]

    actor = Actor(obs_dim, env.action_space, log_prob_space=args.log_prob_space).to(device)
    qf = TwinSoftQNetwork(obs_dim, action_dim).to(device)
    qf_target = TwinSoftQNetwork(obs_dim, action_dim).to(device)
    qf_target.load_state_dict(qf.state_dict())
    q_optimizer = torch.optim.Adam(qf.parameters(), lr=args.q_lr, fused=True)  # fused: one kernel per step
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr, fused=True)
    target_entropy = -float(action_dim) if args.target_entropy is None else args.target_entropy
    log_alpha = torch.tensor(np.log(args.alpha), dtype=torch.float32, device=device, requires_grad=True)
    alpha_optimizer = torch.optim.Adam([log_alpha], lr=args.policy_lr)

    # D_demo: the demonstrations with reward r_demo, never evicted. D_samp: the agent's transitions.
    agent_buffer = ReplayBuffer(args.buffer_size, obs_dim, action_dim, device)
    if sqil:
        demo_path = args.demo_path or str(Path(__file__).resolve().parent / "demos" / f"{args.env_id}.npz")
        try:
            demos = load_demos(demo_path, env.unwrapped, args.num_demos)
        except DemoError as error:
            fail(str(error))
        demo_buffer = ReplayBuffer(len(demos["actions"]), obs_dim, action_dim, device)
        demo_buffer.add(
            demos["obs"], demos["actions"], np.zeros(len(demos["actions"])), demos["next_obs"], demos["terminated"]
        )
        print(
            f"{demo_path}: {demos['episodes']} episodes, {len(demos['actions'])} transitions, "
            f"expert return {demos['mean_return']:.1f}; r_demo {args.r_demo}, lambda_samp {args.lambda_samp}"
        )

    start_step = 0
    if checkpoint:
        for module, key in ((actor, "actor"), (qf, "qf"), (qf_target, "qf_target"), (q_optimizer, "q_optimizer")):
            module.load_state_dict(checkpoint[key])
        actor_optimizer.load_state_dict(checkpoint["actor_optimizer"])
        alpha_optimizer.load_state_dict(checkpoint["alpha_optimizer"])
        with torch.no_grad():
            log_alpha.copy_(checkpoint["log_alpha"])
        if checkpoint["agent_buffer"] is not None:
            agent_buffer.load_state_dict(checkpoint["agent_buffer"])
        else:
            print(f"the checkpoint holds no agent buffer: {args.learning_starts} policy steps refill it before updates")
        torch.set_rng_state(checkpoint["torch_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        start_step = checkpoint["global_step"]
        print(f"resumed {run_name} at step {start_step} from {args.resume}")
    # Updates wait for `learning_starts` transitions in the agent buffer (refilled by the policy after a
    # resume from a checkpoint saved without it).
    first_update_step = start_step + args.learning_starts if agent_buffer.size == 0 else args.learning_starts

    def save_checkpoint(global_step: int) -> None:
        Path("checkpoints").mkdir(exist_ok=True)
        path = f"checkpoints/{run_name}.pt"
        state = {key: value.state_dict() for key, value in (("actor", actor), ("qf", qf), ("qf_target", qf_target))}
        for key, optimizer in (
            ("q_optimizer", q_optimizer),
            ("actor_optimizer", actor_optimizer),
            ("alpha_optimizer", alpha_optimizer),
        ):
            state[key] = optimizer.state_dict()
        state.update(
            args=vars(args),
            run_name=run_name,
            global_step=global_step,
            log_alpha=log_alpha.detach().cpu(),
            agent_buffer=agent_buffer.state_dict() if args.checkpoint_buffer else None,
            torch_rng=torch.get_rng_state(),
            numpy_rng=np.random.get_state(),
        )
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # never leave a half-written checkpoint behind
        print(f"step {global_step}: checkpoint saved to {path}")

    alpha = log_alpha.exp().detach()
    obs, _ = env.reset(seed=args.seed + start_step)
    start_time, learning_start_time, learning_start_step = time.time(), None, None
    actor_loss = torch.zeros(())  # logged before the first (delayed) actor step when policy_frequency > 1
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    steps = range(start_step, args.total_timesteps)
    progress = tqdm(steps, "env steps", args.total_timesteps, initial=start_step, disable=None, mininterval=2.0)
    for global_step in progress:
        # Act: uniformly random actions at first, then the stochastic policy, as SAC does.
        if global_step < args.learning_starts:
            action = env.action_space.sample()
        else:
            with torch.no_grad():
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0][0].cpu().numpy()
        next_obs, reward, terminated, truncated, info = env.step(action)
        # The true s' is stored even when the episode ended; `terminated` alone stops bootstrapping.
        agent_buffer.add([obs], [action], [reward], [next_obs], [terminated])
        if "episode" in info:
            writer.add_scalar("charts/episodic_return", info["episode"]["r"], global_step)
            writer.add_scalar("charts/episodic_length", info["episode"]["l"], global_step)
        obs = env.reset()[0] if terminated or truncated else next_obs

        if global_step < first_update_step:
            continue
        if learning_start_time is None:
            learning_start_time, learning_start_step = time.time(), global_step

        # Critic step. SQIL: Eq. 8 on a balanced batch; env: the ordinary SAC critic loss.
        if sqil:
            obs_b, actions_b, rewards_b, next_obs_b, terminated_b = balanced_batch(
                demo_buffer, agent_buffer, args.batch_size, args.r_demo
            )
        else:
            obs_b, actions_b, rewards_b, next_obs_b, terminated_b = agent_buffer.sample(args.batch_size)
        with torch.no_grad():
            next_actions, next_log_prob, _ = actor(next_obs_b)
            next_q_min = qf_target(next_obs_b, next_actions).min(0).values
            backup_alpha = alpha if args.backup_entropy else 0.0
            targets = soft_q_target(rewards_b, next_q_min, next_log_prob, terminated_b, args.gamma, backup_alpha)
        q_values = qf(obs_b, actions_b)
        squared_errors = (q_values - targets) ** 2  # (2 critics, batch)
        half = args.batch_size // 2
        bellman_demo = squared_errors[:, :half].mean(1).sum()  # the sum over both critics, as SAC's loss
        bellman_samp = squared_errors[:, half:].mean(1).sum()
        qf_loss = bellman_demo + args.lambda_samp * bellman_samp if sqil else squared_errors.mean(1).sum()
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()

        # Actor and temperature steps (delayed): the actor trains on the states of the same batch.
        if global_step % args.policy_frequency == 0:
            qf.requires_grad_(False)  # the actor loss differentiates through Q, but only the actor is updated
            for _ in range(args.policy_frequency):
                actions_pi, log_prob, _ = actor(obs_b)
                actor_loss = (alpha * log_prob - qf(obs_b, actions_pi).min(0).values).mean()
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_optimizer.step()
                if args.autotune:
                    alpha_loss = (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()
                    alpha_optimizer.zero_grad()
                    alpha_loss.backward()
                    alpha_optimizer.step()
                    alpha = log_alpha.exp().detach()
            qf.requires_grad_(True)

        if global_step % args.target_network_frequency == 0:
            with torch.no_grad():
                for param, target_param in zip(qf.parameters(), qf_target.parameters()):
                    target_param.lerp_(param, args.tau)

        if global_step % 1000 == 0:
            writer.add_scalar("losses/qf_loss", qf_loss.item(), global_step)
            writer.add_scalar("losses/qf_values", q_values.mean().item(), global_step)
            writer.add_scalar("losses/actor_loss", actor_loss.item(), global_step)
            writer.add_scalar("losses/alpha", alpha.item(), global_step)
            # -log pi of the policy's own actions: a differential entropy, negative once the policy is narrow;
            # then the soft target's entropy term, alpha * entropy, is a cost for every step an episode lasts.
            entropy = -log_prob.mean().item()
            writer.add_scalar("losses/entropy", entropy, global_step)
            if sqil:
                writer.add_scalar("losses/bellman_demo", bellman_demo.item(), global_step)
                writer.add_scalar("losses/bellman_samp", bellman_samp.item(), global_step)
                writer.add_scalar("losses/q_demo", q_values[:, :half].mean().item(), global_step)
                writer.add_scalar("losses/q_samp", q_values[:, half:].mean().item(), global_step)
            # Steady-state speed: counted from the first gradient step, not from the random-action warm-up.
            sps = int((global_step - learning_start_step) / max(time.time() - learning_start_time, 1e-9))
            writer.add_scalar("charts/SPS", sps, global_step)
            if global_step % 10_000 == 0:
                tqdm.write(
                    f"step {global_step}: SPS {sps}, alpha {alpha.item():.3f}, entropy {entropy:.1f}, "
                    f"q {q_values.mean().item():.1f}"
                )

        if args.eval_frequency and (global_step + 1) % args.eval_frequency == 0:
            mean_return, std_return = evaluate(
                eval_env, actor, args.eval_episodes, True, device, args.seed + global_step
            )
            writer.add_scalar("eval/episodic_return", mean_return, global_step)
            progress.set_postfix_str(f"eval deterministic return {mean_return:.1f}", refresh=False)
            tqdm.write(f"step {global_step + 1}: deterministic evaluation return {mean_return:.1f} +- {std_return:.1f}")
        if args.checkpoint_frequency and (global_step + 1) % args.checkpoint_frequency == 0:
            save_checkpoint(global_step + 1)

    wall_time = time.time() - start_time
    steady_sps = (
        (args.total_timesteps - learning_start_step) / (time.time() - learning_start_time)
        if learning_start_time
        else None
    )
    print(
        f"trained {args.total_timesteps - start_step} env steps in {wall_time:.0f} s"
        + (f" ({steady_sps:.1f} env steps/s with one gradient step each)" if steady_sps else "")
    )
    if args.checkpoint_frequency and args.total_timesteps % args.checkpoint_frequency != 0:
        save_checkpoint(args.total_timesteps)
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save({"actor": actor.state_dict(), "qf": qf.state_dict(), "args": vars(args)}, model_path)
        print(f"model saved to {model_path}")
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_env = make_env(args.env_id, args.seed + 20_000, args.max_episode_steps, video_folder)
    results = {
        "args": vars(args),
        "r_demo": args.r_demo if sqil else None,
        "env_steps": args.total_timesteps,
        "wall_time_s": wall_time,
        "steady_state_sps": steady_sps,
        "device": str(device),
    }
    for deterministic, name in ((True, "deterministic"), (False, "stochastic")):
        mean_return, std_return = evaluate(
            final_env, actor, args.final_eval_episodes, deterministic, device, seed=args.seed + 2_000_000
        )
        writer.add_scalar(f"eval/final_{name}_episodic_return", mean_return, args.total_timesteps)
        results[f"final_{name}_return"], results[f"final_{name}_return_std"] = mean_return, std_return
        print(
            f"final {name} evaluation ({args.final_eval_episodes} episodes): return {mean_return:.1f} +- {std_return:.1f}"
        )
    final_env.close()
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    env.close()
    eval_env.close()
    writer.close()
