"""sqil_car_racing.py: the rotated start is perpendicular, the frame buffer rebuilds exactly what the
environment gave, balance and eviction; smoke runs from both start states; bad input."""

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import sqil_car_racing as car  # noqa: E402

SHORT = [
    "--total-gradient-steps", "6", "--k", "3", "--batch-size", "8", "--max-episode-steps", "40",
    "--eval-frequency", "3", "--eval-episodes", "1", "--final-eval-episodes", "1",
]  # fmt: skip
TINY = [*SHORT, "--num-demos", "1"]  # one demonstration episode: its replay takes seconds


def heading(angle: float) -> np.ndarray:
    """The forward direction of a Box2D body at `angle` (the car drives along its local +y axis)."""
    return np.array([-np.sin(angle), np.cos(angle)])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rotated_start_is_perpendicular_to_the_track(seed):
    for start_state, expected_cos in (("demo", 1.0), ("rotated", 0.0)):
        env = car.make_env("CarRacing-v3", start_state, seed=0)
        obs, _ = env.reset(seed=seed)
        car_racing = env.unwrapped
        track = np.array([point[2:4] for point in car_racing.track])
        # the track's direction at the start tile is its recorded angle, along the line to the next point
        track_direction = heading(car_racing.track[0][1])
        chord = (track[1] - track[0]) / np.linalg.norm(track[1] - track[0])
        assert chord @ track_direction > 0.99
        cos = float(heading(car_racing.car.hull.angle) @ track_direction)
        assert cos == pytest.approx(expected_cos, abs=1e-3), start_state
        np.testing.assert_allclose(car_racing.car.hull.position, track[0], atol=0.1)  # on the start tile
        assert obs.shape == (car.FRAME_STACK, car.FRAME_SIZE, car.FRAME_SIZE) and obs.dtype == np.uint8
    # both sides occur: the sign of the cross product tells left from right
    sides = set()
    env = car.make_env("CarRacing-v3", "rotated", seed=0)
    for episode in range(8):
        env.reset(seed=100 + episode)
        c = env.unwrapped
        direction = np.array(c.track[1][2:4]) - np.array(c.track[0][2:4])
        forward = heading(c.car.hull.angle)
        sides.add(bool(direction[0] * forward[1] - direction[1] * forward[0] > 0))
    assert sides == {True, False}


def test_frame_buffer_rebuilds_the_environment_stacks_across_episodes_and_eviction():
    env = car.make_env("CarRacing-v3", "rotated", seed=0, max_episode_steps=12)
    buffer = car.EpisodeFrameBuffer(capacity=30, device=torch.device("cpu"))  # two 13-frame episodes fit, a third wraps
    recorded = []
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        frames, stacks, actions, done = [obs[-1]], [obs], [], False
        while not done:
            action = int(env.action_space.sample())
            obs, _, terminated, truncated, _ = env.step(action)
            frames.append(obs[-1])
            stacks.append(obs)
            actions.append(action)
            done = terminated or truncated
        buffer.add_episode(np.stack(frames), np.asarray(actions), terminated)
        recorded.append((np.stack(stacks), actions, truncated))
    # the third episode overwrote rows 0-12 (episode 0): episode 0 is gone, episodes 1 and 2 remain
    assert len(buffer) == 24 and set(buffer.episode[buffer.valid_rows].tolist()) == {1, 2}
    for episode, start in ((1, 13), (2, 0)):
        stacks, actions, truncated = recorded[episode]
        for t in range(len(actions)):
            row = start + t
            np.testing.assert_array_equal(buffer.stacks(torch.tensor([row, row + 1])).numpy(), stacks[t : t + 2])
            assert buffer.actions[row] == actions[t] and not buffer.terminated[row]  # truncated: bootstraps
        assert truncated
    obs, actions, next_obs, terminated = buffer.sample(500)
    assert obs.shape == (500, car.FRAME_STACK, car.FRAME_SIZE, car.FRAME_SIZE)


def test_a_terminated_episode_marks_only_its_last_transition():
    buffer = car.EpisodeFrameBuffer(capacity=10, device=torch.device("cpu"))
    frames = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, car.FRAME_SIZE, car.FRAME_SIZE), np.uint8)
    buffer.add_episode(frames, np.array([0, 1, 2, 3]), terminated=True)
    assert buffer.terminated[:5].tolist() == [False, False, False, True, False]
    assert buffer.valid_rows.tolist() == [0, 1, 2, 3]
    # stacks are padded with the first frame, as FrameStackObservation pads after a reset
    assert buffer.frames[buffer.obs_rows[1]][:, 0, 0].tolist() == [0, 0, 0, 1]
    assert buffer.frames[buffer.obs_rows[4]][:, 0, 0].tolist() == [1, 2, 3, 4]


