"""GAIL with a soft Q-learning learner (the paper's GAIL-DQL baseline; Reddy, Dragan, Levine, Section 5).

    python gail_dqn.py --reward-variant unbiased --start-state shifted
    python gail_dqn.py --reward-variant biased
    python gail_dqn.py --env-id CarRacing-v3 --start-state rotated
    python gail_dqn.py --env-id BreakoutNoFrameskip-v4

The learner is SQIL's soft Q-learning, unchanged: the same network, Boltzmann policy, replay
buffer, target network and schedule (one rollout, a whole episode, every `k` gradient steps). Only
the reward differs: SQIL gives demonstrations 1 and the agent 0; GAIL learns a discriminator
D(s, a), the probability that (s, a) came from the expert, and rewards the agent with
r(s, a) = -log(1 - D(s, a)) (or log D - log(1 - D) with `--reward-formula logit`), recomputed from
the current discriminator whenever a transition is sampled, never stored. The learner trains on its own transitions only, as GAIL's RL step does.

Two variants (paper, Appendix A.2):
- biased: an episode's end is terminal, V(s_T) = 0. Since -log(1 - D) > 0, the agent is paid to
  keep episodes going: prior knowledge GAIL does not announce.
- unbiased (Kostrikov et al. 2019, Section 4.2): every terminated episode ends in an explicit
  absorbing state that loops to itself; observations carry a binary absorbing feature; the
  discriminator judges absorbing transitions too, so the value of ending is learned.

Three families, told apart by the environment id:
- LunarLander (vector observations): the 2 x 128 networks and schedule of rbc_lunar.py; the
  absorbing feature is one more observation entry.
- CarRacing (discrete actions, 64x64 grayscale, 4 frames): the network and preprocessing of
  sqil_car_racing.py; `--start-state rotated` as there.
- Atari (`*NoFrameskip-v4`, 84x84 grayscale, 4 frames): the Nature CNN and preprocessing of
  sqil_dqn_atari.py; one rollout (an episode) every k = 1,000 gradient steps, about one gradient step
  per environment step, where sqil_dqn_atari.py interleaves steps and updates one by one.
Images are stored once per frame, in whole episodes, and stacked at sample time. Their absorbing
feature is a fifth image plane, 0 everywhere, or 255 in the absorbing state, whose frames are 0.
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
from typing import Annotated, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

# Flags left unset take the value of the environment's family (told apart by env_family below); the image
# families clip gradients as the SQIL image files do. Atari's learner is sqil_dqn_atari.py's default one
# (temperature 0.1, batch 64, target copied every 10,000 updates, a 1M-frame buffer; a game every 250 gradient
# steps is about one update per 4 env steps in Pong), so that SQIL and GAIL-DQL differ only in the reward (Sec. 5).
FAMILY_FLAGS = (
    "k", "alpha", "learning_rate", "batch_size", "buffer_size", "target_network_frequency", "max_grad_norm",
    "final_eval_episodes",
)  # fmt: skip
FAMILY_DEFAULTS = {
    family: dict(zip(FAMILY_FLAGS, values))
    for family, values in {
        "lunar":      (200,  1.0, 1e-3, 128, 1_000_000, 100,    None, 100),
        "car_racing": (50,   1.0, 1e-4, 64,  200_000,   500,    10.0, 100),
        "atari":      (250,  0.1, 1e-4, 64,  1_000_000, 10_000, 10.0, 10),
    }.items()
}  # fmt: skip


def family_default(name: str, metavar: str):
    """The flag's --help shows its value in each family instead of None."""
    titles = {"lunar": "LunarLander", "car_racing": "CarRacing", "atari": "Atari"}
    shown = ", ".join(f"{titles[family]} {values[name] or 'none'}" for family, values in FAMILY_DEFAULTS.items())
    return tyro.conf.arg(metavar=metavar, help_behavior_hint=f"(default: {shown})")


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
    """whether to save the Q network and the discriminator into `runs/{run_name}`"""

    # Algorithm specific arguments
    env_id: str = "LunarLander-v3"
    """the id of the environment"""
    demo_path: str | None = None
    """the demonstration file (default: the bundled demos/<env-id>.npz; format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes (default: all)"""
    demo_cache: bool = True
    """keep the frames replayed from an image demonstration file (Atari, CarRacing) in $SQIL_DEMO_CACHE (default
    ~/.cache/sqil-demos) and read them from there in later runs, checked against the file's SHA-256 all the same"""
    reward_variant: Literal["unbiased", "biased"] = "unbiased"
    """unbiased: absorbing states judged by the discriminator (Kostrikov et al.); biased: episode ends are terminal"""
    reward_formula: Literal["gail", "logit"] = "gail"
    """gail: r = -log(1 - D) (the paper's); logit: r = log D - log(1 - D), which can be negative"""
    start_state: Literal["demo", "shifted", "rotated"] = "demo"
    """start states while training: the environment's own, LunarLander's shifted start (as rbc_lunar.py),
    or CarRacing's rotated start (as sqil_car_racing.py)"""
    eval_start_state: Literal["demo", "shifted", "rotated"] | None = None
    """start states for evaluation (default: the same as `start_state`)"""
    max_episode_steps: int | None = None
    """cut episodes after this many steps, as truncations (default: the environment's own limit)"""
    eval_max_episode_steps: int | None = None
    """cut evaluation episodes after this many steps (default: --max-episode-steps if given, else Atari 4,500, the
    demonstrations' cap, since a greedy policy that never serves would play to ALE's 108,000 frames)"""
    total_gradient_steps: int = 100_000
    """gradient steps of the learner"""
    k: Annotated[int | None, family_default("k", "INT")] = None
    """one rollout every k gradient steps (as SQIL, Algorithm 1)"""
    alpha: Annotated[float | None, family_default("alpha", "FLOAT")] = None
    """temperature of the Boltzmann policy and the soft value"""
    gamma: float = 0.99
    """the discount factor gamma"""
    learning_rate: Annotated[float | None, family_default("learning_rate", "FLOAT")] = None
    """the learning rate of Adam, for the Q network and the discriminator"""
    batch_size: Annotated[int | None, family_default("batch_size", "INT")] = None
    """agent transitions per learner step; the discriminator sees half as many demonstrations and agent pairs"""
    buffer_size: Annotated[int | None, family_default("buffer_size", "INT")] = None
    """capacity of the agent's replay buffer: transitions (LunarLander) or frames (images)"""
    tau: float = 1.0
    """target network update rate (1.0: hard copy)"""
    target_network_frequency: Annotated[int | None, family_default("target_network_frequency", "INT")] = None
    """gradient steps between target network updates"""
    max_grad_norm: Annotated[float | None, family_default("max_grad_norm", "FLOAT")] = None
    """clip the learner's gradient norm to this"""
    discriminator_frequency: int = 1
    """learner gradient steps per discriminator gradient step"""
    eval_frequency: int = 20_000
    """gradient steps between periodic evaluations (the budget's unit, as --total-gradient-steps)"""
    eval_episodes: int = 10
    """episodes per periodic evaluation and policy (greedy and stochastic)"""
    final_eval_episodes: Annotated[int | None, family_default("final_eval_episodes", "INT")] = None
    """episodes of the final evaluation, per policy (Atari games last up to 4,500 steps)"""
    checkpoint_frequency: int = 0
    """gradient steps between checkpoints in `checkpoints/` (networks, optimisers, both buffers' contents, counters,
    RNG states); 0: none. A run that stops resumes from its last one with --resume"""
    checkpoint_buffer: bool = True
    """keep the agent buffer in checkpoints (Atari: 7.1 KB per frame); without it a checkpoint is the networks,
    optimisers, counters and RNG states (47 MB on Atari), and a resumed run starts its buffer afresh with
    one game of its policy, as a new run does. With --resume, --no-checkpoint-buffer also leaves out a kept buffer"""
    resume: str | None = None
    """continue the run saved in this checkpoint exactly where it stopped"""


