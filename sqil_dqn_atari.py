"""SQIL on soft Q-learning for Atari (Reddy, Dragan, Levine; Section 5.2 and Algorithm 1).

    python sqil_dqn_atari.py --env-id BreakoutNoFrameskip-v4
    python sqil_dqn_atari.py --env-id PongNoFrameskip-v4 --total-timesteps 2000000

Soft Q-learning with the Nature DQN network: the policy is pi(a|s) = exp((Q(s,a) - V(s)) / alpha),
V(s) = alpha * logsumexp(Q(s, .) / alpha) (Eq. 1-2), with a target network. SQIL changes three things:
the demonstrations sit in their own buffer with reward r_demo and are never evicted; the agent's
transitions get reward 0; every gradient step takes half its batch from each, and minimises
B(D_demo, r_demo) + lambda_samp * B(D_samp, 0) (Eq. 8; paper: lambda_samp = 1, k = 1 for Atari).
Defaults are the authors' code's update ratio, batch and target period with temperature 0.1, the
configuration measured to learn Pong here (docs/atari.md); the paper's k = 1 and temperature 1 are flags.
The environment's reward is never used for learning; it is only logged, as the true game score.

Memory: both buffers store each 84x84 frame once, not four times inside stacked observations, and
rebuild stacks when they sample (about 7.1 KB per agent transition: 1,000,000 fit in 7.1 GB).
"""

import hashlib
import importlib.metadata
import json
import os
import pickle
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

gym.register_envs(ale_py)  # the `*NoFrameskip-v4` ids


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
    """whether to film the first three games of the final evaluation (`videos/{run_name}/game{i}/`)"""
    save_model: bool = False
    """whether to save the Q network into `runs/{run_name}`"""

    # Algorithm specific arguments
    env_id: str = "BreakoutNoFrameskip-v4"
    """the id of the environment (any `*NoFrameskip-v4` game)"""
    demo_path: str | None = None
    """the demonstration file (default: the bundled demos/<env-id>.npz; format: docs/demonstrations.md)"""
    num_demos: int | None = None
    """use only the first this many demonstration episodes (default: all; the paper used 20)"""
    demo_cache: bool = True
    """keep the frames replayed from the demonstration file in $SQIL_DEMO_CACHE (default
    ~/.cache/sqil-demos) and read them from there in later runs, checked against the file's SHA-256 all the same"""
    total_timesteps: int = 10_000_000
    """total environment steps (agent steps of 4 frames, all environments together)"""
    num_envs: int = 1
    """the number of parallel game environments"""
    learning_rate: float = 1e-4
    """the learning rate of Adam"""
    buffer_size: int = 1_000_000
    """capacity of the agent's replay buffer D_samp, in transitions (demonstrations are kept apart)"""
    gamma: float = 0.99
    """the discount factor gamma"""
    tau: float = 1.0
    """target network update rate (1.0: hard copy)"""
    target_network_frequency: int = 10_000
    """gradient steps between target network updates (the authors' code: 10,000)"""
    batch_size: int = 64
    """transitions per gradient step: half demonstrations, half agent transitions (the authors' code: 32 + 32)"""
    learning_starts: int = 1_000
    """environment steps before the first gradient step"""
    train_frequency: int = 4
    """environment steps per gradient step (paper: k = 1; the authors' code and CleanRL's DQN: 4)"""
    r_demo: float = 1.0
    """reward of demonstration transitions"""
    lambda_samp: float = 1.0
    """weight of the Bellman error on agent transitions (paper: 1 for Atari)"""
    alpha: float = 0.1
    """temperature of the Boltzmann policy and the soft value (paper: 1, which did not learn Pong here: docs/atari.md)"""
    max_grad_norm: float = 10.0
    """the maximum norm of the gradient (clipping)"""
    max_episode_steps: int | None = None
    """cut episodes after this many agent steps, as truncations (default: ALE's 108,000 frames)"""
    eval_frequency: int = 250_000
    """env steps between greedy evaluations (the budget's unit, as --total-timesteps); 0: none until the end"""
    eval_episodes: int = 10
    """episodes per evaluation, and of the final evaluation"""
    eval_max_episode_steps: int | None = None
    """agent steps per evaluation game (default: --max-episode-steps if given, else 4,500 = 18,000 frames, the
    demonstrations' cap: a greedy policy that never serves would play to ALE's 108,000); a capped game scores what it scored"""
    checkpoint_frequency: int = 0
    """env steps between checkpoints in `checkpoints/` (networks, optimiser, counters, RNG states, the games'
    states, the agent buffer); 0: none. A run that stops resumes from its last one with --resume"""
    checkpoint_buffer: bool = True
    """keep the agent buffer in checkpoints (its frames in a file beside it, 7.1 KB per transition); without it
    a checkpoint is a few MB and a resumed run refills the buffer with `learning_starts` steps before updating.
    With --resume, --no-checkpoint-buffer also leaves out a buffer the checkpoint kept (its frames file gone)"""
    resume: str | None = None
    """continue the run saved in this checkpoint exactly where it stopped, its games included"""


