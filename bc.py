"""Behavioural cloning, the baseline SQIL is measured against (Reddy, Dragan, Levine; Eq. 4).

    python bc.py --env-id LunarLander-v3 --start-state shifted
    python bc.py --env-id BreakoutNoFrameskip-v4
    python bc.py --env-id CarRacing-v3 --start-state rotated
    python bc.py --env-id HalfCheetah-v5 --demo-path demos/HalfCheetah-v5.npz

BC fits the policy to the demonstrations alone: no environment reward and no interaction while
training. The last demonstration episodes are held out for a validation loss; after training, the
deterministic and the stochastic policy play `final_eval_episodes` episodes each.

The network follows from the environment's spaces, the same as in the SQIL file of each family:
- image observations (Atari `*NoFrameskip-v4`): the Nature DQN network on 4 stacked 84x84 frames;
- CarRacing (discrete actions): four convolutions and two layers of 256 units on 4 stacked 64x64
  grayscale frames, the network and preprocessing of sqil_car_racing.py;
- vector observations, discrete actions (LunarLander): two fully connected layers of 128 units;
- vector observations, continuous actions (MuJoCo): two layers of 256 units and a tanh-squashed
  Gaussian, fit by maximum likelihood (`--continuous-loss mle`) or by mean squared error (`mse`).
Discrete policies are the paper's BC: a softmax over logits read as soft Q values (alpha = 1).
"""

import hashlib
import importlib.metadata
import json
import os
import random
import sys
import time
from dataclasses import dataclass
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
    """whether to save the policy into `runs/{run_name}`"""

    # Algorithm specific arguments
    env_id: str = "LunarLander-v3"
    """the id of the environment"""
    demo_path: str | None = None
    """the demonstration file (default: the bundled demos/<env-id>.npz; format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes, validation included (default: all)"""
    demo_cache: bool = True
    """keep the frames replayed from an image demonstration file (Atari, CarRacing) in $SQIL_DEMO_CACHE (default
    ~/.cache/sqil-demos) and read them from there in later runs, checked against the file's SHA-256 all the same"""
    val_fraction: float = 0.1
    """fraction of the demonstration episodes held out for the validation loss (at least one of two or more)"""
    start_state: Literal["demo", "shifted", "rotated"] = "demo"
    """evaluate from the environment's own start, LunarLander's shifted start (as rbc_lunar.py) or
    CarRacing's rotated start (as sqil_car_racing.py)"""
    max_episode_steps: int | None = None
    """cut evaluation episodes after this many agent steps (default: Atari 4,500, the demonstrations' cap, since a
    greedy policy that never serves would play to ALE's 108,000 frames; elsewhere the environment's own limit)"""
    continuous_loss: Literal["mle", "mse"] = "mle"
    """continuous actions: maximum likelihood of the tanh-Gaussian, or mean squared error of its mean"""
    total_gradient_steps: int = 100_000
    """gradient steps on minibatches of demonstrations"""
    learning_rate: float | None = None
    """the learning rate of Adam (default: 1e-3 for the fully connected networks, 2.5e-4 for the CNN)"""
    batch_size: int = 128
    """demonstration transitions per gradient step"""
    val_frequency: int = 1_000
    """gradient steps between validation losses"""
    eval_frequency: int = 20_000
    """gradient steps between periodic evaluations in the environment (the budget's unit, as --total-gradient-steps)"""
    eval_episodes: int = 10
    """episodes per periodic evaluation and policy (deterministic and stochastic)"""
    final_eval_episodes: int | None = None
    """episodes of the final evaluation, per policy (default: 10 on Atari, whose games last up to 4,500 steps,
    as sqil_dqn_atari.py; else 100)"""


# ---------------------------------------------------------------------------------------------
# Environments, built as in the SQIL file of each family.
# ---------------------------------------------------------------------------------------------
ATARI_PREPROCESSING = dict(noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True)
ATARI_EVAL_MAX_STEPS = 4_500  # agent steps per evaluation game, as the demonstrations (collect_demos.py)
FRAME_STACK = 4
SHIFTED_X = 0.7  # |x| of LunarLander's shifted start, in observation units (the flags are at |x| = 0.2)


CAR_FRAME_SIZE = 64  # CarRacing: 96x96 colour -> 64x64 grayscale, as sqil_car_racing.py