# What a resumed run may change: its length, evaluation, checkpointing, logging and device. Every other flag
# defines the experiment and must be the checkpoint's (--demo-path may name a moved copy of the same file).
RESUMABLE = {
    "exp_name", "torch_deterministic", "cuda", "track", "wandb_project_name", "wandb_entity", "capture_video",
    "save_model", "demo_path", "demo_cache", "total_gradient_steps", "eval_frequency", "eval_episodes",
    "final_eval_episodes", "eval_max_episode_steps", "checkpoint_frequency", "checkpoint_buffer", "resume",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Environments: LunarLander (shifted start as rbc_lunar.py), CarRacing (rotated start as
# sqil_car_racing.py), Atari (as sqil_dqn_atari.py); landing success.
# ---------------------------------------------------------------------------------------------
ATARI_PREPROCESSING = dict(noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True)
FRAME_STACK = 4
ATARI_EVAL_MAX_STEPS = 4_500  # agent steps per evaluation game, as the demonstrations (collect_demos.py)
CAR_FRAME_SIZE = 64
SHIFTED_X = 0.7  # |x| of the shifted start, in observation units (the flags are at |x| = 0.2)


def env_family(env_id: str) -> str:
    return "atari" if env_id.endswith("NoFrameskip-v4") else "car_racing" if env_id.startswith("CarRacing") else "lunar"


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
    """CarRacing with the car on the start tile turned 90 degrees, left or right (the same wrapper as
    sqil_car_racing.py, where tests/test_sqil_car_racing.py checks it is perpendicular)."""

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


class AbsorbingFlag(gym.ObservationWrapper):
    """Appends the binary absorbing feature, 0, to every observation (unbiased variant): one more
    entry of a vector, or one more plane of an image stack. The absorbing state itself (zeros, with
    the feature 1 or a plane of 255) exists only in the replay buffers."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.observation_space
        if len(space.shape) == 1:
            low, high = np.append(space.low, 0).astype(np.float32), np.append(space.high, 1).astype(np.float32)
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        else:
            self.observation_space = gym.spaces.Box(0, 255, (space.shape[0] + 1, *space.shape[1:]), np.uint8)

    def observation(self, obs):
        if len(self.observation_space.shape) == 1:
            return np.append(obs, 0).astype(np.float32)
        return np.concatenate([obs, np.zeros((1, *obs.shape[1:]), np.uint8)])


def make_env(
    env_id, start_state, seed, max_episode_steps=None, video_folder=None, absorbing_flag=False, stack=True
) -> gym.Env:
    family, render_mode = env_family(env_id), "rgb_array" if video_folder else None
    if family == "atari":
        import ale_py

        gym.register_envs(ale_py)
        env = gym.wrappers.AtariPreprocessing(gym.make(env_id, render_mode=render_mode), **ATARI_PREPROCESSING)
        if max_episode_steps:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
    else:
        kwargs = {"continuous": False} if family == "car_racing" else {}
        env = gym.make(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    if start_state == "shifted":
        env = ShiftedStart(env)
    if start_state == "rotated":
        env = RotatedStart(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # the true environment return, never the learned reward
    if video_folder:
        env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
    if family == "car_racing":
        env = gym.wrappers.ResizeObservation(gym.wrappers.GrayscaleObservation(env), (CAR_FRAME_SIZE, CAR_FRAME_SIZE))
    if family != "lunar" and stack:
        env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)  # pads with the reset frame
    if absorbing_flag:
        env = AbsorbingFlag(env)
    env.action_space.seed(seed)
    return env


def landing_success(env: gym.Env, obs: np.ndarray, terminated: bool) -> bool:
    """LunarLander (docs/lunar_lander.md, "Landing success"): at rest, both legs down, centre between the flags."""
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
    )


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


def load_image_demos(
    path: str, env_id: str, n_actions: int, num_episodes: int | None, cache: bool = True
) -> list[dict]:
    """Atari and CarRacing files keep seeds and actions: each episode is replayed (or read from the cache:
    `checked_frames`) and checked against its SHA-256 (Atari: of the preprocessed frames, CarRacing: of
    the raw colour frames, preprocessed after the check). Returns per episode the T + 1 frames
    s_0 .. s_T, the T actions and whether it terminated."""
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        recorded = (metadata["observation_space"], metadata["action_space"], metadata.get("atari_preprocessing"))
        lengths, seeds, checksums = data["episode_lengths"], data["episode_seeds"], data["episode_checksums"]
    except Exception as error:
        raise DemoError(
            f"{path} is not an image demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    atari = env_family(env_id) == "atari"
    frame = {"type": "Box", "shape": [84, 84] if atari else [96, 96, 3], "dtype": "uint8"}
    expected = (frame, {"type": "Discrete", "n": n_actions}, ATARI_PREPROCESSING if atari else None)
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]}, actions {recorded[1]} and Atari preprocessing "
            f"{recorded[2]}, but {env_id} needs {expected[0]}, {expected[1]} and {expected[2]}."
        )
    if num_episodes is not None and not 1 <= num_episodes <= len(lengths):
        raise DemoError(f"--num-demos {num_episodes} is not between 1 and the {len(lengths)} episodes of {path}.")
    env = make_env(metadata["env_id"], "demo", seed=0, stack=False)  # CarRacing: Resize(Grayscale(... raw env))

    def replay(seed: int, actions: np.ndarray) -> list[np.ndarray]:
        """The checksummed frames: Atari's preprocessed ones, CarRacing's raw colour ones."""
        observation = env.reset(seed=seed)[0]
        frames = [observation if atari else env.unwrapped.state]
        for action in actions:
            observation = env.step(int(action))[0]
            frames.append(observation if atari else env.unwrapped.state)
        return frames

    episodes, start = [], 0
    for episode, (seed, length) in enumerate(zip(seeds[:num_episodes], lengths)):
        actions = data["actions"][start : start + length]
        frames = checked_frames(replay, int(seed), actions, checksums[episode], metadata["env_id"], cache)
        if frames is None:
            raise DemoError(
                f"replaying episode {episode} of {path} gave other frames than were recorded "
                f"(recorded with {metadata['versions']}); reinstall those versions or re-record the file."
            )
        if not atari:  # as the agent sees them
            frames = np.stack([env.observation(env.env.observation(raw)) for raw in frames])
        terminated = bool(data["terminated"][start + length - 1])
        episodes.append(dict(frames=frames, actions=actions, terminated=terminated))
        start += length
    env.close()
    return episodes


# ---------------------------------------------------------------------------------------------
# Networks, rewards and the learner's objective.
# ---------------------------------------------------------------------------------------------
class QNetwork(nn.Module):
    """Two fully connected layers of 128 units (paper, Section A.3): the Q network, and the
    discriminator, whose output for action a is the logit of D(s, a)."""

    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(obs_dim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, n_actions)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class ImageQNetwork(nn.Module):
    """Atari: the Nature DQN network (Mnih et al. 2015); CarRacing: four convolutions (World Models)
    and two layers of 256 units (paper, A.3). Input: uint8 planes, the frames and, in the unbiased
    variant, the absorbing plane. As in the vector case, the Q network and the discriminator."""

    def __init__(self, in_planes: int, n_actions: int, family: str):
        super().__init__()
        if family == "atari":
            self.network = nn.Sequential(
                nn.Conv2d(in_planes, 32, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(32, 64, 4, stride=2),
                nn.ReLU(),
                nn.Conv2d(64, 64, 3, stride=1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(3136, 512),
                nn.ReLU(),
                nn.Linear(512, n_actions),
            )
        else:
            self.network = nn.Sequential(
                nn.Conv2d(in_planes, 32, 4, stride=2),
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
                nn.Linear(256, n_actions),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


def discriminator_logits(discriminator: QNetwork, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """logit D(s, a): D(s, a) = sigmoid(logit) is the probability that (s, a) is the expert's."""
    return discriminator(obs).gather(1, actions[:, None]).squeeze(1)


def gail_reward(logits: torch.Tensor, formula: str = "gail") -> torch.Tensor:
    """gail: r(s, a) = -log(1 - D(s, a)) = softplus(logit), always positive (the paper's, Section A.2);
    logit: r(s, a) = log D(s, a) - log(1 - D(s, a)) = logit, zero where D cannot tell (as AIRL)."""
    return F.softplus(logits) if formula == "gail" else logits


def discriminator_loss(demo_logits: torch.Tensor, agent_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy: demonstration pairs labelled 1, agent pairs labelled 0."""
    return F.binary_cross_entropy_with_logits(demo_logits, torch.ones_like(demo_logits)) + (
        F.binary_cross_entropy_with_logits(agent_logits, torch.zeros_like(agent_logits))
    )


def soft_value(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """V(s) = alpha * log sum_a exp(Q(s, a) / alpha)  (paper Eq. 2)."""
    return alpha * torch.logsumexp(q_values / alpha, dim=-1)


def soft_bellman_error(q_sa, next_q_values, rewards, terminated, gamma: float, alpha: float):
    """Q(s, a) - (r + gamma V(s')); a terminated transition has V(s') = 0, a truncated one bootstraps."""
    next_v = torch.where(terminated, 0.0, soft_value(next_q_values, alpha))
    return q_sa - (rewards + gamma * next_v)


class TransitionBuffer:
    """Transitions (s, a, s', terminated) as tensors on the training device; circular when full."""

    def __init__(self, capacity: int, obs_dim: int, device: torch.device):
        self.obs = torch.zeros((capacity, obs_dim), device=device)
        self.next_obs = torch.zeros((capacity, obs_dim), device=device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.capacity, self.size, self.position, self.device = capacity, 0, 0, device

    def add(self, obs, actions, next_obs, terminated) -> None:
        n = min(len(actions), self.capacity)
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity
        for buffer, values in zip(
            (self.obs, self.actions, self.next_obs, self.terminated), (obs, actions, next_obs, terminated)
        ):
            buffer[rows] = torch.as_tensor(np.asarray(values)[-n:], device=self.device).to(buffer.dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int):
        idx = torch.randint(0, self.size, (n,), device=self.device)
        return self.obs[idx], self.actions[idx], self.next_obs[idx], self.terminated[idx]


def with_absorbing_states(obs, actions, next_obs, terminated, n_actions: int):
    """Kostrikov et al. (2019), Section 4.2: a terminated transition leads to an explicit absorbing
    state instead of s_T, and the absorbing state loops to itself under every action. Nothing is
    terminal any more; the discriminator judges these transitions like any other. Observations carry
    the absorbing feature as their last entry."""
    next_obs, terminated = np.array(next_obs, dtype=np.float32), np.asarray(terminated, dtype=bool)
    absorbing_state = np.zeros(next_obs.shape[1], dtype=np.float32)
    absorbing_state[-1] = 1.0
    next_obs[terminated] = absorbing_state
    loops = np.tile(absorbing_state, (int(terminated.sum()) * n_actions, 1))
    loop_actions = np.tile(np.arange(n_actions), int(terminated.sum()))
    return (
        np.concatenate([np.asarray(obs, dtype=np.float32), loops]),
        np.concatenate([np.asarray(actions), loop_actions]),
        np.concatenate([next_obs, loops]),
        np.zeros(len(next_obs) + len(loops), dtype=bool),
    )


def frame_stack_indices(num_frames: int, stack: int) -> np.ndarray:
    """Row t lists the frames of one episode that make its stacked observation at time t: the `stack`
    most recent, the first repeated before the episode began (as FrameStackObservation pads)."""
    return np.maximum(np.arange(num_frames)[:, None] + np.arange(1 - stack, 1)[None, :], 0)


class EpisodeFrameBuffer:
    """Image transitions: whole episodes written into a ring of single frames, each frame once; a row
    holds a frame and, if a transition starts there, its action, the row of its successor and
    `terminated`. An episode whose frames get overwritten is dropped whole. With `absorbing`, a
    terminated episode gets n_actions more rows, the absorbing state (frames 0, absorbing plane 255)
    once under every action, each looping to itself, and its last transition leads there, not
    terminated (Kostrikov et al. 2019, as with_absorbing_states for vectors)."""

    def __init__(self, capacity: int, frame_shape: tuple, n_actions: int, absorbing: bool, device: torch.device):
        # torch.empty: the operating system hands out pages only as rows are written (never read unwritten)
        self.frames = torch.empty((capacity, *frame_shape), dtype=torch.uint8, device=device)
        self.is_absorbing = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.obs_rows = torch.zeros((capacity, FRAME_STACK), dtype=torch.long, device=device)
        self.next_row = torch.zeros(capacity, dtype=torch.long, device=device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.episode = torch.full((capacity,), -1, dtype=torch.long, device=device)  # the owner of each row
        self.is_transition = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.valid_rows = torch.zeros(0, dtype=torch.long, device=device)
        self.capacity, self.n_actions, self.absorbing, self.device = capacity, n_actions, absorbing, device
        self.position, self.episodes_added = 0, 0

    def add_episode(self, frames: np.ndarray, actions: np.ndarray, terminated: bool) -> None:
        """frames: the T + 1 frames s_0 .. s_T of one episode; actions: its T actions."""
        num_frames = len(frames)
        with_absorbing = self.absorbing and terminated
        n = num_frames + (self.n_actions if with_absorbing else 0)
        if n > self.capacity:
            raise ValueError(f"an episode of {n} rows does not fit a buffer of {self.capacity}")
        if self.position + n > self.capacity:
            self.position = 0  # wrap around; the rows left at the end keep their (older) episode
        rows = torch.arange(self.position, self.position + n, device=self.device)
        overwritten = self.episode[rows].unique()
        dropped = torch.isin(self.episode, overwritten[overwritten >= 0])
        self.episode[dropped], self.is_transition[dropped] = -1, False

        frame_rows, steps = rows[:num_frames], rows[: num_frames - 1]
        self.frames[frame_rows] = torch.as_tensor(frames, device=self.device)
        self.is_absorbing[rows] = False
        self.obs_rows[frame_rows] = torch.as_tensor(frame_stack_indices(num_frames, FRAME_STACK), device=self.device)
        self.obs_rows[frame_rows] += self.position
        self.actions[steps] = torch.as_tensor(np.asarray(actions), device=self.device)
        self.next_row[steps] = steps + 1
        self.terminated[rows] = False
        self.terminated[steps[-1]] = terminated and not with_absorbing
        if with_absorbing:
            loops = rows[num_frames:]
            self.frames[loops], self.is_absorbing[loops] = 0, True
            self.obs_rows[loops] = loops[:, None]
            self.actions[loops] = torch.arange(self.n_actions, device=self.device)
            self.next_row[loops] = loops[0]
            self.next_row[steps[-1]] = loops[0]  # s_{T-1} -> the absorbing state, not s_T
        self.episode[rows] = self.episodes_added
        self.is_transition[rows] = True
        self.is_transition[frame_rows[-1]] = False  # s_T starts no transition
        self.valid_rows = self.is_transition.nonzero().squeeze(1)
        self.position += n
        self.episodes_added += 1

    def __len__(self) -> int:
        return len(self.valid_rows)

    def observation(self, rows: torch.Tensor) -> torch.Tensor:
        """The stacked frames of the given rows, and the absorbing plane when the buffer has one."""
        # index_select copies whole frames, many times faster on a CPU than frames[obs_rows[rows]] (docs/benchmarks.md)
        stacks = self.frames.index_select(0, self.obs_rows[rows].flatten()).view(len(rows), -1, *self.frames.shape[1:])
        if not self.absorbing:
            return stacks
        plane = (self.is_absorbing[rows].to(torch.uint8) * 255)[:, None, None, None].expand(-1, 1, *stacks.shape[2:])
        return torch.cat([stacks, plane], 1)

    def sample(self, n: int):
        rows = self.valid_rows[torch.randint(0, len(self.valid_rows), (n,), device=self.device)]
        return self.observation(rows), self.actions[rows], self.observation(self.next_row[rows]), self.terminated[rows]


# ---------------------------------------------------------------------------------------------
# Acting: one episode with the Boltzmann or greedy policy.
# ---------------------------------------------------------------------------------------------
def run_episode(env: gym.Env, q_network: nn.Module, policy: str, alpha: float, device: torch.device, seed=None):
    """Plays one episode; returns its transitions, true return, length and landing success (LunarLander).
    Vector transitions keep obs and next_obs; image episodes keep their frames s_0 .. s_T instead."""
    obs, _ = env.reset(seed=seed)
    image = np.ndim(obs) == 3
    episode = {"obs": [], "actions": [], "next_obs": [], "terminated": []}
    frames = [obs[FRAME_STACK - 1]] if image else []  # the newest frame of each stack (the absorbing plane follows)
    done = False
    while not done:
        with torch.no_grad():
            q_values = q_network(torch.as_tensor(np.asarray(obs), device=device)[None])
        if policy == "greedy":
            action = int(q_values.argmax())
        else:  # Boltzmann: pi(a|s) proportional to exp(Q(s, a) / alpha)
            action = int(torch.multinomial(F.softmax(q_values[0] / alpha, dim=-1), 1))
        next_obs, _, terminated, truncated, info = env.step(action)
        episode["actions"].append(action)
        episode["terminated"].append(terminated)
        if image:
            frames.append(next_obs[FRAME_STACK - 1])
        else:
            episode["obs"].append(obs)
            episode["next_obs"].append(next_obs)
        obs, done = next_obs, terminated or truncated
    stats = info["episode"]
    success = landing_success(env, obs, terminated) if hasattr(env.unwrapped, "lander") else False
    episode = {k: np.asarray(v) for k, v in episode.items()}
    if image:
        episode["frames"] = np.stack(frames)
    return episode, float(stats["r"]), int(stats["l"]), success


def buffer_state(buffer: TransitionBuffer | EpisodeFrameBuffer) -> dict:
    """Every field of a buffer; its tensors are whole (no views), so torch.save writes them without a copy."""
    return {name: value for name, value in vars(buffer).items() if name != "device"}


def load_buffer_state(buffer: TransitionBuffer | EpisodeFrameBuffer, state: dict) -> None:
    for name, value in state.items():
        setattr(buffer, name, value.to(buffer.device) if torch.is_tensor(value) else value)


def env_rng_states(env: gym.Env) -> tuple:
    """What the next episodes of `env` depend on, between episodes: its random number generator (starts, tracks,
    no-op resets) and, in Atari, the emulator's. The wrappers hold nothing that outlives an episode."""
    emulator = env.unwrapped.clone_state(include_rng=True) if hasattr(env.unwrapped, "ale") else None
    return env.unwrapped.np_random.bit_generator.state, emulator


def restore_env_rng_states(env: gym.Env, states: tuple) -> None:
    env.unwrapped.np_random.bit_generator.state = states[0]
    if states[1] is not None:
        env.unwrapped.restore_state(states[1])


def evaluate(env: gym.Env, q_network: QNetwork, policy: str, episodes: int, alpha: float, device, seed: int):
    results = [run_episode(env, q_network, policy, alpha, device, seed=seed + i)[1:] for i in range(episodes)]
    returns, _, successes = zip(*results)
    return float(np.mean(returns)), float(np.mean(successes)) if hasattr(env.unwrapped, "lander") else None


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    family = env_family(args.env_id)
    for key, value in FAMILY_DEFAULTS[family].items():  # unset flags take the family's value (logged below)
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.eval_max_episode_steps is None:
        args.eval_max_episode_steps = args.max_episode_steps or (ATARI_EVAL_MAX_STEPS if family == "atari" else None)
    counts = (
        "total_gradient_steps k batch_size buffer_size target_network_frequency discriminator_frequency "
        "eval_frequency eval_episodes final_eval_episodes max_episode_steps eval_max_episode_steps"
    ).split()  # flags that count steps or episodes
    if too_small := [name for name in counts if getattr(args, name) is not None and getattr(args, name) < 1]:
        name = too_small[0]
        fail(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    if not args.alpha > 0:  # the soft value and the Boltzmann policy divide by it
        fail(f"--alpha must be positive, not {args.alpha} (a small value approaches the hard max).")
    eval_start_state = args.eval_start_state or args.start_state
    for start, owner in (("shifted", "lunar"), ("rotated", "car_racing")):
        if start in (args.start_state, eval_start_state) and family != owner:
            fail(f"the {start} start exists for {'LunarLander' if owner == 'lunar' else 'CarRacing'} only.")
    if args.checkpoint_frequency < 0:
        fail(f"--checkpoint-frequency cannot be negative, not {args.checkpoint_frequency}.")
    checkpoint = None
    if args.resume:
        try:
            checkpoint = torch.load(args.resume, map_location="cpu", weights_only=False)
            saved = {**vars(args), **checkpoint["args"]}  # a flag added since the checkpoint: its default
            checkpoint["discriminator"]  # what only this script's checkpoints hold
        except Exception as error:
            fail(f"{args.resume} is not a checkpoint of gail_dqn.py ({type(error).__name__}: {error}).")
        if changed := [key for key, value in vars(args).items() if key not in RESUMABLE and saved[key] != value]:
            fail(
                f"{args.resume} was run with "
                + ", ".join(f"--{key.replace('_', '-')} {saved[key]} (now {getattr(args, key)})" for key in changed)
                + "; a resumed run keeps the checkpoint's settings."
            )
    run_name = (
        checkpoint["run_name"]
        if checkpoint
        else f"{args.env_id}__{args.exp_name}__{args.reward_variant}__{args.start_state}__{args.seed}"
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

    unbiased = args.reward_variant == "unbiased"
    try:
        env = make_env(args.env_id, args.start_state, args.seed, args.max_episode_steps, None, unbiased)
        eval_env = make_env(
            args.env_id, eval_start_state, args.seed + 10_000, args.eval_max_episode_steps, None, unbiased
        )
    except (gym.error.Error, ImportError) as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    if not isinstance(env.action_space, gym.spaces.Discrete) or (
        family == "lunar" and not hasattr(env.unwrapped, "lander")
    ):
        fail(
            f"gail_dqn.py handles LunarLander, CarRacing and Atari (*NoFrameskip-v4) with discrete actions, "
            f"not {args.env_id!r}."
        )
    n_actions = int(env.action_space.n)

    def make_network() -> nn.Module:
        if family == "lunar":
            return QNetwork(env.observation_space.shape[0], n_actions).to(device)
        return ImageQNetwork(env.observation_space.shape[0], n_actions, family).to(device)

    q_network, target_network, discriminator = make_network(), make_network(), make_network()
    target_network.load_state_dict(q_network.state_dict())
    q_optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=args.learning_rate, fused=True)

    # The demonstrations (rewards unused) and the agent's transitions, both with absorbing states if unbiased.
    demo_path = args.demo_path or str(Path(__file__).resolve().parent / "demos" / f"{args.env_id}.npz")
    if family == "lunar":
        obs_dim = env.observation_space.shape[0]
        try:
            demos = load_demos(demo_path, env.unwrapped, args.num_demos)
        except DemoError as error:
            fail(str(error))
        demo_transitions = (demos["obs"], demos["actions"], demos["next_obs"], demos["terminated"])
        if unbiased:
            flag = ((0, 0), (0, 1))  # a zero column: no demonstration state is absorbing
            padded = (
                np.pad(demos["obs"], flag),
                demos["actions"],
                np.pad(demos["next_obs"], flag),
                demos["terminated"],
            )
            demo_transitions = with_absorbing_states(*padded, n_actions)
        demo_buffer = TransitionBuffer(len(demo_transitions[1]), obs_dim, device)
        demo_buffer.add(*demo_transitions)
        agent_buffer = TransitionBuffer(args.buffer_size, obs_dim, device)
    else:
        try:
            demo_episodes = load_image_demos(demo_path, args.env_id, n_actions, args.num_demos, args.demo_cache)
        except DemoError as error:
            fail(str(error))
        frame_shape = env.observation_space.shape[1:]
        rows = sum(len(episode["frames"]) + n_actions for episode in demo_episodes)
        demo_buffer = EpisodeFrameBuffer(rows, frame_shape, n_actions, unbiased, device)
        for episode in demo_episodes:
            demo_buffer.add_episode(episode["frames"], episode["actions"], episode["terminated"])
        agent_buffer = EpisodeFrameBuffer(args.buffer_size, frame_shape, n_actions, unbiased, device)
        print(f"{demo_path}: {len(demo_episodes)} episodes, {len(demo_buffer)} transitions")
    half = args.batch_size // 2

    env.reset(seed=args.seed)  # seeds the environment's RNG; later resets continue its stream
    env_steps, training_successes, start_step = 0, [], 0
    modules = {
        "q_network": q_network,
        "target_network": target_network,
        "discriminator": discriminator,
        "q_optimizer": q_optimizer,
        "discriminator_optimizer": discriminator_optimizer,
    }
    refill = False  # a resumed run without its agent buffer plays a game before its first gradient step
    if checkpoint:
        for key, module in modules.items():
            module.load_state_dict(checkpoint[key])
        if checkpoint["agent_buffer"] is not None and args.checkpoint_buffer:
            load_buffer_state(agent_buffer, checkpoint["agent_buffer"])
        else:
            refill = True
            held = " holds no agent buffer" if checkpoint["agent_buffer"] is None else "'s agent buffer is left out"
            print(f"the checkpoint{held}: the buffer starts afresh with one game of the policy")
        restore_env_rng_states(env, checkpoint["env_rng"])
        start_step, env_steps, training_successes = checkpoint["step"], checkpoint["env_steps"], checkpoint["successes"]
        random.setstate(checkpoint["python_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if device.type == "cuda" and checkpoint["cuda_rng"]:
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        print(f"resumed {run_name} at gradient step {start_step} from {args.resume}")

    def save_checkpoint(step: int) -> None:
        """Everything the run needs to go on as if it had not stopped (on the same device and software), saved
        between two rollouts, written atomically: a run killed at any moment leaves its last complete checkpoint."""
        Path("checkpoints").mkdir(exist_ok=True)
        path = f"checkpoints/{run_name}.pt"
        state = {key: module.state_dict() for key, module in modules.items()}
        state.update(
            args=vars(args),
            run_name=run_name,
            step=step,
            env_steps=env_steps,
            successes=training_successes,
            agent_buffer=buffer_state(agent_buffer) if args.checkpoint_buffer else None,
            env_rng=env_rng_states(env),
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        )
        torch.save(state, path + ".tmp")
        os.replace(path + ".tmp", path)  # never leave a half-written checkpoint behind
        tqdm.write(f"gradient step {step}: checkpoint saved to {path}")

    start_time, start_env_steps = time.time(), env_steps
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    steps = range(start_step, args.total_gradient_steps)
    progress = tqdm(
        steps, "gradient steps", args.total_gradient_steps, initial=start_step, disable=None, mininterval=2.0
    )
    for step in progress:
        # As SQIL's Algorithm 1: every k gradient steps, one rollout of the Boltzmann policy.
        if step % args.k == 0 or refill:
            refill = False
            rollout, episodic_return, length, success = run_episode(env, q_network, "boltzmann", args.alpha, device)
            if family == "lunar":
                transitions = (rollout["obs"], rollout["actions"], rollout["next_obs"], rollout["terminated"])
                agent_buffer.add(*(with_absorbing_states(*transitions, n_actions) if unbiased else transitions))
            else:
                agent_buffer.add_episode(rollout["frames"], rollout["actions"], bool(rollout["terminated"][-1]))
            env_steps += len(rollout["actions"])
            training_successes.append(success)
            writer.add_scalar("charts/episodic_return", episodic_return, step)
            writer.add_scalar("charts/episodic_length", length, step)
            if family == "lunar":
                writer.add_scalar("charts/success", success, step)
            else:  # an image game lasts minutes here: one line each, as sqil_dqn_atari.py
                tqdm.write(f"gradient step {step}: env steps {env_steps}, episodic_return={episodic_return:.0f}")
            writer.add_scalar("charts/env_steps", env_steps, step)

        # The discriminator: demonstration pairs against the agent's pairs, half a batch of each.
        if step % args.discriminator_frequency == 0:
            demo_obs, demo_actions, _, _ = demo_buffer.sample(half)
            agent_obs, agent_actions, _, _ = agent_buffer.sample(half)
            demo_logits = discriminator_logits(discriminator, demo_obs, demo_actions)
            agent_logits = discriminator_logits(discriminator, agent_obs, agent_actions)
            d_loss = discriminator_loss(demo_logits, agent_logits)
            discriminator_optimizer.zero_grad()
            d_loss.backward()
            discriminator_optimizer.step()
            if step % 1000 == 0:
                writer.add_scalar("losses/discriminator_loss", d_loss.item(), step)
                writer.add_scalar("losses/discriminator_demo_accuracy", (demo_logits > 0).float().mean().item(), step)
                writer.add_scalar("losses/discriminator_agent_accuracy", (agent_logits < 0).float().mean().item(), step)

        # The learner: soft Q-learning on the agent's transitions, rewards from the current discriminator.
        obs, actions, next_obs, terminated = agent_buffer.sample(args.batch_size)
        with torch.no_grad():
            rewards = gail_reward(discriminator_logits(discriminator, obs, actions), args.reward_formula)
            next_q_values = target_network(next_obs)
        q_sa = q_network(obs).gather(1, actions[:, None]).squeeze(1)
        td_loss = (soft_bellman_error(q_sa, next_q_values, rewards, terminated, args.gamma, args.alpha) ** 2).mean()
        q_optimizer.zero_grad()
        td_loss.backward()
        if args.max_grad_norm:
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
        q_optimizer.step()

        if step % args.target_network_frequency == 0:
            for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                target_param.data.copy_(args.tau * param.data + (1.0 - args.tau) * target_param.data)

        if step % 1000 == 0:
            writer.add_scalar("losses/td_loss", td_loss.item(), step)
            writer.add_scalar("losses/reward_samp", rewards.mean().item(), step)
            writer.add_scalar("losses/q_samp", q_sa.mean().item(), step)
            elapsed = time.time() - start_time
            writer.add_scalar("charts/SPS", int((env_steps - start_env_steps) / elapsed), step)
            writer.add_scalar("charts/gradient_steps_per_s", int((step + 1 - start_step) / elapsed), step)

        if (step + 1) % args.eval_frequency == 0:
            for policy in ("greedy", "boltzmann"):
                seed = args.seed + 1_000_000 + step
                mean_return, success_rate = evaluate(
                    eval_env, q_network, policy, args.eval_episodes, args.alpha, device, seed
                )
                writer.add_scalar(f"eval/{policy}_episodic_return", mean_return, step)
                message = f"eval {policy} return {mean_return:.1f}"
                if success_rate is not None:
                    writer.add_scalar(f"eval/{policy}_success", success_rate, step)
                    message += f" success {success_rate:.2f}"
                progress.set_postfix_str(message, refresh=False)
                tqdm.write(f"step {step + 1}: env steps {env_steps}, {message}")
        # and at the run's end, for a later --resume with a longer --total-gradient-steps
        if args.checkpoint_frequency and (
            (step + 1) % args.checkpoint_frequency == 0 or step + 1 == args.total_gradient_steps
        ):
            save_checkpoint(step + 1)

    wall_time = time.time() - start_time
    gradient_steps, new_env_steps = args.total_gradient_steps - start_step, env_steps - start_env_steps
    print(
        f"trained {gradient_steps} gradient steps and {new_env_steps} env steps in {wall_time:.0f} s "
        f"({gradient_steps / wall_time:.0f} gradient steps/s, {new_env_steps / wall_time:.0f} env steps/s)"
    )
    # LunarLander, the paper's metric (Figure 4): the best success rate over 100 consecutive training episodes.
    window = min(100, len(training_successes))
    best_training_success = None
    if family == "lunar":
        best_training_success = float(np.convolve(training_successes, np.ones(window) / window, "valid").max())
        print(f"best success over {window} consecutive training episodes: {best_training_success:.2f}")
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save({"q_network": q_network.state_dict(), "discriminator": discriminator.state_dict()}, model_path)
        print(f"model saved to {model_path}")
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_env = make_env(
        args.env_id, eval_start_state, args.seed + 20_000, args.eval_max_episode_steps, video_folder, unbiased
    )
    results = {
        "args": vars(args),
        "env_steps": env_steps,
        "training_episodes": len(training_successes),
        "best_training_success": best_training_success,
        "best_training_success_window": window,
        "wall_time_s": wall_time,
        "device": str(device),
    }
    for policy in ("greedy", "boltzmann"):
        mean_return, success_rate = evaluate(
            final_env, q_network, policy, args.final_eval_episodes, args.alpha, device, seed=args.seed + 2_000_000
        )
        writer.add_scalar(f"eval/final_{policy}_episodic_return", mean_return, args.total_gradient_steps)
        results[f"final_{policy}_return"], results[f"final_{policy}_success"] = mean_return, success_rate
        message = f"final {policy} evaluation ({args.final_eval_episodes} episodes, {eval_start_state} start): return {mean_return:.1f}"
        if success_rate is not None:
            writer.add_scalar(f"eval/final_{policy}_success", success_rate, args.total_gradient_steps)
            message += f", success {success_rate:.2f}"
        print(message)
    final_env.close()
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    env.close()
    writer.close()
