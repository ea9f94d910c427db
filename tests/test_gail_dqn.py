"""gail_dqn.py: exact checks of the discriminator reward and loss and of the absorbing-state
treatment, and smoke runs of both reward variants."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import gail_dqn  # noqa: E402

TINY = ["--total-gradient-steps", "400", "--k", "100", "--eval-frequency", "200", "--eval-episodes", "1"]


def test_reward_is_minus_log_one_minus_d():
    d = torch.tensor([0.5, 0.9, 0.01, 0.999])
    logits = torch.log(d / (1 - d))
    expected = -torch.log(1 - d)
    torch.testing.assert_close(gail_dqn.gail_reward(logits), expected, rtol=1e-5, atol=1e-6)
    assert gail_dqn.gail_reward(torch.tensor([0.0])).item() == pytest.approx(np.log(2.0))  # D = 1/2
    assert (gail_dqn.gail_reward(torch.linspace(-30, 30, 61)) > 0).all()  # the biased variant's sign
    expected_logit = torch.log(d) - torch.log(1 - d)
    torch.testing.assert_close(gail_dqn.gail_reward(logits, "logit"), expected_logit, rtol=1e-5, atol=1e-5)


def test_discriminator_loss_labels_demonstrations_one_and_agent_zero():
    demo_logits, agent_logits = torch.tensor([2.0, -1.0]), torch.tensor([0.5])
    sigmoid = torch.sigmoid
    expected = -(torch.log(sigmoid(demo_logits)).mean() + torch.log(1 - sigmoid(agent_logits)).mean())
    assert gail_dqn.discriminator_loss(demo_logits, agent_logits).item() == pytest.approx(expected.item(), rel=1e-6)


def test_discriminator_logit_is_read_at_the_taken_action():
    torch.manual_seed(0)
    net = gail_dqn.QNetwork(3, 4)
    obs, actions = torch.randn(5, 3), torch.tensor([0, 3, 1, 2, 3])
    logits = gail_dqn.discriminator_logits(net, obs, actions)
    torch.testing.assert_close(logits, net(obs)[torch.arange(5), actions])


def test_an_episode_end_becomes_an_absorbing_transition_and_self_loops():
    """Two episodes with the absorbing feature as last column: the first terminated after two steps,
    the second was truncated after two. With 3 actions, the terminated end turns into a transition to
    the absorbing state plus one self-loop per action; the truncated end stays as it was."""
    obs = np.array([[1, 1, 0], [2, 2, 0], [3, 3, 0], [4, 4, 0]], dtype=np.float32)
    next_obs = np.array([[2, 2, 0], [9, 9, 0], [4, 4, 0], [5, 5, 0]], dtype=np.float32)
    actions, terminated = np.array([1, 0, 2, 2]), np.array([False, True, False, False])
    new_obs, new_actions, new_next_obs, new_terminated = gail_dqn.with_absorbing_states(
        obs, actions, next_obs, terminated, 3
    )
    a = [0, 0, 1]
    assert np.array_equal(new_obs, [[1, 1, 0], [2, 2, 0], [3, 3, 0], [4, 4, 0], a, a, a])
    assert np.array_equal(new_next_obs, [[2, 2, 0], a, [4, 4, 0], [5, 5, 0], a, a, a])
    assert np.array_equal(new_actions, [1, 0, 2, 2, 0, 1, 2])
    assert not new_terminated.any()
    env = gail_dqn.make_env("LunarLander-v3", "demo", seed=0, absorbing_flag=True)
    assert env.reset(seed=0)[0][-1] == 0 and env.observation_space.shape == (9,)


def test_terminated_transitions_do_not_bootstrap_and_truncated_ones_do():
    q_sa, rewards = torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.5])
    next_q = torch.log(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
    errors = gail_dqn.soft_bellman_error(q_sa, next_q, rewards, torch.tensor([True, False]), gamma=0.9, alpha=1.0)
    assert errors[0].item() == pytest.approx(0.5)
    assert errors[1].item() == pytest.approx(1.0 - (0.5 + 0.9 * np.log(4.0)))


@pytest.mark.parametrize("variant, formula", [("unbiased", "gail"), ("biased", "logit")])
def test_smoke_crosses_episode_ends(run_script, tmp_path, variant, formula):
    """Episodes capped at 60 steps, one rollout every 100 of 400 gradient steps: several episode
    ends (truncations, and terminations when the lander crashes) pass through the buffers."""
    result = run_script(
        "gail_dqn.py", "--reward-variant", variant, "--max-episode-steps", "60", "--final-eval-episodes", "2",
        "--start-state", "shifted", "--save-model", "--num-demos", "10", "--reward-formula", formula, *TINY,
    )  # fmt: skip
    assert "final greedy evaluation (2 episodes, shifted start)" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["training_episodes"] == 4 and results["args"]["reward_variant"] == variant
    (model,) = tmp_path.glob("runs/*/gail_dqn.pt")
    assert set(torch.load(model)) == {"q_network", "discriminator"}


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run):
    check_the_seed_decides_the_run(
        "gail_dqn.py", "--max-episode-steps", "60", "--num-demos", "10", "--final-eval-episodes", "1", *TINY
    )


def scalars(run_dir: Path) -> dict:
    """Every TensorBoard scalar of a run but its speed, from all its event files (a resumed run adds one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if tag not in ("charts/SPS", "charts/gradient_steps_per_s")]
    return {tag: sorted((event.step, event.value) for event in events.Scalars(tag)) for tag in tags}