# What a resumed run may change: its length, evaluation, checkpointing, logging and device. Every other flag
# defines the experiment and must be the checkpoint's (--demo-path may name a moved copy of the same file).
RESUMABLE = {
    "exp_name", "torch_deterministic", "cuda", "track", "wandb_project_name", "wandb_entity", "capture_video",
    "save_model", "demo_path", "demo_cache", "total_timesteps", "eval_frequency", "eval_episodes",
    "eval_max_episode_steps", "checkpoint_frequency", "checkpoint_buffer", "resume",
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Environment: the preprocessing the demonstrations were recorded through, then 4 stacked frames.
# ---------------------------------------------------------------------------------------------
ATARI_PREPROCESSING = dict(noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True)
FRAME_STACK = 4
ATARI_EVAL_MAX_STEPS = 4_500  # agent steps per evaluation game, as the demonstrations (collect_demos.py)


def make_env(env_id: str, seed: int, max_episode_steps: int | None = None, video_folder: str | None = None):
    """Noop reset (up to 30), frame skip 4 with max-pooling, 84x84 grayscale, full games: a life lost
    does not end an episode, so `charts/episodic_return` is a whole game's score. No FIRE-on-reset
    wrapper: the demonstrations were recorded without one and show when to fire. `video_folder` films the
    environment's first game."""

    def thunk() -> gym.Env:
        env = gym.make(env_id, render_mode="rgb_array" if video_folder else None)
        env = gym.wrappers.AtariPreprocessing(env, **ATARI_PREPROCESSING)
        if max_episode_steps:
            env = gym.wrappers.TimeLimit(env, max_episode_steps)
        env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)
        env = gym.wrappers.RecordEpisodeStatistics(env)
        if video_folder:
            env = gym.wrappers.RecordVideo(env, video_folder, episode_trigger=lambda episode: episode == 0)
        env.action_space.seed(seed)
        return env

    return thunk


