"""bc.py: exact checks of the frame stacks and the likelihoods, smoke runs of every family, bad input."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import bc  # noqa: E402

TINY = ["--total-gradient-steps", "50", "--val-frequency", "25", "--eval-frequency", "25", "--eval-episodes", "1"]


def test_frame_stack_indices_pad_with_the_first_frame_of_each_episode():
    rows = bc.frame_stack_indices(np.array([2, 4]), stack=3)
    expected = [[0, 0, 0], [0, 0, 1], [2, 2, 2], [2, 2, 3], [2, 3, 4], [3, 4, 5]]
    np.testing.assert_array_equal(rows, expected)


def test_demo_frame_stacks_equal_what_the_environment_gives():
    """Replays the first 40 steps of two Breakout demonstration episodes through bc.make_env (4-frame
    stacks) and compares every stacked observation with the stack rebuilt from stored single frames."""
    env = bc.make_env("BreakoutNoFrameskip-v4", "demo", seed=0)
    frame_space = gym.spaces.Box(0, 255, env.observation_space.shape[1:], np.uint8)
    path = ROOT / "demos" / "BreakoutNoFrameskip-v4.npz"
    demos = bc.load_demos(str(path), frame_space, env.action_space, num_episodes=2)
    rows = bc.frame_stack_indices(demos["episode_lengths"], bc.FRAME_STACK)
    seeds = np.load(path)["episode_seeds"]
    for episode in (0, 1):
        start = int(demos["episode_lengths"][:episode].sum())
        obs, _ = env.reset(seed=int(seeds[episode]))
        for t in range(start, start + 40):
            np.testing.assert_array_equal(obs, demos["obs"][rows[t]])
            obs, *_ = env.step(int(demos["actions"][t]))


def test_discrete_loss_is_the_negative_log_softmax_of_the_q_values():
    policy = bc.DiscretePolicy(gym.spaces.Box(-1, 1, (3,)), 4)
    obs, actions = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 1])
    q = policy.q_network(obs)
    expected = -(q.gather(1, actions[:, None]).squeeze(1) - torch.logsumexp(q, -1)).mean()  # Eq. 4, alpha = 1
    assert policy.loss(obs, actions).item() == pytest.approx(expected.item(), rel=1e-6)


def test_squashed_gaussian_likelihood_and_action_bounds():
    space = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    policy = bc.GaussianPolicy(3, space, "mle")
    obs = torch.randn(4, 3)
    actions = torch.tensor([[1.0, 0.5], [-1.0, 0.9], [0.0, 0.1], [1.5, 0.25]])
    normal = policy.distribution(obs)
    squashed = torch.stack([actions[:, 0] / 2.0, (actions[:, 1] - 0.5) / 0.5], -1)
    # density of a = tanh(u): N(u; mu, sigma) / (1 - tanh(u)^2), per dimension (the affine rescale is a constant)
    log_prob = normal.log_prob(torch.atanh(squashed)) - torch.log(1 - squashed**2)
    assert policy.loss(obs, actions).item() == pytest.approx(-log_prob.sum(-1).mean().item(), rel=1e-5)
    sampled = policy.act(torch.randn(1000, 3) * 10, deterministic=False)
    assert (sampled >= torch.tensor(space.low)).all() and (sampled <= torch.tensor(space.high)).all()
    mse = bc.GaussianPolicy(3, space, "mse")
    mse.load_state_dict(policy.state_dict())
    expected = ((torch.tanh(normal.mean) - squashed) ** 2).mean()
    assert mse.loss(obs, actions).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lunar_shifted_start_with_saved_model(run_script, tmp_path):
    result = run_script("bc.py", "--start-state", "shifted", "--final-eval-episodes", "2", "--save-model", *TINY)
    assert "90 training episodes" in result.stdout and "10 validation episodes" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert 0.0 <= results["final_deterministic_success"] <= 1.0 and results["final_validation_loss"] > 0
    (model,) = tmp_path.glob("runs/*/bc.pt")
    policy = bc.DiscretePolicy(gym.spaces.Box(-1, 1, (8,)), 4)
    policy.load_state_dict(torch.load(model))


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run):
    check_the_seed_decides_the_run("bc.py", "--start-state", "shifted", "--final-eval-episodes", "2", *TINY)


def test_atari_crosses_an_episode_end(run_script):
    result = run_script(
        "bc.py", "--env-id", "BreakoutNoFrameskip-v4", "--max-episode-steps", "30", "--final-eval-episodes", "2",
        "--num-demos", "3", *TINY,
    )  # fmt: skip
    assert "2 training episodes" in result.stdout and "final stochastic evaluation (2 episodes)" in result.stdout


def test_car_racing_from_the_rotated_start(run_script):
    result = run_script(
        "bc.py", "--env-id", "CarRacing-v3", "--start-state", "rotated", "--num-demos", "2",
        "--max-episode-steps", "30", "--final-eval-episodes", "1", *TINY,
    )  # fmt: skip
    assert "1 training episodes" in result.stdout and "final stochastic evaluation (1 episodes)" in result.stdout


def test_halfcheetah_with_the_bundled_demonstrations(run_script):
    """MuJoCo observes float64: the policy (float32) must still evaluate."""
    result = run_script(
        "bc.py", "--env-id", "HalfCheetah-v5", "--num-demos", "2", "--max-episode-steps", "20",
        "--final-eval-episodes", "1", *TINY,
    )  # fmt: skip
    assert "1 training episodes" in result.stdout and "final deterministic evaluation (1 episodes)" in result.stdout


@pytest.mark.parametrize("loss", ["mle", "mse"])
def test_continuous_actions(run_script, tmp_path, loss, write_random_demos):
    write_random_demos(tmp_path / "pendulum.npz", "Pendulum-v1", episodes=3, length=30)
    result = run_script(
        "bc.py", "--env-id", "Pendulum-v1", "--demo-path", str(tmp_path / "pendulum.npz"), "--continuous-loss", loss,
        "--max-episode-steps", "20", "--final-eval-episodes", "2", *TINY,
    )  # fmt: skip
    assert "final deterministic evaluation (2 episodes)" in result.stdout


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--num-demos", "0"], "--num-demos 0 is not between 1 and the 100 episodes"),
        (["--env-id", "Pendulum-v1", "--demo-path", str(ROOT / "demos" / "LunarLander-v3.npz")], "holds observations"),
        (["--env-id", "Pendulum-v1", "--start-state", "shifted"], "exists for LunarLander only"),
        (["--start-state", "rotated"], "exists for CarRacing only"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        (["--val-fraction", "1"], "--val-fraction 1.0 must be at least 0 and below 1"),
        (["--total-gradient-steps", "0"], "--total-gradient-steps must be at least 1, not 0"),
        (["--final-eval-episodes", "0"], "--final-eval-episodes must be at least 1, not 0"),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("bc.py", *TINY, *flags, check=False)  # later flags win
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_unsupported_spaces_are_named(run_script, tmp_path):
    result = run_script("bc.py", "--env-id", "CliffWalking-v1", *TINY, check=False)
    assert result.returncode != 0 and "bc.py handles" in result.stderr and "Traceback" not in result.stderr