def is_atari(env_id: str) -> bool:
    return env_id.endswith("NoFrameskip-v4")


def is_car_racing(env_id: str) -> bool:
    return env_id.startswith("CarRacing")


class ShiftedStart(gym.Wrapper):
    """LunarLander from the top of the screen at x = +-0.7 instead of x = 0: a start no bundled
    demonstration visits (the same wrapper as rbc_lunar.py, where tests/test_rbc_lunar.py checks it)."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        lunar = self.env.unwrapped
        side = 1.0 if lunar.np_random.random() < 0.5 else -1.0
        dx = side * SHIFTED_X * (600 / 30.0 / 2)  # observation x -> world metres (VIEWPORT_W / SCALE / 2)
        for body in [lunar.lander, *lunar.legs]:
            body.position = (body.position[0] + dx, body.position[1])
        obs, *_, info = lunar.step(0)  # one no-op step to read the moved state (and reset reward shaping)
        return obs, info


class RotatedStart(gym.Wrapper):
    """CarRacing with the car on the start tile rotated by 90 degrees, left or right (the same wrapper
    as sqil_car_racing.py, where tests/test_sqil_car_racing.py checks it is perpendicular)."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        from gymnasium.envs.box2d.car_dynamics import SIZE, WHEELPOS, Car

        car_racing = self.env.unwrapped
        _, track_angle, x, y = car_racing.track[0]
        side = 1.0 if car_racing.np_random.random() < 0.5 else -1.0
        car_racing.car.destroy()
        car_racing.car = Car(car_racing.world, track_angle + side * np.pi / 2, x, y)
        for wheel, (wx, wy) in zip(car_racing.car.wheels, WHEELPOS):
            wheel.position = car_racing.car.hull.GetWorldPoint((wx * SIZE, wy * SIZE))
        obs, *_, info = car_racing.step(None)
        return obs, info


def make_env(
    env_id: str, start_state: str, seed: int, max_episode_steps=None, video_folder=None, stack: bool = True
) -> gym.Env:
    """Atari: noop reset, frame skip 4 with max-pooling, 84x84 grayscale, full games (no life-loss
    ends), 4 stacked frames, exactly the preprocessing the demonstrations were recorded through.
    CarRacing: discrete actions, 64x64 grayscale, 4 stacked frames (sqil_car_racing.py)."""
    render_mode = "rgb_array" if video_folder else None
    if is_car_racing(env_id):
        env = gym.make(env_id, continuous=False, max_episode_steps=max_episode_steps, render_mode=render_mode)
        if start_state == "rotated":
            env = RotatedStart(env)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if video_folder:
            env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
        env = gym.wrappers.GrayscaleObservation(env)
        env = gym.wrappers.ResizeObservation(env, (CAR_FRAME_SIZE, CAR_FRAME_SIZE))
        env = gym.wrappers.FrameStackObservation(env, FRAME_STACK) if stack else env
        env.action_space.seed(seed)
        return env
    if is_atari(env_id):
        import ale_py

        gym.register_envs(ale_py)
        env = gym.wrappers.AtariPreprocessing(gym.make(env_id, render_mode=render_mode), **ATARI_PREPROCESSING)
        if max_episode_steps:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)
    else:
        env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode)
        if start_state == "shifted":
            env = ShiftedStart(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # the true game score over a whole episode
    if video_folder:
        env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
    env.action_space.seed(seed)
    return env


def landing_success(env: gym.Env, obs: np.ndarray, terminated: bool) -> bool:
    """LunarLander (docs/lunar_lander.md, "Landing success"): at rest, both legs down, centre between the flags."""
    return bool(terminated and not env.unwrapped.lander.awake and abs(obs[0]) <= 0.2 and obs[6] > 0 and obs[7] > 0)


# ---------------------------------------------------------------------------------------------
# Demonstrations (format: docs/demonstrations.md); adapted from collect_demos.load_demos (episode lengths, no s').
# ---------------------------------------------------------------------------------------------
def space_to_dict(space: gym.Space) -> dict:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}


class DemoError(ValueError):
    """A demonstration file that cannot be used, with the one sentence that says why."""


