"""SQIL on image-based CarRacing with the 90-degree start (Reddy, Dragan, Levine; Section 5.1, Figure 1).

    python sqil_car_racing.py --start-state rotated      # train and evaluate from the perpendicular start
    python sqil_car_racing.py --start-state demo         # the environment's own start, as the demonstrations

Soft Q-learning on images with Algorithm 1: one soft Q network Q(s, .) over CarRacing's 5 discrete
actions, the Boltzmann policy pi(a|s) = exp((Q(s,a) - V(s)) / alpha) (Eq. 1-2); after every k
gradient steps one rollout (a whole episode) of that policy joins D_samp with reward 0, while the
demonstrations keep reward r_demo; each gradient step minimises B(D_demo, r_demo) + lambda_samp *
B(D_samp, 0) (Eq. 8) on a batch of half demonstrations, half agent transitions.

Preprocessing: the 96x96 colour frame is turned to grayscale and resized to 64x64 (the dashboard
with speed and steering stays in view); the network sees the last 4 frames. Frames are stored once
in the replay buffers and stacked at sample time.
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
    """whether to save the Q network into `runs/{run_name}`"""

    # Algorithm specific arguments
    env_id: str = "CarRacing-v3"
    """the id of the environment (CarRacing, always with discrete actions)"""
    demo_path: str | None = None
    """the demonstration file (default: the bundled demos/<env-id>.npz; format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes (default: all 20)"""
    demo_cache: bool = True
    """keep the frames replayed from the demonstration file in $SQIL_DEMO_CACHE (default ~/.cache/sqil-demos) and
    read them from there in later runs, checked against the file's SHA-256 all the same (docs/demonstrations.md)"""
    start_state: Literal["demo", "rotated"] = "rotated"
    """start states while training: the environment's own (as the demonstrations) or the car rotated 90 degrees"""
    eval_start_state: Literal["demo", "rotated"] | None = None
    """start states for evaluation (default: the same as `start_state`)"""
    max_episode_steps: int | None = None
    """cut episodes after this many steps, as truncations (default: the environment's own 1,000)"""
    total_gradient_steps: int = 20_000
    """gradient steps of Algorithm 1 (line 4)"""
    k: int = 50
    """one rollout (a whole episode) every k gradient steps (Algorithm 1, line 5; paper: 50 for Car Racing)"""
    lambda_samp: float = 0.01
    """weight of the Bellman error on agent transitions (paper: 0.01 for Car Racing)"""
    r_demo: float = 1.0
    """reward of demonstration transitions (paper: 1)"""
    alpha: float = 0.1
    """temperature of the Boltzmann policy and the soft value (docs/car_racing.md says why not 1)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    learning_rate: float = 1e-4
    """the learning rate of Adam"""
    batch_size: int = 64
    """transitions per gradient step: half demonstrations, half agent transitions"""
    buffer_size: int = 200_000
    """frames the agent's replay buffer D_samp holds (whole episodes are dropped when overwritten)"""
    target_network_frequency: int = 500
    """gradient steps between target network updates (hard copy)"""
    max_grad_norm: float = 10.0
    """clip the gradient norm to this"""
    eval_frequency: int = 5_000
    """gradient steps between periodic evaluations (the budget's unit, as --total-gradient-steps); 0: none"""
    eval_episodes: int = 5
    """episodes per periodic evaluation and policy (greedy and Boltzmann)"""
    final_eval_episodes: int = 100
    """episodes of the final evaluation, per policy (paper: 100)"""
    num_envs: int = 1
    """environments played at once, each in its own process when more than one: every k * num_envs gradient
    steps, one rollout in each (the same k gradient steps per rollout); evaluations play num_envs episodes at once"""


# ---------------------------------------------------------------------------------------------
# Environment: discrete CarRacing, optionally from the rotated start, and the preprocessing.
# ---------------------------------------------------------------------------------------------
FRAME_SIZE = 64
FRAME_STACK = 4


class RotatedStart(gym.Wrapper):
    """Puts the car on the start tile rotated by 90 degrees (to the left or the right, drawn from the
    environment's RNG), so that it begins perpendicular to the track (paper, Section 5.1). No
    demonstration starts like this: the expert always starts parallel to the track."""

    def reset(self, **kwargs):
        self.env.reset(**kwargs)
        from gymnasium.envs.box2d.car_dynamics import SIZE, WHEELPOS, Car

        car_racing = self.env.unwrapped
        _, track_angle, x, y = car_racing.track[0]
        side = 1.0 if car_racing.np_random.random() < 0.5 else -1.0
        car_racing.car.destroy()
        car_racing.car = Car(car_racing.world, track_angle + side * np.pi / 2, x, y)
        for wheel, (wx, wy) in zip(car_racing.car.wheels, WHEELPOS):
            # Car() places the wheels as if the car were unrotated; where they belong, they don't jolt the hull
            wheel.position = car_racing.car.hull.GetWorldPoint((wx * SIZE, wy * SIZE))
        obs, *_, info = car_racing.step(None)  # renders the new start, as the environment's own reset does
        return obs, info


def make_env(
    env_id: str, start_state: str, seed: int, max_episode_steps=None, video_folder=None, stack: bool = True
) -> gym.Env:
    render_mode = "rgb_array" if video_folder else None
    env = gym.make(env_id, continuous=False, max_episode_steps=max_episode_steps, render_mode=render_mode)
    if start_state == "rotated":
        env = RotatedStart(env)
    env = gym.wrappers.RecordEpisodeStatistics(env)  # the true environment return, never the SQIL reward
    if video_folder:
        env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode < 3)
    env = gym.wrappers.GrayscaleObservation(env)
    env = gym.wrappers.ResizeObservation(env, (FRAME_SIZE, FRAME_SIZE))
    if stack:
        env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)  # pads with the reset frame
    env.action_space.seed(seed)
    return env


