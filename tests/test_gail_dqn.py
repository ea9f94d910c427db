"""gail_dqn.py: exact checks of the discriminator reward and loss and of the absorbing-state
treatment, and smoke runs of both reward variants."""

import json
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
    assert "final greedy evaluation (shifted start)" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["training_episodes"] == 4 and results["args"]["reward_variant"] == variant
    (model,) = tmp_path.glob("runs/*/gail_dqn.pt")
    assert set(torch.load(model)) == {"q_network", "discriminator"}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--num-demos", "101"], "--num-demos 101 is not between 1 and the 100 episodes"),
        (["--env-id", "CartPole-v1"], "gail_dqn.py handles LunarLander"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("gail_dqn.py", *flags, *TINY, check=False)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
