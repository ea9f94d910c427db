"""Record expert demonstrations in the project's demonstration format, or summarise a file.

    python collect_demos.py --env-id LunarLander-v3 --out demos/LunarLander-v3.npz
    python collect_demos.py --summary demos/LunarLander-v3.npz
    python collect_demos.py --to-minari demos/LunarLander-v3.npz sqil/LunarLander-scripted-v0   # a Minari dataset
    python collect_demos.py --from-minari sqil/LunarLander-scripted-v0 --out demos/from-minari.npz

The format (docs/demonstrations.md) is one compressed `.npz` per environment that loads with
numpy alone. Every step is one row; episodes are consecutive runs of rows whose lengths are in
`episode_lengths`. Vector observations are stored. Atari frames are not: the file keeps each
episode's reset seed and actions, the loader replays them through the deterministic emulator and
compares a SHA-256 of the frames it gets with `episode_checksums`.
"""

import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

FORMAT_VERSION = 1
ATARI_PREPROCESSING = dict(noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True)
ATARI_DEMO_MAX_STEPS = 4_500  # agent steps = 18,000 frames = 5 minutes of play; longer games end truncated


@dataclass
class Args:
    env_id: str = "LunarLander-v3"
    """environment to record (LunarLander-v3 or a *NoFrameskip-v4 game with a scripted expert)"""
    num_episodes: int | None = None
    """episodes to record (default: the paper's count, 100 for LunarLander, 20 for Atari and CarRacing; 25 for MuJoCo)"""
    seed: int = 0
    """episode i is reset with seed `seed + i`"""
    out: str | None = None
    """where to write the file (default: demos/<env-id>.npz)"""
    summary: str | None = None
    """print a summary of this existing demonstration file and exit (records nothing)"""
    expert_model: str | None = None
    """a trained expert: a model saved by `sqil_sac_continuous.py --save-model` (or one of its checkpoints),
    whose actor acts, by `rbc_lunar.py --reward-source env --save-model`, whose Q network acts greedily, or
    an Atari `expert.pt` of `scripts/ppo_atari_expert.py`, whose policy acts greedily"""
    stochastic: bool = False
    """with --expert-model: sample the actor's actions instead of taking its mean (the paper's Humanoid expert),
    or an Atari PPO policy's actions instead of its most likely one"""
    to_minari: tuple[str, str] | None = None
    """FILE NAME: write the demonstration file FILE (vector observations) as the local Minari dataset NAME and exit
    (needs `pip install "minari[hdf5]"`; datasets live in $MINARI_DATASETS_PATH, default ~/.minari/datasets)"""
    from_minari: str | None = None
    """write the local Minari dataset of this name as a demonstration file at --out and exit (vector observations,
    Box or Discrete actions; every training script then reads it with --demo-path)"""


# ---------------------------------------------------------------------------------------------
# Landing success on LunarLander, defined once for the whole project (docs/lunar_lander.md, "Landing success"):
# the episode terminated because the lander came to rest (Box2D put its body to sleep), with both
# legs touching the ground and its centre between the flags (|x| <= 0.2 in observation units).
# ---------------------------------------------------------------------------------------------
def lunar_success(env: gym.Env, obs: np.ndarray, terminated: bool) -> bool:
    return bool(terminated and not env.unwrapped.lander.awake and abs(obs[0]) <= 0.2 and obs[6] > 0 and obs[7] > 0)


# ---------------------------------------------------------------------------------------------
# Scripted experts. Each maps (env, observation) to an action.
# ---------------------------------------------------------------------------------------------
def lunar_expert(env: gym.Env, s: np.ndarray) -> int:
    """Gymnasium's `lunar_lander.heuristic` with stronger centring gains (0.8 on x, 1.5 on vx,
    hover target 2.5|x| instead of 0.5, 1.0, 0.55): it then lands between the flags far more often."""
    angle_target = np.clip(s[0] * 0.8 + s[2] * 1.5, -0.4, 0.4)
    hover_target = 2.5 * abs(s[0])
    angle_todo = (angle_target - s[4]) * 0.5 - s[5] * 1.0
    hover_todo = (hover_target - s[1]) * 0.5 - s[3] * 0.5
    if s[6] or s[7]:  # legs down: stop rotating, only soften the fall
        angle_todo, hover_todo = 0.0, -s[3] * 0.5
    if hover_todo > abs(angle_todo) and hover_todo > 0.05:
        return 2  # main engine
    if angle_todo < -0.05:
        return 3  # right engine
    if angle_todo > 0.05:
        return 1  # left engine
    return 0