def make_vector_env(
    env_id: str, start_state: str, seed: int, num_envs: int, max_episode_steps=None, video_folder=None
) -> gym.vector.VectorEnv:
    """`num_envs` copies of make_env (environment i seeded with seed + i, only the first filmed). More
    than one run in subprocesses: CarRacing renders every frame on the CPU, the slow part of a rollout."""
    env_fns = [
        lambda i=i: make_env(env_id, start_state, seed + i, max_episode_steps, video_folder if i == 0 else None)
        for i in range(num_envs)
    ]
    vector_env = gym.vector.AsyncVectorEnv if num_envs > 1 else gym.vector.SyncVectorEnv
    return vector_env(env_fns, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


# ---------------------------------------------------------------------------------------------
# Demonstrations (format: docs/demonstrations.md). CarRacing files keep each episode's seed and
# actions; replaying them gives the frames, checked against the SHA-256 of the raw colour frames.
# ---------------------------------------------------------------------------------------------
class DemoError(ValueError):
    """A demonstration file that cannot be used, with the one sentence that says why."""


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


def load_demos(path: str, env_id: str, num_episodes: int | None, cache: bool = True) -> list[dict]:
    """The first `num_episodes` demonstration episodes, each as its preprocessed frames (one more
    than its actions: the last frame is the final observation), actions, and whether it terminated.
    The raw frames are replayed (or read from the cache: `checked_frames`), then preprocessed."""
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        recorded = (metadata["observation_space"], metadata["action_space"])
        lengths, seeds, checksums = data["episode_lengths"], data["episode_seeds"], data["episode_checksums"]
    except Exception as error:
        raise DemoError(
            f"{path} is not a CarRacing demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    expected = ({"type": "Box", "shape": [96, 96, 3], "dtype": "uint8"}, {"type": "Discrete", "n": 5})
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]} and actions {recorded[1]}, "
            f"but discrete CarRacing has observations {expected[0]} and actions {expected[1]}."
        )
    if num_episodes is not None and not 1 <= num_episodes <= len(lengths):
        raise DemoError(f"--num-demos {num_episodes} is not between 1 and the {len(lengths)} episodes of {path}.")
    env = make_env(env_id, "demo", seed=0, stack=False)  # ResizeObservation(GrayscaleObservation(... raw env))

    def replay(seed: int, actions: np.ndarray) -> list[np.ndarray]:
        env.reset(seed=seed)
        raw_frames = [env.unwrapped.state]  # the colour frame the environment rendered, before preprocessing
        for action in actions:
            env.step(int(action))
            raw_frames.append(env.unwrapped.state)
        return raw_frames

    episodes, start = [], 0
    for episode, (seed, length) in enumerate(zip(seeds[:num_episodes], lengths)):
        actions = data["actions"][start : start + length]
        raw_frames = checked_frames(replay, int(seed), actions, checksums[episode], env_id, cache)
        if raw_frames is None:
            raise DemoError(
                f"replaying episode {episode} of {path} gave other frames than were recorded "
                f"(recorded with {metadata['versions']}); reinstall those versions or re-record the file."
            )
        frames = np.stack([env.observation(env.env.observation(raw)) for raw in raw_frames])  # as the agent sees
        episodes.append(dict(frames=frames, actions=actions, terminated=bool(data["terminated"][start + length - 1])))
        start += length
    env.close()
    return episodes


