"""sqil_dqn_atari.py: the frame-once replay buffer rebuilds exactly the stacks the environment gave
(across truncations and wrap-around), balanced batches, demonstrations kept apart, the soft Bellman
target, smoke runs and bad input."""

import hashlib
import json
import re
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import sqil_dqn_atari as atari  # noqa: E402

CPU = torch.device("cpu")
BREAKOUT = "BreakoutNoFrameskip-v4"
DEMOS = ROOT / "demos" / f"{BREAKOUT}.npz"


def key(obs, action, next_obs, terminated) -> str:
    parts = (np.asarray(obs, np.uint8).tobytes(), np.asarray(next_obs, np.uint8).tobytes())
    return hashlib.sha1(b"".join(parts) + bytes([int(action), int(terminated)])).hexdigest()


def sampled_keys(buffer: atari.FrameReplayBuffer, n: int) -> list[str]:
    obs, actions, next_obs, terminated = buffer.sample(n)
    return [key(*row) for row in zip(obs.numpy(), actions.numpy(), next_obs.numpy(), terminated.numpy())]


def test_agent_buffer_rebuilds_the_environments_stacks_across_truncations_and_wraparound():
    """Two environments, episodes truncated after 25 steps, 150 vector steps into a buffer of 60
    transitions per stream: every sampled (obs, action, next_obs, terminated) must be one the vector
    environment produced, with the true final observation at truncations (not the next reset), and
    from the retained window only; and the sample covers most of that window."""
    envs = gym.vector.SyncVectorEnv(
        [atari.make_env(BREAKOUT, seed=i, max_episode_steps=25) for i in range(2)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    buffer = atari.FrameReplayBuffer(120, 2, (84, 84), CPU)
    obs, _ = envs.reset(seed=3)
    buffer.start_episodes(np.arange(2), obs[:, -1])
    recorded = [[], []]  # per environment, in order
    truncations = 0
    rng = np.random.default_rng(0)
    for _ in range(150):
        actions = rng.integers(0, 4, size=2)
        next_obs, _, terminated, truncated, infos = envs.step(actions)
        for i in range(2):
            real_next = infos["final_obs"][i] if infos.get("_final_obs", np.zeros(2, bool))[i] else next_obs[i]
            recorded[i].append(key(obs[i], actions[i], real_next, terminated[i]))
        truncations += int(truncated.sum())
        atari.store_step(buffer, next_obs, actions, terminated, truncated, infos)
        obs = next_obs
    assert truncations >= 10
    # Each stream keeps 61 rows; 5 reset frames share them, and the 4 oldest rows lost their history.
    retained = set(recorded[0][-52:]) | set(recorded[1][-52:])
    evicted = set(recorded[0][:-62]) | set(recorded[1][:-62])
    samples = sampled_keys(buffer, 3000)
    assert set(samples) <= retained | (set(recorded[0][-62:]) | set(recorded[1][-62:]))
    assert not set(samples) & (evicted - retained)
    assert len(set(samples) & retained) >= 0.95 * len(retained)


def test_demo_buffer_rebuilds_the_stacks_of_the_replayed_games_and_is_never_evicted():
    demo_buffer = atari.load_demos(str(DEMOS), gym.spaces.Discrete(4), num_episodes=2, device=CPU)
    data = np.load(DEMOS)
    env = atari.make_env(BREAKOUT, seed=0)()
    expected, start = set(), 0
    for seed, length in zip(data["episode_seeds"][:2], data["episode_lengths"][:2]):
        obs, _ = env.reset(seed=int(seed))
        for action in data["actions"][start : start + length]:
            next_obs, _, terminated, _, _ = env.step(int(action))
            expected.add(key(obs, action, next_obs, terminated))
            obs = next_obs
        start += length
    before = demo_buffer.frames.clone()
    # about 4 draws per transition (in batches that keep memory small) leave about 2% of them undrawn
    samples = {k for _ in range(-(-4 * len(expected) // 2000)) for k in sampled_keys(demo_buffer, 2000)}
    assert samples <= expected and len(samples) > 0.9 * len(expected)
    agent_buffer = atari.FrameReplayBuffer(10, 1, (84, 84), CPU)
    agent_buffer.start_episodes(np.zeros(1, dtype=np.int64), np.zeros((1, 84, 84), np.uint8))
    for _ in range(50):  # the agent buffer wraps five times; the demonstrations stay as they were
        agent_buffer.add(np.zeros(1, dtype=np.int64), [0], np.zeros((1, 84, 84), np.uint8), [False])
    assert torch.equal(demo_buffer.frames, before) and demo_buffer.num_transitions() == int(
        data["episode_lengths"][:2].sum() + 2
    )


def test_the_second_load_reads_the_cache_and_a_damaged_entry_is_rebuilt(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(atari, "DEMO_CACHE", tmp_path)
    first = atari.load_demos(str(DEMOS), gym.spaces.Discrete(4), 2, CPU)
    entries = sorted(tmp_path.glob(f"{BREAKOUT}/*.npy"))
    assert len(entries) == 2  # one per episode, named by its checksum

    def replay(*args, **kwargs):
        raise AssertionError("replayed an episode that the cache holds")

    with monkeypatch.context() as patch:
        patch.setattr(gym.wrappers.AtariPreprocessing, "step", replay)
        second = atari.load_demos(str(DEMOS), gym.spaces.Discrete(4), 2, CPU)

    def written(buffer):  # the rows written (torch.empty leaves the spare row's bytes undefined)
        return np.asarray(buffer.frames[:, : buffer.size[0]]), buffer.actions[:, : buffer.size[0]]

    assert all(np.array_equal(a, b) for a, b in zip(written(second), written(first)))
    frames = np.load(entries[0])
    frames[10, 40, 40] ^= 1  # one pixel of one entry changed, the other entry cut short
    np.save(entries[0], frames)
    entries[1].write_bytes(entries[1].read_bytes()[:1000])
    third = atari.load_demos(str(DEMOS), gym.spaces.Discrete(4), 2, CPU)
    assert capsys.readouterr().out.count("do not match their checksum: replaying the episode again") == 2
    assert all(np.array_equal(a, b) for a, b in zip(written(third), written(first)))
    assert all(atari.frames_checksum(np.load(entry)) == entry.name.split("-")[0] for entry in entries)  # rebuilt
    monkeypatch.setattr(atari, "DEMO_CACHE", tmp_path / "off")
    atari.load_demos(str(DEMOS), gym.spaces.Discrete(4), 1, CPU, cache=False)
    assert not (tmp_path / "off").exists()


def test_balanced_batch_is_half_demonstrations_and_stores_one_frame_per_transition():
    streams = np.zeros(1, dtype=np.int64)
    demo, agent = atari.FrameReplayBuffer(100, 1, (84, 84), CPU), atari.FrameReplayBuffer(1000, 1, (84, 84), CPU)
    for buffer, value, steps in ((demo, 255, 50), (agent, 0, 3)):  # only 3 agent transitions so far
        buffer.start_episodes(streams, np.full((1, 84, 84), value, np.uint8))
        for _ in range(steps):
            buffer.add(streams, [1], np.full((1, 84, 84), value, np.uint8), [False])
    obs, actions, next_obs, terminated = atari.balanced_batch(demo, agent, 32)
    assert obs.shape == (32, 4, 84, 84) and obs.dtype == torch.uint8
    assert (obs[:16] == 255).all() and (obs[16:] == 0).all() and (next_obs[16:] == 0).all()
    per_transition = sum(t[0, 0].nbytes for t in (agent.frames, agent.age, agent.actions, agent.terminated))
    assert per_transition <= 7_500  # 1,000,000 transitions in at most 7.5 GB (a stack of 4 frames alone: 28 KB)


def test_soft_bellman_target_terminated_vs_truncated():
    q_sa, rewards = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0])
    next_q = torch.log(torch.tensor([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0]]))  # V(s') = log 4 with alpha = 1
    errors = atari.soft_bellman_error(q_sa, next_q, rewards, torch.tensor([True, False]), gamma=0.9, alpha=1.0)
    assert errors[0].item() == pytest.approx(1.0)  # absorbing: V = r_abs / (1 - gamma) = 0
    assert errors[1].item() == pytest.approx(2.0 - (1.0 + 0.9 * np.log(4.0)))
    half = atari.soft_bellman_error(q_sa, next_q * 0.5, rewards, torch.tensor([False, False]), 0.9, alpha=0.5)
    assert half[0].item() == pytest.approx(2.0 - (1.0 + 0.9 * 0.5 * np.log(4.0)))


def test_smoke_two_envs_crossing_truncations_with_saved_model(run_script, tmp_path):
    result = run_script(
        "sqil_dqn_atari.py", "--total-timesteps", "160", "--num-envs", "2", "--learning-starts", "40",
        "--max-episode-steps", "30", "--eval-frequency", "80", "--eval-episodes", "1", "--num-demos", "2",
        "--buffer-size", "100", "--target-network-frequency", "5", "--train-frequency", "4", "--save-model",
        "--capture-video",
    )  # fmt: skip
    assert result.stdout.count("episodic_return=") >= 4 and "final greedy evaluation (1 games)" in result.stdout
    # each periodic evaluation's line tells a long run's speed and where its Q values stand
    assert re.search(
        r"global_step=80, greedy evaluation return -?[\d.]+ \(\d+ env steps/s since the last", result.stdout
    )
    assert "mean Q of demonstration / agent transitions" in result.stdout
    assert len(list(tmp_path.glob("videos/*/game0/*.mp4"))) == 1  # the one final game, filmed once
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["env_steps"] == 160 and results["gradient_steps"] == (160 - 40) // 4
    (model,) = tmp_path.glob("runs/*/sqil_dqn_atari.pt")
    atari.QNetwork(4).load_state_dict(torch.load(model))


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run):
    check_the_seed_decides_the_run(
        "sqil_dqn_atari.py", "--total-timesteps", "140", "--num-envs", "2", "--learning-starts", "40",
        "--max-episode-steps", "30", "--eval-frequency", "70", "--eval-episodes", "1", "--num-demos", "2",
        "--buffer-size", "100", "--target-network-frequency", "5", "--train-frequency", "1", "--batch-size", "8",
    )  # fmt: skip


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--env-id", "LunarLander-v3"], "plays Atari games as `<Game>NoFrameskip-v4`"),
        (["--env-id", "NoSuchGameNoFrameskip-v4"], "cannot make environment 'NoSuchGameNoFrameskip-v4'"),
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--demo-path", str(ROOT / "demos" / "PongNoFrameskip-v4.npz")], "holds observations"),
        (["--num-demos", "21"], "--num-demos 21 is not between 1 and the 20 episodes"),
        (["--total-timesteps", "0"], "--total-timesteps must be at least 1, not 0"),
        (["--eval-max-episode-steps", "0"], "--eval-max-episode-steps must be at least 1, not 0"),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("sqil_dqn_atari.py", "--total-timesteps", "10", *flags, check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_greedy_evaluation_games_are_capped():
    """A greedy policy that never serves (always NOOP) would play Breakout to ALE's 108,000-frame cap."""
    q_network = atari.QNetwork(4)
    with torch.no_grad():
        q_network.network[-1].weight.zero_()
        q_network.network[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    returns, lengths = atari.evaluate(BREAKOUT, q_network, 2, seed=0, device=CPU, max_episode_steps=50)
    assert returns == [0.0, 0.0] and lengths == [50, 50]


def scalars(run_dir: Path) -> dict:
    """Every TensorBoard scalar of a run but its speed, from all its event files (a resumed run adds one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if tag != "charts/SPS"]
    return {tag: sorted((event.step, event.value) for event in events.Scalars(tag)) for tag in tags}


# Two environments crossing episode ends, an agent buffer that wraps around, evaluations and target updates on both
# sides of the checkpoint at env step 100.
RESUME = [
    "--num-envs", "2", "--learning-starts", "40", "--max-episode-steps", "30", "--eval-frequency", "70",
    "--eval-episodes", "1", "--eval-max-episode-steps", "40", "--num-demos", "2", "--buffer-size", "100",
    "--target-network-frequency", "25", "--batch-size", "8", "--checkpoint-frequency", "100", "--train-frequency", "1",
]  # fmt: skip


def test_a_stopped_and_resumed_run_is_the_run_that_did_not_stop(run_script, tmp_path):
    run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "200", "--exp-name", "straight")
    run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "100", "--exp-name", "stopped")
    (stopped,) = tmp_path.glob("checkpoints/*stopped*.pt")
    result = run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "200", "--resume", str(stopped))
    assert "at env step 100" in result.stdout and "trained 100 env steps" in result.stdout
    (straight,) = tmp_path.glob("checkpoints/*straight*.pt")
    ends = [torch.load(path, weights_only=False) for path in (straight, stopped)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 200
    for key in ("q_network", "target_network"):
        for name, tensor in ends[0][key].items():
            assert torch.equal(tensor, ends[1][key][name]), (key, name)
    for moments, resumed in zip(ends[0]["optimizer"]["state"].values(), ends[1]["optimizer"]["state"].values()):
        assert all(torch.equal(moments[name], resumed[name]) for name in moments)
    for name, array in ends[0]["agent_buffer"].items():
        assert np.array_equal(array, ends[1]["agent_buffer"][name]), name
    frames = [(tmp_path / "checkpoints" / end["frames"]).read_bytes() for end in ends]
    assert frames[0] == frames[1] and len(list(tmp_path.glob("checkpoints/*.frames"))) == 2  # older ones removed
    assert np.array_equal(ends[0]["obs"], ends[1]["obs"]) and torch.equal(ends[0]["torch_rng"], ends[1]["torch_rng"])
    assert ends[0]["numpy_rng"][2:] == ends[1]["numpy_rng"][2:]
    assert np.array_equal(ends[0]["numpy_rng"][1], ends[1]["numpy_rng"][1])
    # Everything logged: the losses, episodes and evaluations of both halves (the stopped half also logged a final
    # evaluation of its own), and the final evaluation.
    runs = [next(tmp_path.glob(f"runs/*{name}*")) for name in ("straight", "stopped")]
    logged = [scalars(run) for run in runs]
    assert len(logged[1].pop("eval/final_episodic_return")) == 2 and logged[0].pop("eval/final_episodic_return")
    assert logged[0] == logged[1] and len(logged[0]["losses/loss"]) == 1 and len(logged[0]["eval/episodic_return"]) == 2
    results = [json.loads(next(run.glob("results.json")).read_text()) for run in runs]
    assert results[0]["final_greedy_returns"] == results[1]["final_greedy_returns"]
    assert results[0]["gradient_steps"] == results[1]["gradient_steps"] == 160


def test_a_checkpoint_without_the_buffer_refills_it_and_bad_resumes_give_one_sentence(run_script, tmp_path):
    run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "100", "--no-checkpoint-buffer")
    (checkpoint,) = tmp_path.glob("checkpoints/*.pt")
    assert not list(tmp_path.glob("checkpoints/*.frames"))
    at_100 = tmp_path / "at_100.pt"
    at_100.write_bytes(checkpoint.read_bytes())
    # Resumed at 100 after 60 gradient steps, learning_starts 40: updates go on from env step 140.
    result = run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "200", "--resume", str(at_100))
    assert "40 env steps refill it before updates" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")  # the resumed run writes into the same run folder
    assert json.loads(results_file.read_text())["gradient_steps"] == 60 + 60
    # Another configuration, a file that is no checkpoint, a checkpoint whose frames are gone.
    run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "100", "--exp-name", "framed")
    (framed,) = tmp_path.glob("checkpoints/*framed*.pt")
    for path in tmp_path.glob("checkpoints/*framed*.frames"):
        path.unlink()
    for flags, message in [
        ([str(at_100), "--gamma", "0.9"], "was run with --gamma 0.99 (now 0.9); a resumed run keeps"),
        ([str(DEMOS)], "is not a checkpoint of sqil_dqn_atari.py"),
        ([str(framed)], "keeps its agent buffer's frames in"),
    ]:
        result = run_script("sqil_dqn_atari.py", *RESUME, "--total-timesteps", "200", "--resume", *flags, check=False)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    # ... unless asked to leave that buffer out: then the run goes on as one whose checkpoint never held it.
    result = run_script(
        "sqil_dqn_atari.py", *RESUME, "--total-timesteps", "200", "--resume", str(framed), "--no-checkpoint-buffer"
    )
    assert "the checkpoint's agent buffer is left out: 40 env steps refill it before updates" in result.stdout
    ends = [torch.load(path, weights_only=False) for path in (checkpoint, framed)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 200
    assert all(torch.equal(tensor, ends[1]["q_network"][name]) for name, tensor in ends[0]["q_network"].items())