# ---------------------------------------------------------------------------------------------
# Replay: frames stored once, stacks rebuilt when sampled.
# ---------------------------------------------------------------------------------------------
class FrameReplayBuffer:
    """Each environment writes a stream of 84x84 frames in order, into its own circular rows. A row
    holds the newest frame of one observation and, when that observation was reached by a
    transition, the transition's action and `terminated` flag; `age` counts the steps since the
    episode's reset frame (age 0). The transition stored at row p starts from the observation whose
    newest frame is row p - 1. A stacked observation is rebuilt from the FRAME_STACK rows ending at
    its own row, the reset frame repeated before the episode began (as FrameStackObservation pads).
    About 7.1 KB per transition: one frame, an age, an action and a flag.

    Only the frames live on the training device; the bookkeeping stays in numpy, where the sample's
    rows are chosen. On a GPU this keeps the host from waiting for the device: one pinned,
    non-blocking copy of indices per sample, no device-to-host reads."""

    def __init__(self, capacity: int, num_streams: int, frame_shape: tuple, device: torch.device):
        self.rows = capacity // num_streams + 1  # + 1: a transition needs its previous frame too
        # torch.empty: the operating system hands out pages only as rows are written (never read unwritten)
        self.frames = torch.empty((num_streams, self.rows, *frame_shape), dtype=torch.uint8, device=device)
        self.age = np.zeros((num_streams, self.rows), dtype=np.int32)
        self.actions = np.zeros((num_streams, self.rows), dtype=np.uint8)
        self.terminated = np.zeros((num_streams, self.rows), dtype=bool)
        self.head = np.zeros(num_streams, dtype=np.int64)  # next row to write, per stream
        self.size = np.zeros(num_streams, dtype=np.int64)
        self.overwritten = np.zeros(num_streams, dtype=bool)  # has the stream wrapped around?
        self.current_age = np.zeros(num_streams, dtype=np.int64)
        self.device = device

    def to_device(self, array: np.ndarray) -> torch.Tensor:
        """A host-to-device copy that does not make the host wait (pinned memory, non-blocking)."""
        tensor = torch.as_tensor(array)
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _write(self, streams: np.ndarray, frames, ages: np.ndarray, actions, terminated) -> None:
        rows = self.head[streams]
        self.overwritten[streams] |= self.size[streams] == self.rows
        flat_rows = self.to_device(streams * self.rows + rows)
        self.frames.view(-1, *self.frames.shape[2:]).index_copy_(0, flat_rows, self.to_device(np.asarray(frames)))
        self.age[streams, rows] = ages
        self.actions[streams, rows] = actions
        self.terminated[streams, rows] = terminated
        self.head[streams] = (rows + 1) % self.rows
        self.size[streams] = np.minimum(self.size[streams] + 1, self.rows)
        self.current_age[streams] = ages

    def start_episodes(self, streams: np.ndarray, first_frames) -> None:
        """The reset frame of a new episode in each of `streams` (no transition reaches it)."""
        zeros = np.zeros(len(streams), dtype=np.int64)
        self._write(streams, first_frames, zeros, zeros, zeros.astype(bool))

    def add(self, streams: np.ndarray, actions, next_frames, terminated) -> None:
        """One transition per stream, in every buffer's order (s, a, s', terminated; s is the stream's
        previous frames): its action, the newest frame of the observation it reached (the true final
        observation at an episode's end, not the next episode's first) and `terminated`."""
        self._write(streams, next_frames, self.current_age[streams] + 1, actions, terminated)

    def num_transitions(self) -> int:
        return int(self.size.sum())

    BOOKKEEPING = ("age", "actions", "terminated", "head", "size", "overwritten", "current_age")

    def state_dict(self) -> dict:
        """Everything but the frames, which `save_frames` writes apart."""
        return {name: getattr(self, name).copy() for name in self.BOOKKEEPING}

    def load_state_dict(self, state: dict) -> None:
        for name in self.BOOKKEEPING:
            getattr(self, name)[...] = state[name]

    def save_frames(self, path: str) -> None:
        """The written rows' frames as raw bytes, stream by stream, without a copy of the buffer in memory
        (torch.save would copy a slice, or write a view's whole storage: the empty capacity too)."""
        with open(path, "wb") as f:
            for stream in self.frames[:, : int(self.size.max())]:
                stream.cpu().numpy().tofile(f)

    def load_frames(self, path: str, chunk: int = 65_536) -> None:
        """Reads what `save_frames` wrote (after `load_state_dict`), `chunk` rows at a time."""
        used = int(self.size.max())
        saved = np.memmap(path, np.uint8, "r", shape=(len(self.size), used, *self.frames.shape[2:]))
        for stream in range(len(self.size)):
            for start in range(0, used, chunk):
                rows = slice(start, min(start + chunk, used))
                self.frames[stream, rows] = torch.from_numpy(np.array(saved[stream, rows]))

    def stack_rows(self, rows: np.ndarray, age: np.ndarray) -> np.ndarray:
        """The rows of the FRAME_STACK frames of the observation whose newest frame is at `rows`."""
        back = np.arange(FRAME_STACK - 1, -1, -1)
        return (rows[:, None] - np.minimum(back, age[:, None])) % self.rows

    def sample(self, n: int):
        """n transitions, uniformly over streams weighted by their size, as stacked uint8 tensors."""
        streams = np.random.choice(len(self.size), n, p=self.size / self.size.sum())
        size = self.size[streams]
        oldest = (self.head[streams] - size) % self.rows
        # A transition needs the FRAME_STACK rows before its own; once a stream has wrapped, the few
        # oldest rows have lost them (overwritten by the newest). Reset frames are no transitions.
        skip = np.where(self.overwritten[streams], FRAME_STACK, 1)
        rows = np.zeros(n, dtype=np.int64)
        todo = np.ones(n, dtype=bool)
        while todo.any():
            offset = skip + (np.random.random(n) * (size - skip)).astype(np.int64)
            rows = np.where(todo, (oldest + offset) % self.rows, rows)
            todo = self.age[streams, rows] == 0
        age = self.age[streams, rows].astype(np.int64)
        # One copy to the device: the 2 x FRAME_STACK frames' rows (in the streams laid end to end),
        # the action and the flag; then one gather (index_select: 20x faster than 2-D indexing on CPU).
        stacks = np.concatenate([self.stack_rows(rows - 1, age - 1), self.stack_rows(rows, age)], axis=1)
        columns = [streams[:, None] * self.rows + stacks, self.actions[streams, rows, None]]
        index = self.to_device(np.concatenate([*columns, self.terminated[streams, rows, None]], axis=1, dtype=np.int64))
        frame_rows = index[:, : 2 * FRAME_STACK].reshape(-1)
        frames = self.frames.view(-1, *self.frames.shape[2:]).index_select(0, frame_rows)
        frames = frames.view(n, 2 * FRAME_STACK, *self.frames.shape[2:])
        return frames[:, :FRAME_STACK], index[:, -2], frames[:, FRAME_STACK:], index[:, -1].bool()