def load_demos(
    path: str, observation_space: gym.Space, action_space: gym.Space, num_episodes: int | None, cache: bool = True
) -> dict:
    """Per-step `obs` and `actions` and per-episode `episode_lengths` of the first `num_episodes`
    episodes (default: all). Atari and CarRacing files hold seeds and actions: their frames are
    replayed (or read from the cache) and checked against their SHA-256; stacks are built from them."""
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        recorded = (metadata["observation_space"], metadata["action_space"])
    except Exception as error:
        raise DemoError(
            f"{path} is not a demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    expected = (space_to_dict(observation_space), space_to_dict(action_space))
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]} and actions {recorded[1]}, "
            f"but the environment has observations {expected[0]} and actions {expected[1]}."
        )
    lengths = data["episode_lengths"]
    if num_episodes is not None and not 1 <= num_episodes <= len(lengths):
        raise DemoError(f"--num-demos {num_episodes} is not between 1 and the {len(lengths)} episodes of {path}.")
    lengths = lengths[:num_episodes]
    if metadata.get("replay"):
        obs = replay(path, data, metadata, len(lengths), cache)
    else:
        obs = data["obs"]
    steps = int(lengths.sum())
    return {"obs": obs[:steps], "actions": data["actions"][:steps], "episode_lengths": lengths}


DEMO_CACHE = Path(os.environ.get("SQIL_DEMO_CACHE") or Path.home() / ".cache" / "sqil-demos")
REPLAY_PACKAGES = ("gymnasium", "ale-py", "box2d", "pygame-ce", "opencv-python-headless", "numpy")