def test_episodes_played_together_equal_episodes_played_alone():
    """run_episodes on a vector whose environments finish at different steps gives each environment's
    own episode, as if it were played alone: steps after an environment's end are discarded."""
    torch.manual_seed(0)
    q_network, device = car.QNetwork(5), torch.device("cpu")
    lengths = (3, 6)
    together = car.run_episodes(
        gym.vector.SyncVectorEnv(
            [lambda n=n: car.make_env("CarRacing-v3", "rotated", seed=0, max_episode_steps=n) for n in lengths],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        ),
        q_network,
        "greedy",
        alpha=0.1,
        device=device,
        seeds=[5, 6],
    )
    for seed, length, (frames, actions, terminated, _, episode_length) in zip((5, 6), lengths, together):
        (alone,) = car.run_episodes(
            car.make_vector_env("CarRacing-v3", "rotated", seed=0, num_envs=1, max_episode_steps=length),
            q_network,
            "greedy",
            alpha=0.1,
            device=device,
            seeds=[seed],
        )
        assert episode_length == length == len(actions) and len(frames) == length + 1 and not terminated
        np.testing.assert_array_equal(frames, alone[0])
        np.testing.assert_array_equal(actions, alone[1])


def test_balanced_batch_and_soft_bellman_error():
    device = torch.device("cpu")
    demo, agent = car.EpisodeFrameBuffer(10, device), car.EpisodeFrameBuffer(10, device)
    ones = np.ones((4, car.FRAME_SIZE, car.FRAME_SIZE), np.uint8)
    demo.add_episode(ones * 7, np.array([1, 1, 1]), terminated=False)
    agent.add_episode(ones * 9, np.array([2, 2, 2]), terminated=False)
    obs, actions, _, _ = car.balanced_batch(demo, agent, 16)
    assert (obs[:8] == 7).all() and (obs[8:] == 9).all() and (actions[:8] == 1).all() and (actions[8:] == 2).all()
    q_sa, next_q = torch.tensor([1.0, 1.0]), torch.log(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
    errors = car.soft_bellman_error(q_sa, next_q, torch.tensor([1.0, 1.0]), torch.tensor([True, False]), 0.5, 1.0)
    torch.testing.assert_close(errors, torch.tensor([0.0, -0.5 * np.log(4.0)], dtype=torch.float32))  # V = log(1 + 3)


def test_bundled_demonstrations_replay_and_match_the_expert():
    demos = car.load_demos(str(ROOT / "demos" / "CarRacing-v3.npz"), "CarRacing-v3", num_episodes=1)
    (episode,) = demos
    assert len(episode["frames"]) == len(episode["actions"]) + 1
    assert episode["frames"].shape[1:] == (car.FRAME_SIZE, car.FRAME_SIZE)


def test_cached_frames_are_preprocessed_as_replayed_ones(tmp_path, monkeypatch):
    """The cache holds the raw colour frames (what the checksum covers); preprocessing them gives exactly the
    frames that the environment's own wrappers gave during the replay."""
    monkeypatch.setattr(car, "DEMO_CACHE", tmp_path)
    (replayed,) = car.load_demos(str(ROOT / "demos" / "CarRacing-v3.npz"), "CarRacing-v3", num_episodes=1)
    (entry,) = tmp_path.glob("CarRacing-v3/*.npy")
    assert np.load(entry).shape == (len(replayed["frames"]), 96, 96, 3)

    def replay(*args, **kwargs):
        raise AssertionError("replayed an episode that the cache holds")

    monkeypatch.setattr(gym.wrappers.ResizeObservation, "step", replay)
    (cached,) = car.load_demos(str(ROOT / "demos" / "CarRacing-v3.npz"), "CarRacing-v3", num_episodes=1)
    assert np.array_equal(cached["frames"], replayed["frames"]) and np.array_equal(
        cached["actions"], replayed["actions"]
    )


@pytest.mark.parametrize("start_state", ["rotated", "demo"])
def test_smoke_both_start_states(run_script, tmp_path, start_state):
    flags = ["--save-model"] if start_state == "rotated" else []
    result = run_script("sqil_car_racing.py", "--start-state", start_state, *flags, *TINY)
    assert "final boltzmann evaluation (1 episodes" in result.stdout and f"{start_state} start" in result.stdout
    if flags:
        (model,) = tmp_path.glob("runs/*/sqil_car_racing.pt")
        car.QNetwork(5).load_state_dict(torch.load(model))


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run):
    check_the_seed_decides_the_run("sqil_car_racing.py", *TINY)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--demo-path", str(ROOT / "demos" / "LunarLander-v3.npz")], "is not a CarRacing demonstration file"),
        (["--demo-path", str(ROOT / "demos" / "PongNoFrameskip-v4.npz")], "holds observations"),
        (["--env-id", "LunarLander-v3"], "trains on CarRacing only"),
        (["--total-gradient-steps", "0"], "--total-gradient-steps must be at least 1, not 0"),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("sqil_car_racing.py", *TINY, *flags, check=False)  # later flags win
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_smoke_two_environments_in_subprocesses(run_script):
    result = run_script("sqil_car_racing.py", *TINY, "--num-envs", "2", "--k", "2")
    assert "final greedy evaluation (1 episodes" in result.stdout


def test_num_demos_out_of_range(run_script):
    result = run_script("sqil_car_racing.py", *SHORT, "--num-demos", "21", check=False)
    assert result.returncode != 0 and "--num-demos 21 is not between 1 and the 20 episodes" in result.stderr