def breakout_expert(env: gym.Env, obs: np.ndarray) -> int:
    """Reads the RAM (paddle x ram[72], ball x ram[99], ball y ram[101]), predicts where the ball
    crosses the paddle row by running the emulator forward on a saved state, and steers there.
    FIRE when no ball is in play. Actions: 0 NOOP, 1 FIRE, 2 RIGHT, 3 LEFT."""
    ale = env.unwrapped.ale
    ram = ale.getRAM()
    if ram[101] == 0:
        return 1
    state, lives, landing_x = ale.cloneState(), ale.lives(), int(ram[99])
    for _ in range(120):  # only NOOPs: the paddle controller's position is not part of the state
        ale.act(0)
        if ale.lives() < lives:
            break
        if ale.getRAM()[101] >= 183:
            landing_x = int(ale.getRAM()[99])
            break
    ale.restoreState(state)
    error = landing_x + 12 - int(ram[72])
    return 2 if error > 6 else 3 if error < -6 else 0


def pong_expert(env: gym.Env, obs: np.ndarray) -> int:
    """Tracks the ball with the paddle (paddle y ram[51], ball y ram[54]); aims to meet it off-centre
    so that the return is angled. Actions: 0 NOOP, 1 FIRE, 2 RIGHT (up), 3 LEFT (down)."""
    ram = env.unwrapped.ale.getRAM()
    paddle_y, ball_y = int(ram[51]), int(ram[54])
    if ball_y == 0:
        return 1
    error = ball_y - (paddle_y + 8)
    return 3 if error > 3 else 2 if error < -3 else 0


def space_invaders_expert(env: gym.Env, obs: np.ndarray) -> int:
    """Fires continuously while sweeping the cannon across the screen, reversing direction every
    40 agent steps. Actions: 0 NOOP, 1 FIRE, 2 RIGHT, 3 LEFT, 4 RIGHTFIRE, 5 LEFTFIRE."""
    agent_step = env.unwrapped.ale.getEpisodeFrameNumber() // 4
    return 4 if (agent_step // 40) % 2 == 0 else 5


def car_racing_expert(
    env: gym.Env, obs: np.ndarray, lookahead: int = 5, target_speed: float = 55.0, min_speed: float = 8.0
) -> int:
    """Pure pursuit on the track's centre line (`env.unwrapped.track`): steer towards the track point
    `lookahead` tiles past the nearest one when the heading error exceeds 0.15 rad, else accelerate
    below `target_speed`; below `min_speed` accelerate whatever the heading (a car at rest does not
    turn). Actions: 0 NOOP, 1 RIGHT, 2 LEFT, 3 GAS, 4 BRAKE."""
    car_racing = env.unwrapped
    track = np.array([point[2:4] for point in car_racing.track])
    x, y = car_racing.car.hull.position
    target_x, target_y = track[(int(np.argmin(((track - (x, y)) ** 2).sum(1))) + lookahead) % len(track)]
    desired_angle = np.arctan2(-(target_x - x), target_y - y)  # the hull's forward vector is (-sin, cos)
    error = (desired_angle - car_racing.car.hull.angle + np.pi) % (2 * np.pi) - np.pi
    speed = np.linalg.norm(car_racing.car.hull.linearVelocity)
    if abs(error) > 0.15 and speed >= min_speed:
        return 2 if error > 0 else 1
    return 3 if speed < target_speed else 0


EXPERTS = {
    "LunarLander-v3": (lunar_expert, "scripted: gymnasium's lunar_lander.heuristic with stronger centring gains"),
    "BreakoutNoFrameskip-v4": (breakout_expert, "scripted: RAM ball-landing predictor with emulator look-ahead"),
    "PongNoFrameskip-v4": (pong_expert, "scripted: RAM ball tracker"),
    "SpaceInvadersNoFrameskip-v4": (space_invaders_expert, "scripted: sweep the cannon while firing"),
    "CarRacing-v3": (car_racing_expert, "scripted: pure pursuit on the track centre line (discrete actions)"),
}


def is_atari(env_id: str) -> bool:
    return env_id.endswith("NoFrameskip-v4")


def is_replayed(env_id: str) -> bool:
    """Image environments: the file keeps seeds and actions, and the loader replays them."""
    return is_atari(env_id) or env_id.startswith("CarRacing")


def make_env(env_id: str) -> gym.Env:
    """The environment the demonstrations are recorded in. Atari gets the standard preprocessing
    (noop reset, frame skip 4 with max-pooling, 84x84 grayscale; full games, no life-loss ends);
    CarRacing is the discrete-action version with its raw 96x96 colour frames (the training script
    preprocesses them)."""
    if env_id.startswith("CarRacing"):
        return gym.make(env_id, continuous=False)
    if is_atari(env_id):
        import ale_py

        gym.register_envs(ale_py)
        env = gym.make(env_id)
        env = gym.wrappers.AtariPreprocessing(env, **ATARI_PREPROCESSING)
        return gym.wrappers.TimeLimit(env, ATARI_DEMO_MAX_STEPS)
    return gym.make(env_id)


def space_to_dict(space: gym.Space) -> dict:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype)}
    raise ValueError(f"unsupported space {space}")