def store_step(buffer: FrameReplayBuffer, next_obs, actions, terminated, truncated, infos) -> np.ndarray:
    """Stores one vector step and returns the environments whose episode ended. With gymnasium's
    same-step autoreset, `next_obs` of an ended episode is already the next episode's first
    observation; the observation the transition really reached is in infos["final_obs"]."""
    real_next_obs = next_obs.copy()
    for i in np.flatnonzero(infos.get("_final_obs", [])):
        real_next_obs[i] = infos["final_obs"][i]
    buffer.add(np.arange(len(actions)), actions, real_next_obs[:, -1], terminated)
    ended = np.flatnonzero(np.logical_or(terminated, truncated))
    if len(ended):
        buffer.start_episodes(ended, next_obs[ended, -1])
    return ended


def balanced_batch(demo_buffer: FrameReplayBuffer, agent_buffer: FrameReplayBuffer, batch_size: int):
    """SQIL's balanced sample (Section 4): rows [:batch_size // 2] from D_demo, the rest from D_samp."""
    half = batch_size // 2
    return [torch.cat(pair) for pair in zip(demo_buffer.sample(half), agent_buffer.sample(batch_size - half))]


# ---------------------------------------------------------------------------------------------
# Demonstrations (format: docs/demonstrations.md); adapted from collect_demos.load_demos, Atari part.
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


def load_demos(
    path: str, action_space: gym.spaces.Discrete, num_episodes: int | None, device, cache: bool = True
) -> FrameReplayBuffer:
    """Replays the demonstrations' seeds and actions through the preprocessed emulator (or reads the frames
    from the cache: `checked_frames`), checks every episode's frames against the recorded SHA-256, and
    returns them as a FrameReplayBuffer."""
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
        recorded = (metadata["observation_space"], metadata["action_space"], metadata.get("atari_preprocessing"))
    except Exception as error:
        raise DemoError(
            f"{path} is not a demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    expected = (
        {"type": "Box", "shape": [84, 84], "dtype": "uint8"},
        {"type": "Discrete", "n": int(action_space.n)},
        ATARI_PREPROCESSING,
    )
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]}, actions {recorded[1]} and Atari preprocessing "
            f"{recorded[2]}, but this game needs {expected[0]}, {expected[1]} and {expected[2]}."
        )
    lengths = data["episode_lengths"]
    if num_episodes is not None and not 1 <= num_episodes <= len(lengths):
        raise DemoError(f"--num-demos {num_episodes} is not between 1 and the {len(lengths)} episodes of {path}.")
    lengths = lengths[:num_episodes]
    env = gym.wrappers.AtariPreprocessing(gym.make(metadata["env_id"]), **ATARI_PREPROCESSING)
    buffer = FrameReplayBuffer(int(lengths.sum()) + len(lengths), 1, (84, 84), device)

    def replay(seed: int, actions: np.ndarray) -> list[np.ndarray]:
        return [env.reset(seed=seed)[0]] + [env.step(int(action))[0] for action in actions]

    stream, start = np.zeros(1, dtype=np.int64), 0
    for episode, (seed, length) in enumerate(zip(data["episode_seeds"], lengths)):
        actions, terminated = data["actions"][start : start + length], data["terminated"][start : start + length]
        checksum = data["episode_checksums"][episode]
        frames = checked_frames(replay, int(seed), actions, checksum, metadata["env_id"], cache)
        start += length
        if frames is None:
            raise DemoError(
                f"replaying episode {episode} of {path} gave other frames than were recorded "
                f"(recorded with {metadata['versions']}); reinstall those versions or re-record the file."
            )
        buffer.start_episodes(stream, frames[0][None])
        for frame, action, term in zip(frames[1:], actions, terminated):
            buffer.add(stream, [action], frame[None], [term])
    env.close()
    return buffer