# ---------------------------------------------------------------------------------------------
# The replay buffer: whole episodes of single frames, each frame stored once.
# ---------------------------------------------------------------------------------------------
def frame_stack_indices(num_frames: int, stack: int) -> np.ndarray:
    """Row t lists the frames that make the stacked observation at time t of one episode: the `stack`
    most recent, the first frame repeated before the episode began (as FrameStackObservation pads)."""
    return np.maximum(np.arange(num_frames)[:, None] + np.arange(1 - stack, 1)[None, :], 0)


class EpisodeFrameBuffer:
    """Episodes written whole into a ring of frames; transition t of an episode is stored at the row
    of its frame s_t. When a new episode overwrites any frame of an older one, the older episode is
    dropped whole, so no transition ever stacks a frame from another episode. SQIL keeps two:
    the demonstrations (sized to fit them, never overwritten) and the agent's own."""

    def __init__(self, capacity: int, device: torch.device):
        self.frames = torch.zeros((capacity, FRAME_SIZE, FRAME_SIZE), dtype=torch.uint8, device=device)
        self.obs_rows = torch.zeros((capacity, FRAME_STACK), dtype=torch.long, device=device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.episode = torch.full((capacity,), -1, dtype=torch.long, device=device)  # owner of each row
        self.is_transition = torch.zeros(capacity, dtype=torch.bool, device=device)
        self.valid_rows = torch.zeros(0, dtype=torch.long, device=device)
        self.capacity, self.position, self.episodes_added, self.device = capacity, 0, 0, device

    def add_episode(self, frames: np.ndarray, actions: np.ndarray, terminated: bool) -> None:
        """frames: the T + 1 frames s_0 .. s_T of an episode, actions: its T actions."""
        n = len(frames)
        if n > self.capacity:
            raise ValueError(f"an episode of {n} frames does not fit a buffer of {self.capacity}")
        if self.position + n > self.capacity:
            self.position = 0  # wrap around; the rows left at the end keep their (older) episode
        rows = torch.arange(self.position, self.position + n, device=self.device)
        overwritten = self.episode[rows].unique()
        dropped = torch.isin(self.episode, overwritten[overwritten >= 0])
        self.episode[dropped], self.is_transition[dropped] = -1, False

        self.frames[rows] = torch.as_tensor(frames, device=self.device)
        self.obs_rows[rows] = torch.as_tensor(frame_stack_indices(n, FRAME_STACK), device=self.device) + self.position
        self.actions[rows[:-1]] = torch.as_tensor(np.asarray(actions), device=self.device)
        self.terminated[rows] = False
        self.terminated[rows[-2]] = terminated  # only the last transition can end in a terminal state
        self.episode[rows] = self.episodes_added
        self.is_transition[rows[:-1]] = True  # the final frame s_T starts no transition
        self.valid_rows = self.is_transition.nonzero().squeeze(1)
        self.position += n
        self.episodes_added += 1

    def __len__(self) -> int:
        return len(self.valid_rows)

    def stacks(self, rows: torch.Tensor) -> torch.Tensor:
        # index_select copies whole frames, many times faster on a CPU than frames[obs_rows[rows]] (docs/benchmarks.md)
        return self.frames.index_select(0, self.obs_rows[rows].flatten()).view(len(rows), -1, *self.frames.shape[1:])

    def sample(self, n: int):
        rows = self.valid_rows[torch.randint(0, len(self.valid_rows), (n,), device=self.device)]
        # s' of the transition at row r is the stack at row r + 1: the same episode's next frame
        return self.stacks(rows), self.actions[rows], self.stacks(rows + 1), self.terminated[rows]


def balanced_batch(demo_buffer: EpisodeFrameBuffer, agent_buffer: EpisodeFrameBuffer, batch_size: int):
    """SQIL's balanced sample (Section 4): rows [:batch_size // 2] from D_demo, the rest from D_samp."""
    half = batch_size // 2
    return [torch.cat(pair) for pair in zip(demo_buffer.sample(half), agent_buffer.sample(batch_size - half))]


# ---------------------------------------------------------------------------------------------
# The soft Q network and the soft Bellman error (Eq. 1-2, 6).
# ---------------------------------------------------------------------------------------------
class QNetwork(nn.Module):
    """Four convolutions as the World Models encoder (Ha and Schmidhuber 2018), then two fully
    connected layers of 256 units (paper, Section A.3), on 4 stacked 64x64 frames."""

    def __init__(self, n_actions: int):
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
            nn.Linear(256, n_actions),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


def soft_value(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """V(s) = alpha * log sum_a exp(Q(s, a) / alpha)  (Eq. 2)."""
    return alpha * torch.logsumexp(q_values / alpha, dim=-1)


def soft_bellman_error(q_sa, next_q_values, rewards, terminated, gamma: float, alpha: float):
    """Q(s, a) - (r + gamma V(s')), the term squared in B (Eq. 6). A terminated transition (lap
    finished, or off the playfield) ends in an absorbing state of value 0; a truncated one (the time
    limit) bootstraps from s'."""
    return q_sa - (rewards + gamma * (~terminated).float() * soft_value(next_q_values, alpha))


# ---------------------------------------------------------------------------------------------
# Acting: one episode in each environment of a vector, with the greedy or the Boltzmann policy.
# ---------------------------------------------------------------------------------------------
def run_episodes(envs: gym.vector.VectorEnv, q_network: QNetwork, policy: str, alpha: float, device, seeds=None):
    """Plays one episode in every environment of `envs` at once; returns, per environment, the
    episode's frames s_0 .. s_T, actions, whether it terminated, true return and length. An
    environment that finishes early goes on stepping (the vector resets it) until all have finished;
    those steps are discarded."""
    obs, _ = envs.reset(seed=seeds)
    frames, actions = [[stack[-1]] for stack in obs], [[] for _ in range(envs.num_envs)]
    episodes = [None] * envs.num_envs
    while any(episode is None for episode in episodes):
        with torch.no_grad():
            q_values = q_network(torch.as_tensor(obs, device=device))
        if policy == "greedy":
            action = q_values.argmax(dim=1)
        else:  # Boltzmann: pi(a|s) proportional to exp(Q(s, a) / alpha)  (Eq. 1)
            action = torch.multinomial(F.softmax(q_values / alpha, dim=1), 1).squeeze(1)
        action = action.cpu().numpy()
        obs, _, terminated, truncated, info = envs.step(action)
        for i, episode in enumerate(episodes):
            if episode is not None:
                continue
            frames[i].append(obs[i][-1])  # at an episode's end, the final observation (autoreset waits a step)
            actions[i].append(action[i])
            if terminated[i] or truncated[i]:
                episode_return, length = float(info["episode"]["r"][i]), int(info["episode"]["l"][i])
                episodes[i] = (np.stack(frames[i]), np.asarray(actions[i]), bool(terminated[i]), episode_return, length)
    return episodes


def evaluate(envs: gym.vector.VectorEnv, q_network: QNetwork, policy: str, episodes: int, alpha: float, device, seed):
    """Mean and standard deviation of the true return over `episodes` episodes with seeds seed, seed + 1, ..."""
    returns = []
    for first in range(0, episodes, envs.num_envs):
        seeds = [seed + first + i for i in range(envs.num_envs)]
        returns += [episode[3] for episode in run_episodes(envs, q_network, policy, alpha, device, seeds)]
    return float(np.mean(returns[:episodes])), float(np.std(returns[:episodes]))


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    counts = (
        "total_gradient_steps k batch_size buffer_size target_network_frequency "
        "eval_episodes final_eval_episodes num_envs max_episode_steps"
    ).split()  # flags that count steps or episodes
    if too_small := [name for name in counts if getattr(args, name) is not None and getattr(args, name) < 1]:
        name = too_small[0]
        fail(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    eval_start_state = args.eval_start_state or args.start_state
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
    if not args.env_id.startswith("CarRacing"):
        fail(f"sqil_car_racing.py trains on CarRacing only, not {args.env_id!r}.")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    try:
        envs = make_vector_env(args.env_id, args.start_state, args.seed, args.num_envs, args.max_episode_steps)
        eval_envs = make_vector_env(
            args.env_id, eval_start_state, args.seed + 10_000, args.num_envs, args.max_episode_steps
        )
    except (gym.error.Error, ImportError) as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    n_actions = int(envs.single_action_space.n)

    q_network = QNetwork(n_actions).to(device)
    target_network = QNetwork(n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)

    # D_demo: the demonstrations, never evicted. D_samp: the agent's rollouts (reward 0).
    demo_path = args.demo_path or str(Path(__file__).resolve().parent / "demos" / f"{args.env_id}.npz")
    load_start = time.time()
    try:
        demos = load_demos(demo_path, args.env_id, args.num_demos, args.demo_cache)
    except DemoError as error:
        fail(str(error))
    demo_buffer = EpisodeFrameBuffer(sum(len(demo["frames"]) for demo in demos), device)
    for demo in demos:
        demo_buffer.add_episode(demo["frames"], demo["actions"], demo["terminated"])
    print(
        f"{demo_path}: {len(demos)} episodes, {len(demo_buffer)} transitions (replayed in {time.time() - load_start:.0f} s)"
    )
    agent_buffer = EpisodeFrameBuffer(args.buffer_size, device)
    half = args.batch_size // 2
    rewards = torch.cat([torch.full((half,), args.r_demo), torch.zeros(args.batch_size - half)]).to(device)

    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()),
    )
    envs.reset(seed=args.seed)  # seeds the environments' RNGs; later resets continue their streams
    env_steps, training_returns, start_time = 0, [], time.time()
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    progress = tqdm(range(args.total_gradient_steps), "gradient steps", disable=None, mininterval=2.0)
    for step in progress:
        # Algorithm 1, lines 5-7: every k gradient steps, one rollout of pi_theta joins D_samp (the
        # first before any gradient step, so that both halves of every batch exist from the start);
        # with num_envs environments, num_envs rollouts at once every k * num_envs gradient steps.
        if step % (args.k * args.num_envs) == 0:
            for frames, actions, terminated, episodic_return, length in run_episodes(
                envs, q_network, "boltzmann", args.alpha, device
            ):
                agent_buffer.add_episode(frames, actions, terminated)
                env_steps += length
                training_returns.append(episodic_return)
                writer.add_scalar("charts/episodic_return", episodic_return, step)
                writer.add_scalar("charts/episodic_length", length, step)
            writer.add_scalar("charts/env_steps", env_steps, step)

        # Algorithm 1, line 4: one gradient step on a batch of half demonstrations, half agent transitions.
        obs, actions, next_obs, terminated = balanced_batch(demo_buffer, agent_buffer, args.batch_size)
        q_values = q_network(obs)
        q_sa = q_values.gather(1, actions[:, None]).squeeze(1)
        with torch.no_grad():
            next_q_values = target_network(next_obs)
        errors = soft_bellman_error(q_sa, next_q_values, rewards, terminated, args.gamma, args.alpha)
        bellman_demo, bellman_samp = (errors[:half] ** 2).mean(), (errors[half:] ** 2).mean()
        loss = bellman_demo + args.lambda_samp * bellman_samp  # Eq. 8, as batch means
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
        optimizer.step()

        if step % args.target_network_frequency == 0:
            target_network.load_state_dict(q_network.state_dict())

        if step % 100 == 0:
            writer.add_scalar("losses/loss", loss.item(), step)
            writer.add_scalar("losses/bellman_demo", bellman_demo.item(), step)
            writer.add_scalar("losses/bellman_samp", bellman_samp.item(), step)
            writer.add_scalar("losses/q_demo", q_sa[:half].mean().item(), step)
            writer.add_scalar("losses/q_samp", q_sa[half:].mean().item(), step)
            elapsed = time.time() - start_time
            writer.add_scalar("charts/SPS", int(env_steps / elapsed), step)
            writer.add_scalar("charts/gradient_steps_per_s", int((step + 1) / elapsed), step)
        if step % 1000 == 0:
            tqdm.write(f"step {step}: env steps {env_steps}, last training return {training_returns[-1]:.1f}")

        if args.eval_frequency and (step + 1) % args.eval_frequency == 0:
            for policy in ("greedy", "boltzmann"):
                seed = args.seed + 1_000_000 + step
                mean_return, _ = evaluate(eval_envs, q_network, policy, args.eval_episodes, args.alpha, device, seed)
                writer.add_scalar(f"eval/{policy}_episodic_return", mean_return, step)
                progress.set_postfix_str(f"eval {policy} return {mean_return:.1f}", refresh=False)
                tqdm.write(f"step {step + 1}: eval {policy} return {mean_return:.1f} ({eval_start_state} start)")

    wall_time = time.time() - start_time
    print(
        f"trained {args.total_gradient_steps} gradient steps and {env_steps} env steps in {wall_time:.0f} s "
        f"({env_steps / wall_time:.0f} env steps/s, {args.total_gradient_steps / wall_time:.0f} gradient steps/s)"
    )
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save(q_network.state_dict(), model_path)
        print(f"model saved to {model_path}")
    envs.close()
    eval_envs.close()
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_envs = make_vector_env(
        args.env_id, eval_start_state, args.seed + 20_000, args.num_envs, args.max_episode_steps, video_folder
    )
    results = {
        "args": vars(args),
        "env_steps": env_steps,
        "training_episodes": len(training_returns),
        "wall_time_s": wall_time,
        "device": str(device),
    }
    for policy in ("greedy", "boltzmann"):
        mean_return, std_return = evaluate(
            final_envs, q_network, policy, args.final_eval_episodes, args.alpha, device, seed=args.seed + 2_000_000
        )
        writer.add_scalar(f"eval/final_{policy}_episodic_return", mean_return, args.total_gradient_steps)
        results[f"final_{policy}_return"], results[f"final_{policy}_return_std"] = mean_return, std_return
        print(
            f"final {policy} evaluation ({args.final_eval_episodes} episodes, {eval_start_state} start): "
            f"return {mean_return:.1f} +- {std_return:.1f}"
        )
    final_envs.close()
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    writer.close()