def frames_checksum(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames, dtype=np.uint8).tobytes()).hexdigest()


def sac_expert(path: str, env: gym.Env, stochastic: bool):
    """The actor of a model or checkpoint saved by sqil_sac_continuous.py, as an expert."""
    import torch

    from sqil_sac_continuous import Actor

    if not Path(path).is_file():
        sys.exit(f"collect_demos.py: expert model {path} does not exist.")
    saved = torch.load(path, weights_only=False)
    if saved["args"]["env_id"] != env.spec.id:
        sys.exit(f"collect_demos.py: {path} was trained on {saved['args']['env_id']}, not {env.spec.id}.")
    actor = Actor(env.observation_space.shape[0], env.action_space)
    actor.load_state_dict(saved["actor"])
    torch.manual_seed(0)

    def expert(env: gym.Env, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            sampled, _, mean = actor(torch.as_tensor(obs, dtype=torch.float32)[None])
        return (sampled if stochastic else mean)[0].numpy()

    policy = "sampled actions" if stochastic else "mean action"
    return expert, f"SAC actor trained by sqil_sac_continuous.py --reward-source env ({path}, {policy})"


def q_expert(path: str, env: gym.Env):
    """The greedy policy of a soft Q network saved by `rbc_lunar.py --save-model`, as an expert."""
    import torch

    from rbc_lunar import QNetwork

    saved = torch.load(path, weights_only=False)
    if saved["args"]["env_id"] != env.spec.id:
        sys.exit(f"collect_demos.py: {path} was trained on {saved['args']['env_id']}, not {env.spec.id}.")
    ensemble_size = saved["args"].get("ensemble_size", 1)  # models saved before the flag existed have one network
    dueling = saved["args"].get("dueling", False)
    q_network = QNetwork(env.observation_space.shape[0], int(env.action_space.n), ensemble_size, dueling)
    q_network.load_state_dict(saved["q_network"])

    def expert(env: gym.Env, obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(q_network(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())

    trained = f"start state {saved['args']['start_state']}, {saved['args']['total_gradient_steps']} gradient steps"
    return expert, f"soft Q network trained by rbc_lunar.py --reward-source env ({trained}; {path}, greedy)"


def atari_expert(path: str, env: gym.Env, stochastic: bool):
    """The policy of a network saved by `scripts/ppo_atari_expert.py` (the policy's logits, in the shape of
    sqil_dqn_atari.QNetwork), greedy or sampled, on the 4 stacked frames it was trained on: the recording env
    gives single frames."""
    import torch

    from sqil_dqn_atari import FRAME_STACK, QNetwork

    saved = torch.load(path, weights_only=False)
    if "policy" not in saved:
        sys.exit(f"collect_demos.py: {path} is not an expert saved by scripts/ppo_atari_expert.py.")
    if saved["args"]["env_id"] != env.spec.id:
        sys.exit(f"collect_demos.py: {path} was trained on {saved['args']['env_id']}, not {env.spec.id}.")
    policy = QNetwork(int(env.action_space.n))
    policy.load_state_dict(saved["policy"])
    stack, last_frame_number = [], [float("inf")]
    generator = torch.Generator().manual_seed(0)

    def expert(env: gym.Env, obs: np.ndarray) -> int:
        # A new game starts at most 30 no-op frames in, below any frame number of the game before (which
        # grows by 4 per step): then the stack is the first frame repeated, as FrameStackObservation pads.
        frame_number = env.unwrapped.ale.getEpisodeFrameNumber()
        stack[:] = [obs] * FRAME_STACK if frame_number <= last_frame_number[0] else [*stack[1:], obs]
        last_frame_number[0] = frame_number
        with torch.no_grad():
            logits = policy(torch.as_tensor(np.stack(stack))[None])[0]
        if stochastic:  # the policy PPO trained: an action drawn from softmax(logits)
            return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))
        return int(logits.argmax())

    trained = f"{saved['env_steps']:,} env steps; {path}, {'sampled actions' if stochastic else 'greedy'}"
    return expert, f"PPO policy trained by scripts/ppo_atari_expert.py on the game score ({trained})"


def record(args: Args) -> None:
    try:
        env = make_env(args.env_id)
    except (gym.error.Error, ImportError) as error:
        sys.exit(f"collect_demos.py: cannot make environment {args.env_id!r}: {error}")
    if args.expert_model and isinstance(env.action_space, gym.spaces.Discrete):
        if not Path(args.expert_model).is_file():
            sys.exit(f"collect_demos.py: expert model {args.expert_model} does not exist.")
        if is_atari(args.env_id):
            expert, expert_description = atari_expert(args.expert_model, env, args.stochastic)
        elif args.stochastic:
            sys.exit(
                "collect_demos.py: --stochastic applies to SAC actors and Atari PPO policies; a Q network expert acts greedily."
            )
        else:
            expert, expert_description = q_expert(args.expert_model, env)
    elif args.expert_model:
        expert, expert_description = sac_expert(args.expert_model, env, args.stochastic)
    elif args.env_id in EXPERTS:
        expert, expert_description = EXPERTS[args.env_id]
    else:
        sys.exit(
            f"collect_demos.py: no expert for {args.env_id!r}; experts exist for {', '.join(EXPERTS)}, "
            "and --expert-model takes a SAC model for continuous actions."
        )
    continuous = isinstance(env.action_space, gym.spaces.Box)
    num_episodes = args.num_episodes or (20 if is_replayed(args.env_id) else 25 if continuous else 100)
    out = Path(args.out or f"demos/{args.env_id}.npz")
    atari, replayed = is_atari(args.env_id), is_replayed(args.env_id)

    obs_rows, final_obs, actions, rewards, terminated, truncated = [], [], [], [], [], []
    lengths, returns, seeds, checksums, successes = [], [], [], [], []
    start = time.time()
    for episode in range(num_episodes):
        seed = args.seed + episode
        obs, _ = env.reset(seed=seed)
        frames, episode_return, done = [obs], 0.0, False
        while not done:
            action = expert(env, obs)
            next_obs, reward, term, trunc, _ = env.step(action)
            if not replayed:
                obs_rows.append(obs)
            actions.append(action)
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc and not term)  # a lap finished on the time limit's last step is terminated
            if replayed:
                frames.append(next_obs)
            episode_return += float(reward)
            obs, done = next_obs, term or trunc
        final_obs.append(obs)
        lengths.append(len(actions) - sum(lengths))
        returns.append(episode_return)
        seeds.append(seed)
        if replayed:
            checksums.append(frames_checksum(np.stack(frames)))
        if args.env_id.startswith("LunarLander"):
            successes.append(lunar_success(env, obs, term))
        print(f"episode {episode}: seed {seed}, {lengths[-1]} steps, return {episode_return:.1f}", flush=True)

    metadata = {
        "format_version": FORMAT_VERSION,
        "env_id": args.env_id,
        "observation_space": space_to_dict(env.observation_space),
        "action_space": space_to_dict(env.action_space),
        "expert": expert_description,
        "command": "python " + " ".join(sys.argv),
        "replay": replayed,
        "atari_preprocessing": ATARI_PREPROCESSING if atari else None,
        "max_episode_steps": ATARI_DEMO_MAX_STEPS if atari else env.spec.max_episode_steps,
        "versions": package_versions(),
        "recorded": time.strftime("%Y-%m-%d"),
    }
    arrays = dict(
        actions=np.asarray(actions, dtype=np.float32 if continuous else np.int64),
        rewards=np.asarray(rewards, dtype=np.float32),
        terminated=np.asarray(terminated, dtype=bool),
        truncated=np.asarray(truncated, dtype=bool),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        episode_returns=np.asarray(returns, dtype=np.float64),
        episode_seeds=np.asarray(seeds, dtype=np.int64),
        metadata=np.array(json.dumps(metadata)),
    )
    if replayed:
        arrays["episode_checksums"] = np.asarray(checksums)
    else:
        arrays["obs"] = np.asarray(obs_rows, dtype=np.float32)
        arrays["final_obs"] = np.asarray(final_obs, dtype=np.float32)
    if successes:
        arrays["episode_success"] = np.asarray(successes, dtype=bool)
    save(out, arrays, start)