def same_state(a, b) -> bool:
    """Two checkpoints' contents are equal, tensor by tensor and array by array."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize(
    "flags, half",
    [
        (["--max-episode-steps", "60", "--num-demos", "10", "--total-gradient-steps", "400", "--k", "100",
          "--eval-frequency", "150", "--discriminator-frequency", "3"], 200),
        (["--env-id", "BreakoutNoFrameskip-v4", "--num-demos", "1", "--max-episode-steps", "25", "--k", "4",
          "--total-gradient-steps", "12", "--batch-size", "8", "--eval-frequency", "5", "--buffer-size", "60"], 6),
    ],
    ids=["lunar", "atari"],
)  # fmt: skip
def test_a_stopped_and_resumed_run_is_the_run_that_did_not_stop(run_script, tmp_path, flags, half):
    flags = [*flags, "--eval-episodes", "1", "--final-eval-episodes", "2", "--checkpoint-frequency", str(half)]
    total = flags[flags.index("--total-gradient-steps") + 1]
    run_script("gail_dqn.py", *flags, "--exp-name", "straight")
    run_script("gail_dqn.py", *flags, "--total-gradient-steps", str(half), "--exp-name", "stopped")
    (stopped,) = tmp_path.glob("checkpoints/*stopped*.pt")
    result = run_script("gail_dqn.py", *flags, "--exp-name", "stopped", "--resume", str(stopped))
    assert f"at gradient step {half}" in result.stdout
    (straight,) = tmp_path.glob("checkpoints/*straight*.pt")
    ends = [torch.load(path, weights_only=False) for path in (straight, stopped)]
    assert ends[0]["step"] == ends[1]["step"] == int(total)
    for key in ("args", "run_name", "python_rng"):
        del ends[0][key], ends[1][key]  # the names differ; python's generator is not used
    for end in ends:  # image frames: rows of the buffer's episodes only, the rest is never read (torch.empty)
        if "frames" in (buffer := end["agent_buffer"]):
            buffer["frames"] = buffer["frames"][buffer["episode"] >= 0]
    assert same_state(ends[0], ends[1])
    runs = [next(tmp_path.glob(f"runs/*{name}*")) for name in ("straight", "stopped")]
    logged = [scalars(run) for run in runs]
    for tag in [tag for tag in logged[0] if tag.startswith("eval/final_")]:  # the stopped half evaluated too
        assert logged[1][tag][-1] == logged[0][tag][-1]
        del logged[0][tag], logged[1][tag]
    assert logged[0] == logged[1] and len(logged[0]["charts/episodic_return"]) >= 3
    results = [json.loads(next(run.glob("results.json")).read_text()) for run in runs]
    for key in ("env_steps", "training_episodes", "best_training_success", "final_greedy_return"):
        assert results[0][key] == results[1][key]


def test_a_checkpoint_without_the_agent_buffer_resumes_with_one_fresh_game(run_script, tmp_path):
    flags = [*TINY, "--num-demos", "10", "--max-episode-steps", "60", "--final-eval-episodes", "1"]
    # Stopped at 150 (games at 0 and 100), then games at 150 (the refill), 200 and 300.
    run_script("gail_dqn.py", *flags, "--total-gradient-steps", "150", "--checkpoint-frequency", "150",
               "--no-checkpoint-buffer", "--exp-name", "bare")  # fmt: skip
    run_script("gail_dqn.py", *flags, "--total-gradient-steps", "150", "--checkpoint-frequency", "150",
               "--exp-name", "kept")  # fmt: skip
    (bare,), (kept,) = tmp_path.glob("checkpoints/*bare*.pt"), tmp_path.glob("checkpoints/*kept*.pt")
    assert torch.load(bare, weights_only=False)["agent_buffer"] is None
    assert torch.load(kept, weights_only=False)["agent_buffer"] is not None
    outputs = [
        run_script("gail_dqn.py", *flags, "--resume", str(bare)).stdout,
        run_script("gail_dqn.py", *flags, "--resume", str(kept), "--no-checkpoint-buffer").stdout,
    ]
    assert "the checkpoint holds no agent buffer: the buffer starts afresh" in outputs[0]
    assert "the checkpoint's agent buffer is left out: the buffer starts afresh" in outputs[1]
    results = [json.loads(next(tmp_path.glob(f"runs/*{name}*/results.json")).read_text()) for name in ("bare", "kept")]
    assert results[0]["training_episodes"] == results[1]["training_episodes"] == 5
    assert results[0]["final_greedy_return"] == results[1]["final_greedy_return"]


def test_bad_resumes_give_one_sentence(run_script, tmp_path):
    run_script("gail_dqn.py", *TINY, "--num-demos", "10", "--max-episode-steps", "60", "--checkpoint-frequency", "400")
    (checkpoint,) = tmp_path.glob("checkpoints/*.pt")
    for flags, message in [
        ([str(checkpoint), "--alpha", "0.5"], "was run with --alpha 1.0 (now 0.5); a resumed run keeps"),
        ([str(ROOT / "demos" / "LunarLander-v3.npz")], "is not a checkpoint of gail_dqn.py"),
        (["missing.pt"], "is not a checkpoint of gail_dqn.py"),
    ]:
        result = run_script(
            "gail_dqn.py", *TINY, "--num-demos", "10", "--max-episode-steps", "60", "--resume", *flags, check=False
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--num-demos", "101"], "--num-demos 101 is not between 1 and the 100 episodes"),
        (["--env-id", "CartPole-v1"], "gail_dqn.py handles LunarLander"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        (["--total-gradient-steps", "-5"], "--total-gradient-steps must be at least 1, not -5"),
        (["--eval-max-episode-steps", "0"], "--eval-max-episode-steps must be at least 1, not 0"),
        (["--alpha", "-1"], "--alpha must be positive, not -1.0"),
        (["--start-state", "rotated"], "the rotated start exists for CarRacing only"),
        (
            ["--env-id", "CarRacing-v3", "--demo-path", str(ROOT / "demos" / "PongNoFrameskip-v4.npz")],
            "holds observations",
        ),
        (
            ["--env-id", "CarRacing-v3", "--demo-path", str(ROOT / "demos" / "LunarLander-v3.npz")],
            "not an image demonstration",
        ),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("gail_dqn.py", *TINY, *flags, check=False)  # later flags win
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def frames_of(*values: int) -> np.ndarray:
    """Tiny 2x2 frames filled with the given values, one per frame."""
    return np.array(values, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 2), np.uint8)


def test_image_episode_ends_absorbing_and_not():
    """Unbiased image buffer, 3 actions: a terminated episode s_0 s_1 s_2 gets three absorbing rows
    (frames 0, absorbing plane 255), one self-loop per action, and its last transition leads to the
    absorbing state, not terminated; a truncated episode keeps its real successor and bootstraps.
    The biased buffer keeps the terminated end terminal."""
    cpu = torch.device("cpu")
    buffer = gail_dqn.EpisodeFrameBuffer(20, (2, 2), n_actions=3, absorbing=True, device=cpu)
    buffer.add_episode(frames_of(1, 2, 3), np.array([0, 2]), terminated=True)
    buffer.add_episode(frames_of(4, 5), np.array([1]), terminated=False)
    assert buffer.valid_rows.tolist() == [0, 1, 3, 4, 5, 6]
    assert buffer.next_row[[0, 1, 3, 4, 5, 6]].tolist() == [1, 3, 3, 3, 3, 7]
    assert buffer.actions[[3, 4, 5]].tolist() == [0, 1, 2] and not buffer.terminated.any()
    obs = buffer.observation(torch.tensor([1, 3, 7]))  # s_1, the absorbing state, the truncated s_T
    assert obs.shape == (3, gail_dqn.FRAME_STACK + 1, 2, 2)
    assert obs[0, :, 0, 0].tolist() == [1, 1, 1, 2, 0]  # padded with the first frame; absorbing plane 0
    assert obs[1, :, 0, 0].tolist() == [0, 0, 0, 0, 255]
    assert obs[2, :, 0, 0].tolist() == [4, 4, 4, 5, 0]

    biased = gail_dqn.EpisodeFrameBuffer(20, (2, 2), n_actions=3, absorbing=False, device=cpu)
    biased.add_episode(frames_of(1, 2, 3), np.array([0, 2]), terminated=True)
    assert biased.valid_rows.tolist() == [0, 1] and biased.terminated[:3].tolist() == [False, True, False]
    assert biased.observation(torch.tensor([1])).shape == (1, gail_dqn.FRAME_STACK, 2, 2)


def test_image_buffer_drops_overwritten_episodes_whole():
    buffer = gail_dqn.EpisodeFrameBuffer(8, (2, 2), n_actions=2, absorbing=True, device=torch.device("cpu"))
    buffer.add_episode(frames_of(1, 2, 3), np.array([0, 1]), terminated=True)  # rows 0-4 (2 absorbing rows)
    buffer.add_episode(frames_of(4, 5, 6, 7), np.array([1, 1, 0]), terminated=False)  # rows 5-8 do not fit: 0-3
    assert set(buffer.episode[buffer.valid_rows].tolist()) == {1}  # the first episode is gone, row 4 too
    assert buffer.valid_rows.tolist() == [0, 1, 2]


def test_image_absorbing_plane_of_the_environment():
    env = gail_dqn.make_env("BreakoutNoFrameskip-v4", "demo", seed=0, absorbing_flag=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (gail_dqn.FRAME_STACK + 1, 84, 84) and env.observation_space.shape == obs.shape
    assert (obs[-1] == 0).all() and obs[: gail_dqn.FRAME_STACK].any()


@pytest.mark.parametrize(
    "flags",
    [
        ["--env-id", "CarRacing-v3", "--start-state", "rotated", "--reward-variant", "unbiased"],
        ["--env-id", "BreakoutNoFrameskip-v4", "--reward-variant", "biased"],
    ],
    ids=["car_racing_unbiased", "atari_biased"],
)
def test_image_smoke_crosses_episode_ends(run_script, tmp_path, flags):
    result = run_script(
        "gail_dqn.py", *flags, "--num-demos", "1", "--max-episode-steps", "25", "--total-gradient-steps", "8",
        "--k", "4", "--batch-size", "8", "--eval-frequency", "4", "--eval-episodes", "1", "--final-eval-episodes", "1",
        "--save-model",
    )  # fmt: skip
    assert "1 episodes" in result.stdout and "final boltzmann evaluation (1 episodes" in result.stdout
    results = json.loads(next(tmp_path.glob("runs/*/results.json")).read_text())
    assert results["training_episodes"] == 2 and results["args"]["max_grad_norm"] == 10.0
    # Atari's learner is sqil_dqn_atari.py's (temperature 0.1), CarRacing's keeps temperature 1
    assert results["args"]["alpha"] == (0.1 if flags[1] == "BreakoutNoFrameskip-v4" else 1.0)
    # each training game is a line of the log, where a redirected run shows no progress bar
    games = re.findall(r"gradient step (\d+): env steps (\d+), episodic_return=-?\d+", result.stdout)
    assert [int(step) for step, _ in games] == [0, 4] and int(games[1][1]) == results["env_steps"]