def frames_checksum(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def checked_frames(
    replay, seed: int, actions: np.ndarray, checksum: str, env_id: str, cache: bool
) -> np.ndarray | None:
    """The frames of the episode that `replay(seed, actions)` plays, whose SHA-256 the file recorded as
    `checksum`, or None if replaying gives other frames. With `cache`, an entry of DEMO_CACHE is read
    instead of replaying when it still hashes to the checksum; its key is that checksum, the seed and
    actions, and the versions of the packages that replay (REPLAY_PACKAGES). A damaged entry is
    replaced. Replaying one episode costs seconds, reading it milliseconds."""
    versions = {}
    for package in REPLAY_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    key = hashlib.sha256(json.dumps([versions, seed], sort_keys=True).encode() + actions.tobytes()).hexdigest()
    entry = DEMO_CACHE / env_id / f"{checksum}-{key[:16]}.npy"
    if cache and entry.is_file():
        try:
            frames = np.load(entry)
            if frames_checksum(frames) == checksum:
                return frames
        except (OSError, ValueError):  # a truncated or overwritten entry
            pass
        print(f"the cached frames {entry} do not match their checksum: replaying the episode again")
    frames = np.stack(replay(seed, actions))
    if frames_checksum(frames) != checksum:
        return None
    if cache:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = entry.with_name(f"{entry.name}.{os.getpid()}.partial")
        with open(partial, "wb") as f:
            np.save(f, frames)
        os.replace(partial, entry)  # a run that stops while writing leaves no half entry behind
    return frames


def replay(path: str, data: dict, metadata: dict, num_episodes: int, cache: bool) -> np.ndarray:
    """The first episodes' frames (without each episode's final one), rebuilt from their reset seeds and actions
    in the deterministic emulator, or read from the cache (`checked_frames`), and checked against the SHA-256 of
    the file: Atari's preprocessed frames, CarRacing's raw colour frames (preprocessed after the check)."""
    car_racing = is_car_racing(metadata["env_id"])
    if not car_racing and metadata["atari_preprocessing"] != ATARI_PREPROCESSING:
        raise DemoError(f"{path} was recorded with Atari preprocessing {metadata['atari_preprocessing']}.")
    if car_racing:
        env = make_env(metadata["env_id"], "demo", seed=0, stack=False)  # ResizeObservation(GrayscaleObservation(...))
    else:
        import ale_py

        gym.register_envs(ale_py)
        env = gym.wrappers.AtariPreprocessing(gym.make(metadata["env_id"]), **ATARI_PREPROCESSING)

    def play(seed: int, actions: np.ndarray) -> list[np.ndarray]:
        observation = env.reset(seed=seed)[0]
        frames = [env.unwrapped.state if car_racing else observation]
        for action in actions:
            observation = env.step(int(action))[0]
            frames.append(env.unwrapped.state if car_racing else observation)
        return frames

    obs, start = [], 0
    for episode, (seed, length) in enumerate(zip(data["episode_seeds"][:num_episodes], data["episode_lengths"])):
        actions = data["actions"][start : start + length]
        start += length
        checksum = data["episode_checksums"][episode]
        frames = checked_frames(play, int(seed), actions, checksum, metadata["env_id"], cache)
        if frames is None:
            raise DemoError(
                f"replaying episode {episode} of {path} gave other frames than were recorded "
                f"(recorded with {metadata['versions']}); reinstall those versions or re-record the file."
            )
        if car_racing:  # as the agent sees them
            frames = np.stack([env.observation(env.env.observation(raw)) for raw in frames])
        obs.extend(frames[:-1])
    env.close()
    return np.stack(obs)


def frame_stack_indices(episode_lengths: np.ndarray, stack: int) -> np.ndarray:
    """Row t lists the rows of the `stack` frames that make the stacked observation of step t: the
    most recent frames of its own episode, its first frame repeated before the episode began (as
    FrameStackObservation pads). Frames are stored once; stacks are gathered per batch."""
    starts = np.repeat(np.cumsum(episode_lengths) - episode_lengths, episode_lengths)
    steps = np.arange(int(np.sum(episode_lengths)))
    return np.maximum(steps[:, None] + np.arange(1 - stack, 1)[None, :], starts[:, None])


# ---------------------------------------------------------------------------------------------
# Policies. `loss` is the negative log-likelihood of demonstrated actions (Eq. 4); `act` picks
# the deterministic (most likely) or a sampled action.
# ---------------------------------------------------------------------------------------------
class NatureCNN(nn.Module):
    """The Nature DQN network (Mnih et al. 2015) on uint8 frame stacks."""

    def __init__(self, n_outputs: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(FRAME_STACK, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, 512),
            nn.ReLU(),
            nn.Linear(512, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


class CarRacingCNN(nn.Module):
    """sqil_car_racing.py's network: four convolutions (World Models encoder), two layers of 256 units."""

    def __init__(self, n_outputs: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(FRAME_STACK, 32, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 128, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(128, 256, 4, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(256 * 2 * 2, 256),
            nn.ReLU(),
            nn.Linear(256, 256),
            nn.ReLU(),
            nn.Linear(256, n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
    )


class DiscretePolicy(nn.Module):
    """pi(a|s) = softmax(Q(s, .))(a): the logits are read as soft Q values with alpha = 1 (Eq. 1, 4)."""

    def __init__(self, observation_space: gym.Space, n_actions: int):
        super().__init__()
        if observation_space.shape[1:] == (CAR_FRAME_SIZE, CAR_FRAME_SIZE):
            self.q_network = CarRacingCNN(n_actions)
        elif len(observation_space.shape) == 3:
            self.q_network = NatureCNN(n_actions)
        else:
            self.q_network = mlp(observation_space.shape[0], 128, n_actions)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.q_network(obs), actions)  # -log pi(a|s) = -(Q(s, a) - V(s))

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        logits = self.q_network(obs)
        return logits.argmax(-1) if deterministic else torch.distributions.Categorical(logits=logits).sample()


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
ACTION_EDGE = 1e-3  # demonstrated actions at the bounds are pulled this far inside before atanh


class GaussianPolicy(nn.Module):
    """a = tanh(u) rescaled to the action bounds, u ~ N(mu(s), sigma(s)): the actor of SAC."""

    def __init__(self, obs_dim: int, action_space: gym.spaces.Box, loss: str):
        super().__init__()
        self.trunk = mlp(obs_dim, 256, 2 * action_space.shape[0])
        self.register_buffer("action_scale", torch.tensor((action_space.high - action_space.low) / 2.0))
        self.register_buffer("action_bias", torch.tensor((action_space.high + action_space.low) / 2.0))
        self.loss_type = loss

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return torch.distributions.Normal(mean, log_std.exp())

    def loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        squashed = ((actions - self.action_bias) / self.action_scale).clamp(-1 + ACTION_EDGE, 1 - ACTION_EDGE)
        normal = self.distribution(obs)
        if self.loss_type == "mse":  # the documented alternative: regress the deterministic action
            return F.mse_loss(torch.tanh(normal.mean), squashed)
        # -log pi(a|s) of the squashed Gaussian: the change of variables a = tanh(u) adds log(1 - a^2).
        log_prob = normal.log_prob(torch.atanh(squashed)) - torch.log(1 - squashed.pow(2))
        return -log_prob.sum(-1).mean()

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        normal = self.distribution(obs)
        u = normal.mean if deterministic else normal.sample()
        return torch.tanh(u) * self.action_scale + self.action_bias


# ---------------------------------------------------------------------------------------------
# Evaluation in the environment.
# ---------------------------------------------------------------------------------------------
def evaluate(env: gym.Env, policy: nn.Module, episodes: int, deterministic: bool, device, seed: int):
    """Mean true return and, on LunarLander, landing success over `episodes` episodes."""
    returns, successes = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            with torch.no_grad():
                obs_tensor = torch.as_tensor(np.asarray(obs), device=device)[None]
                if obs_tensor.is_floating_point():  # MuJoCo observes float64; the networks are float32
                    obs_tensor = obs_tensor.float()
                action = policy.act(obs_tensor, deterministic)[0]
            action = action.cpu().numpy()
            obs, _, terminated, truncated, info = env.step(action.item() if action.ndim == 0 else action)
            done = terminated or truncated
        returns.append(float(info["episode"]["r"]))
        if hasattr(env.unwrapped, "lander"):
            successes.append(landing_success(env, obs, terminated))
    return float(np.mean(returns)), float(np.mean(successes)) if successes else None


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    if args.max_episode_steps is None and is_atari(args.env_id):
        args.max_episode_steps = ATARI_EVAL_MAX_STEPS
    if args.final_eval_episodes is None:
        args.final_eval_episodes = 10 if is_atari(args.env_id) else 100
    counts = (
        "total_gradient_steps batch_size val_frequency eval_frequency "
        "eval_episodes final_eval_episodes max_episode_steps"
    ).split()  # flags that count steps or episodes
    if too_small := [name for name in counts if getattr(args, name) is not None and getattr(args, name) < 1]:
        name = too_small[0]
        fail(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    run_name = (
        f"{args.env_id}__{args.exp_name}__{args.start_state}__{args.seed}"
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

    if not 0 <= args.val_fraction < 1:
        fail(f"--val-fraction {args.val_fraction} must be at least 0 and below 1.")
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    try:
        eval_env = make_env(args.env_id, args.start_state, args.seed + 10_000, args.max_episode_steps)
    except (gym.error.Error, ImportError) as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    if args.start_state == "shifted" and not hasattr(eval_env.unwrapped, "lander"):
        fail(f"--start-state shifted exists for LunarLander only, not {args.env_id!r}.")
    if args.start_state == "rotated" and not is_car_racing(args.env_id):
        fail(f"--start-state rotated exists for CarRacing only, not {args.env_id!r}.")
    observation_space, action_space = eval_env.observation_space, eval_env.action_space
    image = is_atari(args.env_id) or is_car_racing(args.env_id)
    if isinstance(action_space, gym.spaces.Discrete) and (image or len(observation_space.shape) == 1):
        policy = DiscretePolicy(observation_space, int(action_space.n)).to(device)
    elif isinstance(action_space, gym.spaces.Box) and len(observation_space.shape) == 1 and action_space.is_bounded():
        policy = GaussianPolicy(observation_space.shape[0], action_space, args.continuous_loss).to(device)
    else:
        fail(
            f"bc.py handles Atari (*NoFrameskip-v4), vector observations with discrete actions, and vector "
            f"observations with bounded continuous actions; {args.env_id!r} has {observation_space} and {action_space}."
        )
    learning_rate = args.learning_rate or (2.5e-4 if image else 1e-3)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)

    # Demonstrations: Atari files hold single frames, which are stacked per batch as the env stacks them.
    demo_path = args.demo_path or str(Path(__file__).resolve().parent / "demos" / f"{args.env_id}.npz")
    frame_space = observation_space
    if is_car_racing(args.env_id):  # the files describe the raw colour frames, which are replayed
        frame_space = eval_env.unwrapped.observation_space
    elif image:
        frame_space = gym.spaces.Box(0, 255, observation_space.shape[1:], np.uint8)
    try:
        demos = load_demos(demo_path, frame_space, action_space, args.num_demos, args.demo_cache)
    except DemoError as error:
        fail(str(error))
    lengths = demos["episode_lengths"]
    num_val = min(max(1, round(args.val_fraction * len(lengths))), len(lengths) - 1) if args.val_fraction > 0 else 0
    num_train_steps = int(lengths[: len(lengths) - num_val].sum())
    num_steps = int(lengths.sum())
    print(
        f"{demo_path}: {len(lengths) - num_val} training episodes ({num_train_steps} steps), "
        f"{num_val} validation episodes ({num_steps - num_train_steps} steps)"
    )
    frames = torch.as_tensor(demos["obs"], device=device)
    actions = torch.as_tensor(demos["actions"], device=device)
    if isinstance(action_space, gym.spaces.Box):
        frames, actions = frames.float(), actions.float()
    stack_rows = torch.as_tensor(frame_stack_indices(lengths, FRAME_STACK), device=device) if image else None

    def demo_obs(rows: torch.Tensor) -> torch.Tensor:
        if not image:
            return frames[rows]
        # index_select copies whole frames, many times faster on a CPU than frames[stack_rows[rows]] (docs/benchmarks.md)
        return frames.index_select(0, stack_rows[rows].flatten()).view(len(rows), -1, *frames.shape[1:])

    def validation_loss() -> float:
        rows = torch.arange(num_train_steps, num_steps, device=device)
        with torch.no_grad():
            losses = [policy.loss(demo_obs(chunk), actions[chunk]) * len(chunk) for chunk in rows.split(1024)]
        return float(sum(losses) / len(rows))

    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()),
    )
    start_time = time.time()
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    progress = tqdm(range(args.total_gradient_steps), "gradient steps", disable=None, mininterval=2.0)
    for step in progress:
        rows = torch.randint(0, num_train_steps, (args.batch_size,), device=device)
        loss = policy.loss(demo_obs(rows), actions[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if step % args.val_frequency == 0 or step == args.total_gradient_steps - 1:
            writer.add_scalar("losses/bc", loss.item(), step)
            if num_val:
                writer.add_scalar("losses/bc_validation", validation_loss(), step)
            writer.add_scalar("charts/gradient_steps_per_s", int((step + 1) / (time.time() - start_time)), step)
        if (step + 1) % args.eval_frequency == 0:
            for deterministic, name in ((True, "deterministic"), (False, "stochastic")):
                seed = args.seed + 1_000_000 + step
                mean_return, success = evaluate(eval_env, policy, args.eval_episodes, deterministic, device, seed)
                writer.add_scalar(f"eval/{name}_episodic_return", mean_return, step)
                if success is not None:
                    writer.add_scalar(f"eval/{name}_success", success, step)
                message = f"eval {name} return {mean_return:.1f}" + (
                    f" success {success:.2f}" if success is not None else ""
                )
                progress.set_postfix_str(message, refresh=False)
                tqdm.write(f"step {step + 1}: {message}")

    wall_time = time.time() - start_time
    results = {
        "args": vars(args),
        "demo_episodes": {"train": len(lengths) - num_val, "validation": num_val},
        "final_train_loss": loss.item(),
        "final_validation_loss": validation_loss() if num_val else None,
        "wall_time_s": wall_time,
        "device": str(device),
    }
    print(
        f"trained {args.total_gradient_steps} gradient steps in {wall_time:.0f} s; training loss {results['final_train_loss']:.3f}"
        + (f", validation loss {results['final_validation_loss']:.3f}" if num_val else "")
    )
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save(policy.state_dict(), model_path)
        print(f"model saved to {model_path}")
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_env = make_env(args.env_id, args.start_state, args.seed + 20_000, args.max_episode_steps, video_folder)
    for deterministic, name in ((True, "deterministic"), (False, "stochastic")):
        mean_return, success = evaluate(
            final_env, policy, args.final_eval_episodes, deterministic, device, seed=args.seed + 2_000_000
        )
        writer.add_scalar(f"eval/final_{name}_episodic_return", mean_return, args.total_gradient_steps)
        results[f"final_{name}_return"] = mean_return
        message = f"final {name} evaluation ({args.final_eval_episodes} episodes): return {mean_return:.1f}"
        if success is not None:
            writer.add_scalar(f"eval/final_{name}_success", success, args.total_gradient_steps)
            results[f"final_{name}_success"] = success
            message += f", success {success:.2f}"
        print(message)
    final_env.close()
    eval_env.close()
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    writer.close()