def package_versions() -> dict:
    """The versions a file was made with: replayed frames depend on them."""
    import ale_py
    import Box2D
    import mujoco

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "ale_py": ale_py.__version__,
        "box2d": getattr(Box2D, "__version__", "unknown"),
        "mujoco": mujoco.__version__,
    }


def save(out: Path, arrays: dict, start: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {time.time() - start:.0f} s")
    summarise(str(out))


class DemoError(ValueError):
    """A demonstration file that cannot be used, with the one sentence that says why."""


REQUIRED_KEYS = {"actions", "rewards", "terminated", "truncated", "episode_lengths", "episode_returns", "metadata"}


def read(path: str) -> tuple[dict, dict]:
    """The arrays and the metadata of a demonstration file, or DemoError with the one sentence that says why not."""
    if not Path(path).is_file():
        raise DemoError(f"demonstration file {path} does not exist.")
    try:
        data = dict(np.load(path))
        metadata = json.loads(str(data["metadata"]))
    except Exception as error:
        raise DemoError(
            f"{path} is not a demonstration file of this project ({type(error).__name__}: {error})."
        ) from error
    missing = REQUIRED_KEYS - data.keys()
    if missing or ("obs" not in data and not metadata.get("replay")):
        raise DemoError(f"{path} lacks the keys {sorted(missing) or ['obs']} of the demonstration format.")
    return data, metadata


def load_demos(
    path: str, observation_space: gym.Space, action_space: gym.Space, num_episodes: int | None = None
) -> dict:
    """The reference loader; every training script carries its own, adapted from it (single-file design).
    Image files are replayed, the first `num_episodes` episodes only when it is given.

    Returns per-step arrays `obs`, `actions`, `next_obs`, `terminated`, `truncated` and the file's
    `metadata`. Raises DemoError, with the one sentence a user needs, if the file is missing or
    unreadable, or was recorded with other observation or action spaces (spaces, not environment
    ids, are compared), or an image episode replays to other frames.
    """
    data, metadata = read(path)
    recorded = (metadata["observation_space"], metadata["action_space"])
    expected = (space_to_dict(observation_space), space_to_dict(action_space))
    if recorded != expected:
        raise DemoError(
            f"{path} holds observations {recorded[0]} and actions {recorded[1]}, "
            f"but the environment has observations {expected[0]} and actions {expected[1]}."
        )
    if metadata.get("replay"):
        lengths = data["episode_lengths"][:num_episodes]
        steps = int(lengths.sum())
        data.update({key: data[key][:steps] for key in ("actions", "terminated", "truncated")})
        data["episode_lengths"] = lengths
        data["obs"], data["final_obs"] = replay_frames(path, data, metadata)
    ends = np.cumsum(data["episode_lengths"]) - 1  # the last step of every episode
    next_obs = np.concatenate([data["obs"][1:], data["obs"][:1]])
    next_obs[ends] = data["final_obs"]
    keys = ("obs", "actions", "terminated", "truncated")
    return {**{k: data[k] for k in keys}, "next_obs": next_obs, "metadata": metadata}


def replay_frames(path: str, data: dict, metadata: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rebuilds the frames of every episode by replaying its seed and actions through the
    deterministic environment (Atari: preprocessed), and checks them against the recorded SHA-256."""
    if is_atari(metadata["env_id"]) and metadata["atari_preprocessing"] != ATARI_PREPROCESSING:
        raise DemoError(
            f"{path} was recorded with Atari preprocessing {metadata['atari_preprocessing']}, not {ATARI_PREPROCESSING}."
        )
    env = make_env(metadata["env_id"])
    obs, final_obs, start = [], [], 0
    for episode, (seed, length) in enumerate(zip(data["episode_seeds"], data["episode_lengths"])):
        frames = [env.reset(seed=int(seed))[0]]  # (zip stops at the shorter: the episodes asked for)
        for action in data["actions"][start : start + length]:
            frames.append(env.step(int(action))[0])
        start += length
        if frames_checksum(np.stack(frames)) != data["episode_checksums"][episode]:
            raise DemoError(
                f"replaying episode {episode} of {path} gave other frames than were recorded "
                f"(recorded with {metadata['versions']}); reinstall those versions or re-record the file."
            )
        obs.extend(frames[:-1])
        final_obs.append(frames[-1])
    return np.stack(obs), np.stack(final_obs)


# ---------------------------------------------------------------------------------------------
# Minari (Farama's format for offline datasets), for vector observations. Image files stay in this
# project's format: they keep seeds and actions and are replayed, where a Minari dataset would store
# every frame (docs/demonstrations.md, "Minari").
# ---------------------------------------------------------------------------------------------
MINARI_KEY = "sqil_demonstrations"  # what a Minari episode has no field for: metadata, seeds, returns, success


def import_minari():
    try:
        import minari
    except ImportError:
        raise DemoError('Minari is not installed: pip install "minari[hdf5]"') from None
    return minari


def to_minari(path: str, dataset_id: str) -> None:
    """Writes a demonstration file as a local Minari dataset: one episode per episode, with its observations
    (final one included), actions, rewards, terminations and truncations; the file's metadata, episode
    seeds, returns (summed in float64 from the environment's rewards, which the file stores as float32) and
    landing success go into the dataset's metadata under MINARI_KEY."""
    minari = import_minari()
    from minari.data_collector import EpisodeBuffer

    data, metadata = read(path)
    if metadata.get("replay"):
        raise DemoError(f"{path} holds image episodes as seeds and actions: they stay in this project's format.")
    env = gym.make(metadata["env_id"])
    if (space_to_dict(env.observation_space), space_to_dict(env.action_space)) != (
        metadata["observation_space"],
        metadata["action_space"],
    ):
        raise DemoError(f"{path} was recorded in other spaces than {metadata['env_id']} has today.")
    starts = np.concatenate([[0], np.cumsum(data["episode_lengths"])])
    episodes = []
    for e, (start, end) in enumerate(zip(starts[:-1], starts[1:])):
        steps = slice(start, end)
        episodes.append(
            EpisodeBuffer(
                id=e,
                observations=np.concatenate([data["obs"][steps], data["final_obs"][e][None]]),
                actions=data["actions"][steps],
                rewards=data["rewards"][steps],
                terminations=data["terminated"][steps],
                truncations=data["truncated"][steps],
            )
        )
    extra = {"metadata": metadata}
    per_episode = ("episode_seeds", "episode_returns", "episode_success")
    extra |= {key: data[key].tolist() for key in per_episode if key in data}
    dataset = minari.create_dataset_from_buffers(
        dataset_id,
        episodes,
        env=metadata["env_id"],
        eval_env=metadata["env_id"],
        algorithm_name=metadata["expert"],
        author="collect_demos.py --to-minari",
        author_email="none given",
        code_permalink="collect_demos.py (the recording command is under the metadata key sqil_demonstrations)",
        observation_space=env.observation_space,
        action_space=env.action_space,
        description=f"converted from {Path(path).name} by collect_demos.py --to-minari",
        data_format="hdf5",
    )
    dataset.storage.update_metadata({MINARI_KEY: json.dumps(extra)})
    print(f"wrote Minari dataset {dataset_id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps")


def from_minari(dataset_id: str, out: Path) -> None:
    """Writes a local Minari dataset as a demonstration file. A dataset made by to_minari comes back exactly;
    another one gets the metadata its spec gives, returns summed from its rewards and seeds of -1 (unknown)."""
    minari = import_minari()
    start = time.time()
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as error:  # Minari raises several types for an id it does not hold
        raise DemoError(f"no local Minari dataset {dataset_id} ({type(error).__name__}: {error}).") from error
    try:
        spaces = space_to_dict(dataset.observation_space), space_to_dict(dataset.action_space)
    except ValueError as error:
        raise DemoError(f"Minari dataset {dataset_id}: {error}; only Box or Discrete spaces convert.") from error
    episodes = list(dataset.iterate_episodes())
    extra = json.loads(dataset.storage.metadata.get(MINARI_KEY, "{}"))
    continuous = spaces[1]["type"] == "Box"
    terminated = [np.asarray(e.terminations, dtype=bool) for e in episodes]
    arrays = dict(
        actions=np.concatenate([e.actions for e in episodes]).astype(np.float32 if continuous else np.int64),
        rewards=np.concatenate([e.rewards for e in episodes]).astype(np.float32),
        terminated=np.concatenate(terminated),
        # the format sets truncated only where terminated is not (a step can be both in Minari)
        truncated=np.concatenate([np.asarray(e.truncations, bool) & ~t for e, t in zip(episodes, terminated)]),
        episode_lengths=np.asarray([len(e.actions) for e in episodes], dtype=np.int64),
        episode_returns=np.asarray(
            extra.get("episode_returns") or [np.sum(e.rewards, dtype=np.float64) for e in episodes]
        ),
        obs=np.concatenate([e.observations[:-1] for e in episodes]).astype(np.float32),
        final_obs=np.stack([e.observations[-1] for e in episodes]).astype(np.float32),
    )
    arrays["episode_seeds"] = np.asarray(extra.get("episode_seeds", [-1] * len(episodes)), dtype=np.int64)
    if "episode_success" in extra:
        arrays["episode_success"] = np.asarray(extra["episode_success"], dtype=bool)
    env_spec = dataset.spec.env_spec
    metadata = extra.get("metadata") or {
        "format_version": FORMAT_VERSION,
        "env_id": env_spec.id if env_spec else None,
        "observation_space": spaces[0],
        "action_space": spaces[1],
        "expert": f"Minari dataset {dataset_id} ({dataset.storage.metadata.get('algorithm_name')})",
        "command": "python " + " ".join(sys.argv),
        "replay": False,
        "atari_preprocessing": None,
        "max_episode_steps": env_spec.max_episode_steps if env_spec else None,
        "versions": {**package_versions(), "minari": minari.__version__},
        "recorded": time.strftime("%Y-%m-%d"),
    }
    arrays["metadata"] = np.array(json.dumps(metadata))
    save(out, arrays, start)


def summarise(path: str) -> None:
    data, metadata = read(path)
    lengths, returns = data["episode_lengths"], data["episode_returns"]
    print(f"{path}: {metadata['env_id']}, expert: {metadata['expert']}")
    print(f"  episodes {len(lengths)}, steps {int(lengths.sum())} (mean length {lengths.mean():.0f})")
    print(f"  return mean {returns.mean():.1f}, min {returns.min():.1f}, max {returns.max():.1f}")
    print(f"  episodes ending terminated {int(data['terminated'].sum())}, truncated {int(data['truncated'].sum())}")
    if "episode_success" in data:
        print(f"  landing success rate {data['episode_success'].mean():.2f}")
    print(f"  observation space {metadata['observation_space']}, action space {metadata['action_space']}")
    print(f"  recorded {metadata['recorded']} with {metadata['versions']}")


if __name__ == "__main__":
    args = tyro.cli(Args)
    try:
        if args.summary:
            summarise(args.summary)
        elif args.to_minari:
            to_minari(*args.to_minari)
        elif args.from_minari:
            if not args.out:
                sys.exit("collect_demos.py: --from-minari needs --out FILE, the demonstration file to write.")
            from_minari(args.from_minari, Path(args.out))
        else:
            record(args)
    except DemoError as error:  # one sentence, as a bad flag gets
        sys.exit(f"collect_demos.py: {error}")