# ---------------------------------------------------------------------------------------------
# The soft Q network and the objective.
# ---------------------------------------------------------------------------------------------
class QNetwork(nn.Module):
    """The Nature DQN network (Mnih et al. 2015) on 4 stacked uint8 frames."""

    def __init__(self, n_actions: int):
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
            nn.Linear(512, n_actions),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last memory format: faster convolutions on CPU (docs/benchmarks.md)
        return self.network((x / 255.0).contiguous(memory_format=torch.channels_last))


def soft_value(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """V(s) = alpha * log sum_a exp(Q(s, a) / alpha)  (Eq. 2)."""
    return alpha * torch.logsumexp(q_values / alpha, dim=-1)


def soft_bellman_error(q_sa, next_q_values, rewards, terminated, gamma: float, alpha: float):
    """Q(s, a) - (r + gamma V(s')), the term squared in B (Eq. 6). A terminated transition enters an
    absorbing state worth r_abs / (1 - gamma) = 0 (paper); a truncated one bootstraps from s'."""
    next_v = torch.where(terminated, 0.0, soft_value(next_q_values, alpha))
    return q_sa - (rewards + gamma * next_v)


def boltzmann_actions(q_values: torch.Tensor, alpha: float) -> torch.Tensor:
    """Samples a ~ pi(.|s), proportional to exp(Q(s, a) / alpha)  (Eq. 1)."""
    return torch.multinomial(F.softmax(q_values / alpha, dim=-1), 1).squeeze(1)


def evaluate(env_id: str, q_network: QNetwork, episodes: int, seed: int, device, max_episode_steps: int, video=None):
    """True game scores and lengths of the greedy policy (deterministic, as the paper evaluates), one per game
    of at most `max_episode_steps` agent steps. The games are played side by side, game i in its own
    environment reset with seed + i, one batched forward pass per step; a progress bar counts the steps on a
    terminal. `video`: films the first three games, each into its own folder."""
    if episodes == 0:
        return [], []
    envs = gym.vector.SyncVectorEnv(
        [
            make_env(env_id, seed + i, max_episode_steps, f"{video}/game{i}" if video and i < 3 else None)
            for i in range(episodes)
        ],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs, _ = envs.reset(seed=seed)
    returns, lengths = [None] * episodes, [None] * episodes
    steps = tqdm(total=max_episode_steps, desc="evaluation steps", disable=None, leave=False)
    while None in returns:  # a game that ended goes on into a new one, unrecorded, until the last one ends
        with torch.no_grad():
            actions = q_network(torch.as_tensor(obs, device=device)).argmax(1).cpu().numpy()
        obs, _, terminated, truncated, infos = envs.step(actions)
        for i in np.flatnonzero(terminated | truncated):
            if returns[i] is None:
                returns[i] = float(infos["final_info"]["episode"]["r"][i])
                lengths[i] = int(infos["final_info"]["episode"]["l"][i])
        steps.update()
    steps.close()
    envs.close()
    return returns, lengths


def game_states(envs: gym.vector.SyncVectorEnv) -> list[bytes]:
    """Each game of `envs` as it stands, wrappers included (frame stack, no-op counter, episode statistics).
    The wrappers pickle; the emulator pickles only its constructor's arguments, so its state is cloned, its
    random number generators included, and so is the generator that draws the no-op resets."""
    return [
        pickle.dumps((env, env.unwrapped.clone_state(include_rng=True), env.unwrapped.np_random.bit_generator.state))
        for env in envs.envs
    ]


def restore_games(envs: gym.vector.SyncVectorEnv, states: list[bytes]) -> None:
    """Puts the games saved by `game_states` in place of those of `envs`: they go on exactly as they would have."""
    envs.close_extras()
    envs.envs = []
    for state in states:
        env, emulator, no_op_rng = pickle.loads(state)
        env.unwrapped.restore_state(emulator)
        env.unwrapped.np_random.bit_generator.state = no_op_rng
        envs.envs.append(env)


def fail(message: str):
    """Stops the script with one sentence and exit status 2 (as a bad command-line flag does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    args = tyro.cli(Args)
    counts = (
        "total_timesteps buffer_size target_network_frequency max_episode_steps eval_max_episode_steps"
    ).split()  # flags that count steps or episodes
    if too_small := [name for name in counts if getattr(args, name) is not None and getattr(args, name) < 1]:
        name = too_small[0]
        fail(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    if args.batch_size < 2 or args.num_envs < 1 or args.train_frequency < 1:
        fail("--batch-size must be at least 2, --num-envs and --train-frequency at least 1.")
    if args.eval_max_episode_steps is None:
        args.eval_max_episode_steps = args.max_episode_steps or ATARI_EVAL_MAX_STEPS
    if min(args.learning_starts, args.eval_frequency, args.eval_episodes, args.checkpoint_frequency) < 0:
        fail("--learning-starts, --eval-frequency, --eval-episodes and --checkpoint-frequency cannot be negative.")
    checkpoint = None
    if args.resume:
        try:
            checkpoint = torch.load(args.resume, map_location="cpu", weights_only=False)
            saved = {**vars(args), **checkpoint["args"]}  # a flag added since the checkpoint: its default
            checkpoint["games"]  # what only this script's checkpoints hold
        except Exception as error:
            fail(f"{args.resume} is not a checkpoint of sqil_dqn_atari.py ({type(error).__name__}: {error}).")
        if changed := [key for key, value in vars(args).items() if key not in RESUMABLE and saved[key] != value]:
            fail(
                f"{args.resume} was run with "
                + ", ".join(f"--{key.replace('_', '-')} {saved[key]} (now {getattr(args, key)})" for key in changed)
                + "; a resumed run keeps the checkpoint's settings."
            )
    run_name = (
        checkpoint["run_name"]
        if checkpoint
        else f"{args.env_id}__{args.exp_name}__{args.seed}"
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
            monitor_gym=True,
            save_code=True,
        )

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    if not args.env_id.endswith("NoFrameskip-v4"):
        fail(f"sqil_dqn_atari.py plays Atari games as `<Game>NoFrameskip-v4`, not {args.env_id!r}.")
    try:
        envs = gym.vector.SyncVectorEnv(
            [make_env(args.env_id, args.seed + i, args.max_episode_steps) for i in range(args.num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,  # final observations come back in infos
        )
    except gym.error.Error as error:
        fail(f"cannot make environment {args.env_id!r}: {error}")
    n_actions = int(envs.single_action_space.n)

    q_network = QNetwork(n_actions).to(device, memory_format=torch.channels_last)
    target_network = QNetwork(n_actions).to(device, memory_format=torch.channels_last)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate, fused=True)  # one kernel per step

    # D_demo: the demonstrations with reward r_demo, never evicted. D_samp: the agent's own, reward 0.
    demo_path = args.demo_path or str(Path(__file__).resolve().parent / "demos" / f"{args.env_id}.npz")
    try:
        demo_buffer = load_demos(demo_path, envs.single_action_space, args.num_demos, device, args.demo_cache)
    except DemoError as error:
        fail(str(error))
    agent_buffer = FrameReplayBuffer(args.buffer_size, args.num_envs, (84, 84), device)
    half = args.batch_size // 2
    rewards = torch.cat([torch.full((half,), args.r_demo), torch.zeros(args.batch_size - half)]).to(device)
    print(f"{demo_path}: {demo_buffer.num_transitions()} demonstration frames; agent buffer {args.buffer_size:,}")

    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n%s" % "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()),
    )
    obs, _ = envs.reset(seed=args.seed)
    agent_buffer.start_episodes(np.arange(args.num_envs), obs[:, -1])
    global_step, gradient_steps = 0, 0
    modules = {"q_network": q_network, "target_network": target_network, "optimizer": optimizer}
    # Gradient steps are due at one per `train_frequency` env steps from `learning_starts` on: `updates_from`
    # is (env step, gradient steps done) where the count starts.
    updates_from = (args.learning_starts, 0)
    if checkpoint:
        restore_games(envs, checkpoint["games"])
        obs = checkpoint["obs"]
        for key, module in modules.items():
            module.load_state_dict(checkpoint[key])
        global_step, gradient_steps = checkpoint["global_step"], checkpoint["gradient_steps"]
        if checkpoint["agent_buffer"] is not None and args.checkpoint_buffer:
            agent_buffer.load_state_dict(checkpoint["agent_buffer"])
            frames = Path(args.resume).with_name(checkpoint["frames"])
            if not frames.is_file():
                fail(
                    f"{args.resume} keeps its agent buffer's frames in {frames}, which does not exist "
                    "(--no-checkpoint-buffer resumes with a refilled buffer instead)."
                )
            agent_buffer.load_frames(str(frames))
        else:
            # The first stored stack after the resume repeats its newest frame, as at an episode's start.
            agent_buffer.start_episodes(np.arange(args.num_envs), obs[:, -1])
            updates_from = (global_step + args.learning_starts, gradient_steps)
            held = " holds no agent buffer" if checkpoint["agent_buffer"] is None else "'s agent buffer is left out"
            print(f"the checkpoint{held}: {args.learning_starts} env steps refill it before updates")
        random.setstate(checkpoint["python_rng"])
        np.random.set_state(checkpoint["numpy_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if device.type == "cuda" and checkpoint["cuda_rng"]:
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        print(f"resumed {run_name} at env step {global_step} from {args.resume}")

    def save_checkpoint() -> None:
        """Everything the run needs to go on as if it had not stopped (on the same device and software),
        written atomically: a run killed at any moment leaves its last complete checkpoint."""
        Path("checkpoints").mkdir(exist_ok=True)
        path = Path(f"checkpoints/{run_name}.pt")
        frames = path.with_name(f"{run_name}.{global_step}.frames") if args.checkpoint_buffer else None
        if frames:
            agent_buffer.save_frames(f"{frames}.tmp")
            os.replace(f"{frames}.tmp", frames)
        state = {key: module.state_dict() for key, module in modules.items()}
        state.update(
            args=vars(args),
            run_name=run_name,
            global_step=global_step,
            gradient_steps=gradient_steps,
            games=game_states(envs),
            obs=obs,
            agent_buffer=agent_buffer.state_dict() if frames else None,
            frames=frames.name if frames else None,
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
        )
        torch.save(state, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)  # never a half-written checkpoint; then the older frames go
        for old in path.parent.glob(f"{run_name}.*.frames"):
            if old != frames:
                old.unlink()
        tqdm.write(f"env step {global_step}: checkpoint saved to {path}")

    def next_multiple(every: int) -> int:
        """The first env step after this one that is a multiple of `every` (evaluations, checkpoints)."""
        return (global_step // every + 1) * every if every else args.total_timesteps + 1

    next_eval, next_checkpoint = next_multiple(args.eval_frequency), next_multiple(args.checkpoint_frequency)
    start_step, start_time = global_step, time.time()
    learning_start = None  # (env steps, time) of the first gradient step, for the steady-state speed
    last_eval, q_means = (global_step, time.time()), (float("nan"), float("nan"))  # for the log's eval lines
    # a progress bar on a terminal only (disable=None): redirected logs and CI stay plain text
    progress = tqdm(total=args.total_timesteps, initial=global_step, desc="env steps", disable=None, mininterval=2.0)
    while global_step < args.total_timesteps:
        # Algorithm 1, lines 5-7 with k = 1: act with the Boltzmann policy; store what happened.
        with torch.no_grad():
            actions = boltzmann_actions(q_network(torch.as_tensor(obs, device=device)), args.alpha).cpu().numpy()
        next_obs, _, terminated, truncated, infos = envs.step(actions)
        global_step += args.num_envs
        progress.update(args.num_envs)
        for i in store_step(agent_buffer, next_obs, actions, terminated, truncated, infos):
            episode = infos["final_info"]["episode"]  # the true game score, whole game
            tqdm.write(f"global_step={global_step}, episodic_return={episode['r'][i]:.0f}")
            writer.add_scalar("charts/episodic_return", episode["r"][i], global_step)
            writer.add_scalar("charts/episodic_length", episode["l"][i], global_step)
        obs = next_obs

        # Algorithm 1, line 4: gradient steps on balanced batches, one per `train_frequency` env steps.
        while gradient_steps < updates_from[1] + (global_step - updates_from[0]) // args.train_frequency:
            batch_obs, batch_actions, batch_next_obs, batch_terminated = balanced_batch(
                demo_buffer, agent_buffer, args.batch_size
            )
            q_sa = q_network(batch_obs).gather(1, batch_actions[:, None]).squeeze(1)
            with torch.no_grad():
                next_q_values = target_network(batch_next_obs)
            errors = soft_bellman_error(q_sa, next_q_values, rewards, batch_terminated, args.gamma, args.alpha)
            bellman_demo, bellman_samp = (errors[:half] ** 2).mean(), (errors[half:] ** 2).mean()
            loss = bellman_demo + args.lambda_samp * bellman_samp  # Eq. 8, as batch means
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q_network.parameters(), args.max_grad_norm)
            optimizer.step()
            gradient_steps += 1
            learning_start = learning_start or (global_step, time.time())

            if gradient_steps % args.target_network_frequency == 0:
                for target_param, param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * param.data + (1.0 - args.tau) * target_param.data)
            if gradient_steps % 100 == 0:
                writer.add_scalar("losses/loss", loss.item(), global_step)
                writer.add_scalar("losses/bellman_demo", bellman_demo.item(), global_step)
                writer.add_scalar("losses/bellman_samp", bellman_samp.item(), global_step)
                q_means = (q_sa[:half].mean().item(), q_sa[half:].mean().item())
                writer.add_scalar("losses/q_demo", q_means[0], global_step)
                writer.add_scalar("losses/q_samp", q_means[1], global_step)
                sps = int((global_step - start_step) / (time.time() - start_time))
                writer.add_scalar("charts/SPS", sps, global_step)

        if args.eval_episodes and global_step >= next_eval:
            next_eval = next_multiple(args.eval_frequency)
            seed = args.seed + 1_000_000 + global_step
            returns, lengths = evaluate(
                args.env_id, q_network, args.eval_episodes, seed, device, args.eval_max_episode_steps
            )
            writer.add_scalar("eval/episodic_return", np.mean(returns), global_step)
            writer.add_scalar("eval/episodic_length", np.mean(lengths), global_step)
            progress.set_postfix_str(f"eval greedy return {np.mean(returns):.1f}", refresh=False)
            sps = (global_step - last_eval[0]) / (time.time() - last_eval[1])
            last_eval = (global_step, time.time())
            tqdm.write(
                f"global_step={global_step}, greedy evaluation return {np.mean(returns):.1f} "
                f"({sps:.0f} env steps/s since the last, evaluation included; "
                f"mean Q of demonstration / agent transitions {q_means[0]:.1f} / {q_means[1]:.1f})"
            )
        # and at the run's end, for a later --resume with a longer --total-timesteps
        if args.checkpoint_frequency and (global_step >= next_checkpoint or global_step >= args.total_timesteps):
            next_checkpoint = next_multiple(args.checkpoint_frequency)
            save_checkpoint()

    progress.close()
    wall_time = time.time() - start_time
    print(f"trained {global_step - start_step} env steps, {gradient_steps} gradient steps in {wall_time:.0f} s")
    if learning_start and global_step > learning_start[0]:
        steady_sps = (global_step - learning_start[0]) / (time.time() - learning_start[1])
        print(f"steady state since the first gradient step: {steady_sps:.1f} env steps/s")
    if args.save_model:
        model_path = f"runs/{run_name}/{args.exp_name}.pt"
        torch.save(q_network.state_dict(), model_path)
        print(f"model saved to {model_path}")
    video_folder = f"videos/{run_name}" if args.capture_video else None
    final_seed, cap = args.seed + 2_000_000, args.eval_max_episode_steps
    returns, lengths = evaluate(args.env_id, q_network, args.eval_episodes, final_seed, device, cap, video_folder)
    for episode, (episodic_return, length) in enumerate(zip(returns, lengths)):
        writer.add_scalar("eval/final_episodic_return", episodic_return, episode)
        print(
            f"final evaluation game {episode}: score {episodic_return:.0f}, {length} steps"
            + " (capped)" * (length == cap)
        )
    if returns:
        print(f"final greedy evaluation ({len(returns)} games): return {np.mean(returns):.1f}")
    results = {
        "args": vars(args),
        "env_steps": global_step,
        "gradient_steps": gradient_steps,
        "final_greedy_returns": returns,
        "final_greedy_lengths": lengths,
        "wall_time_s": wall_time,
        "device": str(device),
    }
    with open(f"runs/{run_name}/results.json", "w") as f:
        json.dump(results, f, indent=1)
    envs.close()
    writer.close()
