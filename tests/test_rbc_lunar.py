"""rbc_lunar.py: exact checks of the objectives (Eq. 4-8, Appendix A.1), the balanced batch, the
shifted start, and smoke runs of every loss and ablation flag."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import rbc_lunar  # noqa: E402
from rbc_lunar import QNetwork, TransitionBuffer, bc_nll, soft_bellman_error, soft_value  # noqa: E402

DEMOS = ROOT / "demos" / "LunarLander-v3.npz"


def test_soft_bellman_target_terminated_vs_truncated_and_r_abs():
    q_sa = torch.tensor([1.0, 1.0, 1.0])
    next_q = torch.log(torch.tensor([[1.0, 3.0], [1.0, 3.0], [1.0, 3.0]]))  # V(s') = log(1 + 3) with alpha = 1
    rewards = torch.tensor([0.5, 0.5, 0.5])
    terminated = torch.tensor([False, True, True])  # a truncated transition is simply not terminated
    gamma = 0.9
    errors = soft_bellman_error(q_sa, next_q, rewards, terminated, gamma, alpha=1.0, absorbing_value=0.0)
    expected_bootstrap = 1.0 - (0.5 + gamma * np.log(4.0))
    assert errors[0].item() == pytest.approx(expected_bootstrap)
    assert errors[1].item() == pytest.approx(1.0 - 0.5)  # absorbing state, V = 0 / (1 - gamma)
    with_r_abs = soft_bellman_error(
        q_sa, next_q, rewards, terminated, gamma, alpha=1.0, absorbing_value=0.2 / (1 - gamma)
    )
    assert with_r_abs[2].item() == pytest.approx(1.0 - (0.5 + gamma * 0.2 / (1 - gamma)))
    assert with_r_abs[0].item() == pytest.approx(expected_bootstrap)  # r_abs touches terminal transitions only
    # `--absorbing reward`: one absorbing value per row, r / (1 - gamma) with the row's own reward
    per_row = torch.tensor([5.0, 5.0, 0.0])
    by_reward = soft_bellman_error(q_sa, next_q, per_row * (1 - gamma), terminated, gamma, 1.0, per_row)
    assert by_reward[1].item() == pytest.approx(1.0 - (5.0 * (1 - gamma) + gamma * 5.0))  # = 1 - 5: V(s_T) = 5
    assert by_reward[2].item() == pytest.approx(1.0)  # the agent's termination: reward 0, V(s_T) = 0


def test_absorbing_value_per_mode():
    rewards, gamma = torch.tensor([1.0, 0.0, 100.0]), 0.9
    by_reward = rbc_lunar.absorbing_value(rewards, "reward", 0.0, gamma, imitation=True)
    torch.testing.assert_close(by_reward, torch.tensor([10.0, 0.0, 1000.0]))  # r / (1 - gamma) per row
    assert rbc_lunar.absorbing_value(rewards, "constant", 0.5, gamma, imitation=True) == pytest.approx(5.0)
    # the RL mode (environment reward): terminations are worth r_abs / (1 - gamma) = 0 whatever --absorbing says
    assert rbc_lunar.absorbing_value(rewards, "reward", 0.0, gamma, imitation=False) == 0.0


def test_soft_value_range_is_reached_and_clips_the_bootstrap():
    """One state, |A| = 3 actions, every action pays r_max and loops: the soft value iteration
    V <- alpha log sum_a exp((r_max + gamma V) / alpha) converges to the upper end of the range,
    (r_max + alpha log 3) / (1 - gamma); paying r_min with alpha -> 0 reaches the lower end."""
    gamma, alpha = 0.9, 0.5
    low, high = rbc_lunar.soft_value_range(0.0, 1.0, alpha, gamma, 3)
    assert (low, high) == pytest.approx((0.0, (1.0 + alpha * np.log(3)) / (1 - gamma)))
    v = torch.zeros(1)
    for _ in range(500):
        v = soft_value((1.0 + gamma * v).expand(1, 3), alpha)
    assert v.item() == pytest.approx(high, rel=1e-6)
    # the bootstrap V(s') is clipped into the range; terminations keep their absorbing value
    next_q = torch.tensor([[50.0, 0.0, 0.0], [-5.0, -5.0, -5.0], [50.0, 0.0, 0.0]])
    terminated = torch.tensor([False, False, True])
    zeros = torch.zeros(3)
    errors = soft_bellman_error(zeros, next_q, zeros, terminated, gamma, alpha, 30.0, value_range=(low, high))
    torch.testing.assert_close(errors, torch.tensor([-gamma * high, -gamma * low, -gamma * 30.0]))
    unclipped = soft_bellman_error(zeros, next_q, zeros, terminated, gamma, alpha, 30.0)
    assert unclipped[0].item() <= -gamma * 50.0 and unclipped[1].item() > 0.0


def test_soft_value_and_temperature():
    q = torch.tensor([[0.0, 2.0, -1.0]])
    assert soft_value(q, 1.0).item() == pytest.approx(np.log(1 + np.exp(2) + np.exp(-1)))
    assert soft_value(q, 0.5).item() == pytest.approx(0.5 * np.log(1 + np.exp(4) + np.exp(-2)))
    assert soft_value(q, 1e-3).item() == pytest.approx(2.0, abs=1e-3)  # alpha -> 0 gives the hard max
    probabilities = torch.exp(-bc_nll(q.expand(3, 3), torch.arange(3), 1.0))
    np.testing.assert_allclose(probabilities.numpy(), torch.softmax(q[0], -1).numpy(), rtol=1e-6)


def test_sqil_gradient_equals_regularised_bc_gradient_appendix_a1():
    """With gamma = 1 and absorbing terminal states (V(s_T) = 0), the gradient of Eq. 7,
    l_BC + lambda_demo B(D_demo, 0) + lambda_samp B(D_samp, 0) - sum V(s_0), equals
    lambda_demo * grad[B(D_demo, 1 / (2 lambda_demo)) + (lambda_samp / lambda_demo) B(D_samp, 0)] (Eq. 8-10)."""
    torch.manual_seed(0)
    net = QNetwork(3, 4).double()
    lambda_demo, lambda_samp = 0.7, 0.3

    def trajectory(length):  # states s_0..s_T (s_T absorbing), actions a_0..a_{T-1}
        return torch.randn(length + 1, 3, dtype=torch.float64), torch.randint(0, 4, (length,))

    demos, samples = [trajectory(4), trajectory(2)], [trajectory(3)]

    def bellman_sum(trajectories, reward):  # B (Eq. 6) with V_theta itself at s_{t+1}: no target network
        total = 0.0
        for states, actions in trajectories:
            q = net(states)
            q_sa = q[:-1].gather(1, actions[:, None]).squeeze(1)
            terminated = torch.zeros(len(actions), dtype=torch.bool)
            terminated[-1] = True
            errors = soft_bellman_error(q_sa, q[1:], torch.full_like(q_sa, reward), terminated, 1.0, 1.0, 0.0)
            total = total + (errors**2).sum()
        return total

    def gradient(loss):
        net.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    def eq7(with_v_start=True):
        bc = sum(bc_nll(net(s)[:-1], a, 1.0).sum() for s, a in demos)
        v_start = sum(soft_value(net(s)[:1], 1.0).sum() for s, _ in demos)
        penalty = lambda_demo * bellman_sum(demos, 0.0) + lambda_samp * bellman_sum(samples, 0.0)
        return bc + penalty - (v_start if with_v_start else 0.0)

    def eq8():
        ratio = lambda_samp / lambda_demo
        return lambda_demo * (bellman_sum(demos, 1 / (2 * lambda_demo)) + ratio * bellman_sum(samples, 0.0))

    g7, g8 = gradient(eq7()), gradient(eq8())
    assert g7.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(g7, g8)
    # the V(s_0) terms are what make the sum telescope: RBC alone (Eq. 5) has another gradient
    assert not torch.allclose(gradient(eq7(with_v_start=False)), g8)


def test_average_weights_is_an_exponential_moving_average():
    average, network = rbc_lunar.QNetwork(8, 4), rbc_lunar.QNetwork(8, 4)
    for module, value in ((average, 0.0), (network, 1.0)):
        for parameter in module.parameters():
            torch.nn.init.constant_(parameter, value)
    rbc_lunar.average_weights(average, network, decay=0.75)
    assert all(torch.allclose(p, torch.full_like(p, 0.25)) for p in average.parameters())
    rbc_lunar.average_weights(average, network, decay=0.75)  # 0.75 * 0.25 + 0.25 * 1
    assert all(torch.allclose(p, torch.full_like(p, 0.4375)) for p in average.parameters())
    assert all(torch.equal(p, torch.ones_like(p)) for p in network.parameters())  # the network is left alone


def test_absorbing_states_replace_termination():
    """`--absorbing learned`: the terminated transition now leads to the absorbing state, which loops
    to itself under every action; a truncated end is left alone; nothing stays terminal."""
    obs = np.array([[1, 1, 0], [2, 2, 0], [3, 3, 0], [4, 4, 0]], dtype=np.float32)  # last feature: the flag
    next_obs = np.array([[2, 2, 0], [9, 9, 0], [4, 4, 0], [5, 5, 0]], dtype=np.float32)
    actions = np.array([1, 0, 1, 1])
    rewards = np.array([0.5, 0.5, 0.5, 0.5])
    terminated = np.array([False, True, False, False])  # episode 1 terminates; episode 2 is truncated
    new_obs, new_actions, new_rewards, new_next_obs, new_terminated = rbc_lunar.with_absorbing_states(
        obs, actions, rewards, next_obs, terminated, 2
    )
    absorbing = [0, 0, 1]
    assert np.array_equal(new_obs, [[1, 1, 0], [2, 2, 0], [3, 3, 0], [4, 4, 0], absorbing, absorbing])
    assert np.array_equal(new_next_obs, [[2, 2, 0], absorbing, [4, 4, 0], [5, 5, 0], absorbing, absorbing])
    assert np.array_equal(new_actions, [1, 0, 1, 1, 0, 1])
    assert np.array_equal(new_rewards, [0.5] * 6)  # the self-loops pay what the terminating transition paid
    assert not new_terminated.any()
    env = rbc_lunar.make_env("LunarLander-v3", "shifted", seed=0, absorbing_flag=True)
    first, _ = env.reset(seed=0)
    assert first.shape == (9,) and first[-1] == 0 and env.observation_space.shape == (9,)


def test_transition_buffer_wraps_and_demo_buffer_is_never_overwritten():
    buffer = TransitionBuffer(5, 1, torch.device("cpu"))
    for start in (0, 3, 6):
        obs = np.arange(start, start + 3, dtype=np.float32)[:, None]
        buffer.add(obs, np.zeros(3, np.int64), obs[:, 0] + 0.5, obs + 100, np.zeros(3, bool), np.ones(3), np.ones(3))
    assert buffer.size == 5
    assert sorted(buffer.obs[:, 0].tolist()) == [4, 5, 6, 7, 8]  # the oldest four were evicted
    assert torch.equal(buffer.next_obs, buffer.obs + 100)  # rows stay whole transitions
    assert torch.equal(buffer.rewards, buffer.obs[:, 0] + 0.5)


def test_balanced_batch_is_half_demonstrations():
    """The batch the training loop uses: first half from D_demo, second half from D_samp, even when
    D_samp holds far fewer transitions than D_demo."""
    demo_buffer = TransitionBuffer(1000, 8, torch.device("cpu"))
    agent_buffer = TransitionBuffer(1000, 8, torch.device("cpu"))
    demo_buffer.add(
        np.ones((1000, 8), np.float32),
        np.zeros(1000, np.int64),
        np.ones(1000),
        np.ones((1000, 8), np.float32),
        np.zeros(1000, bool),
        np.full(1000, 0.99),
        np.ones(1000),
    )
    agent_obs = -np.ones((7, 8), np.float32)
    agent_buffer.add(
        agent_obs, np.ones(7, np.int64), np.zeros(7), agent_obs, np.ones(7, bool), np.full(7, 0.5), np.zeros(7)
    )
    batch = rbc_lunar.balanced_batch(demo_buffer, agent_buffer, 64)
    obs, actions, rewards, next_obs, terminated, discounts, _ = batch
    assert obs.shape == (64, 8) and actions.shape == rewards.shape == next_obs.shape[:1] == terminated.shape == (64,)
    assert (obs[:32] == 1).all() and (actions[:32] == 0).all() and not terminated[:32].any()
    assert (rewards[:32] == 1).all() and (rewards[32:] == 0).all()  # r_demo for D_demo, 0 for D_samp
    assert (obs[32:] == -1).all() and (actions[32:] == 1).all() and terminated[32:].all()
    assert torch.allclose(discounts[:32], torch.tensor(0.99)) and (discounts[32:] == 0.5).all()


def test_balanced_batch_with_an_odd_batch_size():
    demo_buffer, agent_buffer = (
        TransitionBuffer(10, 2, torch.device("cpu")),
        TransitionBuffer(10, 2, torch.device("cpu")),
    )
    for buffer, value in ((demo_buffer, 1.0), (agent_buffer, -1.0)):
        obs = np.full((10, 2), value, np.float32)
        buffer.add(obs, np.zeros(10), np.zeros(10), np.zeros((10, 2)), np.zeros(10, bool), np.ones(10), np.zeros(10))
    obs, *_ = rbc_lunar.balanced_batch(demo_buffer, agent_buffer, 7)
    assert obs.shape == (7, 2) and (obs[:3] == 1).all() and (obs[3:] == -1).all()


def test_n_step_transitions_sum_rewards_within_each_episode():
    """Two episodes of 3 and 2 steps, n = 2, gamma 0.5: each row sums at most two rewards of its own episode,
    bootstraps from the state m steps on with discount gamma^m, and keeps the m-th reward and its termination."""
    obs = np.arange(5, dtype=np.float32)[:, None]
    rewards = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    terminated = np.array([False, False, True, False, False])  # the second episode is truncated
    ends = np.array([False, False, True, False, True])
    _, _, returns, next_obs, term, discounts, last = rbc_lunar.n_step_transitions(
        obs, np.zeros(5), rewards, obs + 10, terminated, ends, n=2, gamma=0.5
    )
    assert np.allclose(returns, [1 + 0.5 * 2, 2 + 0.5 * 4, 4, 8 + 0.5 * 16, 16])
    assert np.array_equal(next_obs[:, 0], [11, 12, 12, 14, 14])
    assert np.array_equal(term, [False, True, True, False, False])
    assert np.allclose(discounts, [0.25, 0.25, 0.5, 0.25, 0.5]) and np.array_equal(last, [2, 4, 4, 16, 16])
    one_step = rbc_lunar.n_step_transitions(obs, np.zeros(5), rewards, obs + 10, terminated, ends, n=1, gamma=0.5)
    assert np.array_equal(one_step[2], rewards) and np.array_equal(one_step[3], obs + 10)
    assert np.array_equal(one_step[4], terminated) and np.allclose(one_step[5], 0.5)


def test_n_step_target_of_a_demonstration_that_lands():
    """With --absorbing reward, a demonstration two steps before its landing: r_demo + gamma r_demo + gamma^2
    r_demo / (1 - gamma), the one-step recursion unrolled; the per-row discount enters soft_bellman_error."""
    gamma, r = 0.9, 1.0
    _, _, returns, _, term, discounts, last = rbc_lunar.n_step_transitions(
        np.zeros((2, 1)), np.zeros(2), np.full(2, r), np.zeros((2, 1)), [False, True], [False, True], 3, gamma
    )
    v_terminal = rbc_lunar.absorbing_value(torch.tensor(last), "reward", 0.0, gamma, imitation=True)
    next_q = torch.zeros(2, 4)
    targets = -soft_bellman_error(
        torch.zeros(2), next_q, torch.tensor(returns), torch.tensor(term), torch.tensor(discounts), 1.0, v_terminal
    )
    assert torch.allclose(targets, torch.tensor([r + gamma * r + gamma**2 * r / (1 - gamma), r / (1 - gamma)]))


def test_numpy_q_function_matches_the_network_and_boltzmann_draws_follow_softmax():
    torch.manual_seed(0)
    q_network = QNetwork(8, 4)
    obs = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    q_numpy = rbc_lunar.numpy_q_function(q_network)
    np.testing.assert_allclose(q_numpy(obs), q_network(torch.as_tensor(obs)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # the Gumbel-max draw samples softmax(Q / alpha): frequencies of 40,000 draws
    q, alpha, rng = np.array([1.0, 0.0, -1.0, 0.5]), 0.5, np.random.default_rng(1)
    draws = [rbc_lunar.boltzmann_action(q, alpha, rng) for _ in range(40_000)]
    expected = torch.softmax(torch.tensor(q / alpha), -1).numpy()
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 40_000, expected, atol=0.01)


def test_huber_penalty_is_the_square_up_to_one_and_linear_beyond():
    errors = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.25, 1.0, 2.0])
    assert torch.equal(rbc_lunar.bellman_penalty(errors, "mse"), errors**2)
    expected = torch.tensor([5.0, 1.0, 0.25, 0.0, 0.0625, 1.0, 3.0])  # e^2 for |e| <= 1, 2|e| - 1 beyond
    torch.testing.assert_close(rbc_lunar.bellman_penalty(errors, "huber"), expected)


def test_an_ensemble_acts_and_bootstraps_on_the_minimum_of_its_members():
    torch.manual_seed(0)
    single, ensemble = QNetwork(8, 4), QNetwork(8, 4, ensemble_size=3)
    assert set(single.state_dict()) < set(ensemble.state_dict())  # one network keeps the keys saved models have
    obs = torch.randn(5, 8)
    members = ensemble.members(obs)
    assert members.shape == (3, 5, 4)
    manual = torch.minimum(torch.minimum(ensemble.network(obs), ensemble.others[0](obs)), ensemble.others[1](obs))
    assert torch.equal(ensemble(obs), manual)
    np.testing.assert_allclose(
        rbc_lunar.numpy_q_function(ensemble)(obs.numpy()), manual.detach().numpy(), rtol=1e-5, atol=1e-6
    )
    assert torch.equal(single.members(obs)[0], single(obs))


def test_dueling_head_is_value_plus_centred_advantages():
    outputs = torch.tensor([[2.0, 1.0, -1.0, 3.0, 1.0]])  # V = 2, A = (1, -1, 3, 1), mean A = 1
    assert torch.equal(rbc_lunar.dueling_q_values(outputs), torch.tensor([[2.0, 0.0, 4.0, 2.0]]))
    np.testing.assert_array_equal(rbc_lunar.dueling_q_values(outputs.numpy()), [[2.0, 0.0, 4.0, 2.0]])
    torch.manual_seed(0)
    q_network, obs = QNetwork(8, 4, dueling=True), torch.randn(5, 8)
    assert q_network.network[-1].out_features == 5
    np.testing.assert_allclose(
        rbc_lunar.numpy_q_function(q_network)(obs.numpy()), q_network(obs).detach().numpy(), rtol=1e-5, atol=1e-6
    )


def test_munchausen_bonus_is_the_clipped_scaled_log_policy():
    # alpha = 0.5, Q = (0, 0.5 ln 3): pi = (1/4, 3/4), log pi = (-1.386, -0.288); the first is clipped to -1
    q = torch.tensor([[0.0, 0.5 * np.log(3.0)]] * 2)
    bonus = rbc_lunar.munchausen_bonus(q, torch.tensor([0, 1]), alpha=0.5, scale=0.9)
    torch.testing.assert_close(bonus, torch.tensor([0.9 * 0.5 * -1.0, 0.9 * 0.5 * np.log(0.75)]))


def test_shifted_start_is_never_visited_by_the_demonstrations():
    data = np.load(DEMOS)
    obs = data["obs"]
    high = obs[:, 1] > 1.0
    assert np.abs(obs[high, 0]).max() < 0.6  # the demonstrations stay near the centre while high up
    for seed in range(20):
        env = rbc_lunar.make_env("LunarLander-v3", "shifted", seed)
        start, _ = env.reset(seed=seed)
        assert abs(abs(start[0]) - rbc_lunar.SHIFTED_X) < 0.05 and start[1] > 1.3
        distances = np.linalg.norm(obs[:, :2] - start[:2], axis=1)
        assert distances.min() > 0.2
    demo_env = rbc_lunar.make_env("LunarLander-v3", "demo", 0)
    assert abs(demo_env.reset(seed=0)[0][0]) < 0.02


def test_a_truncated_episode_is_stored_as_not_terminated():
    """The time limit is a truncation: its last transition must bootstrap, so the rollout the
    buffer receives marks it not terminated and keeps the real next state."""
    env = rbc_lunar.make_env("LunarLander-v3", "demo", seed=0, max_episode_steps=7)
    q_network = QNetwork(8, 4)
    rng = np.random.default_rng(0)
    episode, _, length, success = rbc_lunar.run_episode(env, q_network, "boltzmann", 1.0, rng, seed=3)
    assert length == 7 and not success
    assert not episode["terminated"].any()
    assert np.array_equal(episode["next_obs"][:-1], episode["obs"][1:])
    assert not np.array_equal(episode["next_obs"][-1], episode["obs"][-1])  # a real successor state, not a copy


FLAGS = ["--total-gradient-steps", "400", "--k", "50", "--eval-frequency", "200", "--eval-episodes", "1"]
FLAGS += ["--final-eval-episodes", "2", "--batch-size", "16", "--num-demos", "5", "--no-cuda"]


@pytest.mark.parametrize(
    "variant",
    [
        ["--loss", "sqil"],
        ["--loss", "sqil", "--lambda-samp", "0"],
        ["--loss", "sqil", "--gamma", "0"],
        ["--loss", "sqil", "--rollout-policy", "uniform", "--start-state", "shifted"],
        ["--loss", "rbc", "--start-state", "shifted", "--eval-start-state", "demo", "--ensemble-size", "2"],
        ["--loss", "rbc", "--rbc-lambda", "0", "--buffer-size", "100", "--save-model", "--capture-video"],
        ["--loss", "sqil", "--max-episode-steps", "30", "--dueling", "--munchausen", "0.9"],
        ["--loss", "sqil", "--absorbing", "learned", "--start-state", "shifted"],
        ["--loss", "sqil", "--absorbing", "reward", "--batch-size", "15", "--n-step", "3"],
        ["--loss", "sqil", "--no-clip-values", "--anneal-lr", "--td-loss", "huber"],
        ["--loss", "sqil", "--absorbing", "constant", "--r-samp", "0.5"],
        ["--reward-source", "env", "--start-state", "wide", "--save-model", "--epsilon-start", "1", "--dueling"],
        ["--reward-source", "env", "--n-step", "5", "--max-episode-steps", "30"],
        ["--paper-values", "--start-state", "shifted"],
    ],
    ids=lambda v: "_".join(a.strip("-") for a in v),
)
def test_smoke(run_script, tmp_path, variant):
    flags = FLAGS[:-3] + FLAGS[-1:] if "--reward-source" in variant else FLAGS  # RL mode: no --num-demos
    result = run_script("rbc_lunar.py", *flags, *variant)
    assert "final greedy evaluation" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["training_episodes"] == 400 // 50
    assert results["env_steps"] >= results["training_episodes"]  # whole episodes were played to their ends
    assert 0.0 <= results["final_greedy_success"] <= 1.0
    if "--save-model" in variant:
        (model_path,) = tmp_path.glob("runs/*/rbc_lunar.pt")
        saved = torch.load(model_path, weights_only=False)
        assert saved["args"]["reward_source"] == results["args"]["reward_source"] and "q_network" in saved
        best = torch.load(model_path.with_name("rbc_lunar_best.pt"), weights_only=False)
        assert best["gradient_steps"] % 200 == 0 and best["gradient_steps"] <= 400  # a periodic evaluation's network
        if "--dueling" in variant:  # a trained expert with a dueling head records demonstrations the loader takes
            out = tmp_path / "recorded.npz"
            run_script("collect_demos.py", "--env-id", "LunarLander-v3", "--expert-model", str(model_path),
                       "--num-episodes", "1", "--out", str(out))  # fmt: skip
            demos = rbc_lunar.load_demos(str(out), rbc_lunar.make_env("LunarLander-v3", "demo", 0).unwrapped, None)
            assert len(demos["actions"]) >= 1 and demos["actions"].dtype.kind == "i"
    if "--paper-values" in variant:  # the run used (and recorded) the paper's printed values
        assert {k: results["args"][k] for k in rbc_lunar.PAPER_VALUES} == rbc_lunar.PAPER_VALUES
    if "--capture-video" in variant:
        assert list(tmp_path.glob("videos/*/*.mp4"))
    if "--max-episode-steps" in variant:  # every training episode was cut by the time limit or ended sooner
        assert results["env_steps"] <= 30 * results["training_episodes"]


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run):
    check_the_seed_decides_the_run("rbc_lunar.py", *FLAGS)


def test_policy_averaging_changes_what_is_evaluated_not_the_training(run_script, tmp_path):
    """--policy-averaging evaluates an average of the weights; the run trains exactly as without it (the same
    episodes and losses), and its final evaluation of the unaveraged network is the plain run's."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def record(name: str, *extra: str) -> tuple[dict, dict]:
        run_script("rbc_lunar.py", *FLAGS, "--exp-name", name, *extra)
        (run_dir,) = tmp_path.glob(f"runs/*__{name}__*")
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        training = {
            tag: [event.value for event in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
            if tag.startswith(("losses/", "charts/episodic", "charts/success"))
        }
        return training, json.loads((run_dir / "results.json").read_text())

    plain_training, plain = record("plain", "--policy-averaging", "0")
    averaged_training, averaged = record("averaged", "--policy-averaging", "0.99")
    assert plain_training == averaged_training and plain["env_steps"] == averaged["env_steps"]
    assert averaged["final_greedy_return_unaveraged"] == plain["final_greedy_return"]
    assert averaged["final_greedy_return"] != plain["final_greedy_return"]  # another network was evaluated


def test_a_terminal_shows_a_progress_bar(tmp_path):
    """On a terminal a run shows tqdm's bar: steps done of the budget, elapsed<remaining, rate, latest evaluation."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a new pty is 0 columns wide
    command = [sys.executable, str(ROOT / "rbc_lunar.py"), *FLAGS]
    process = subprocess.Popen(command, cwd=tmp_path, stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the run has ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=600) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode(errors="replace")
    assert re.search(
        r"gradient steps: 100%.*400/400 \[\d\d:\d\d<00:00, [\d.]+(it/s|s/it), eval boltzmann success", text
    ), text


def test_bad_demonstrations_are_one_clear_sentence(run_script, tmp_path):
    missing = run_script("rbc_lunar.py", *FLAGS, "--demo-path", str(tmp_path / "none.npz"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    env = rbc_lunar.make_env("LunarLander-v3", "demo", seed=0)
    with pytest.raises(rbc_lunar.DemoError, match="does not exist"):  # a library caller gets an exception, not an exit
        rbc_lunar.load_demos(str(tmp_path / "none.npz"), env.unwrapped, None)
    (tmp_path / "truncated.npz").write_bytes((ROOT / "demos" / "LunarLander-v3.npz").read_bytes()[:5000])
    with pytest.raises(rbc_lunar.DemoError, match="is not a demonstration file"):
        rbc_lunar.load_demos(str(tmp_path / "truncated.npz"), env.unwrapped, None)
    pong = str(ROOT / "demos" / "PongNoFrameskip-v4.npz")
    mismatched = run_script("rbc_lunar.py", *FLAGS, "--demo-path", pong, check=False)
    assert mismatched.returncode != 0 and "but the environment has" in mismatched.stderr
    assert "Traceback" not in mismatched.stderr
    unknown_env = run_script("rbc_lunar.py", *FLAGS, "--env-id", "NoSuchEnv-v0", check=False)
    assert unknown_env.returncode != 0 and "cannot make environment" in unknown_env.stderr
    assert "Traceback" not in unknown_env.stderr
    too_many = run_script("rbc_lunar.py", *FLAGS[:-3], "--num-demos", "1000", check=False)
    assert too_many.returncode != 0 and "--num-demos" in too_many.stderr


def test_rollouts_carry_the_environment_reward_for_the_rl_mode():
    """--reward-source env stores what the environment paid: the rewards of a rollout add up to its
    true return, and its terminations stay terminations (V(s_T) = r_abs / (1 - gamma) = 0)."""
    env = rbc_lunar.make_env("LunarLander-v3", "demo", seed=0)
    episode, episodic_return, length, _ = rbc_lunar.run_episode(
        env, QNetwork(8, 4), "boltzmann", 1.0, np.random.default_rng(0), seed=1
    )
    assert len(episode["rewards"]) == length
    assert episode["rewards"].sum() == pytest.approx(episodic_return, rel=1e-5)
    assert episode["terminated"][-1] and not episode["terminated"][:-1].any()  # a random lander crashes


def test_epsilon_exploration_mixes_uniform_actions_into_the_greedy_policy():
    """epsilon 1: every action uniform whatever Q says; epsilon 0: no extra random draw at all, so
    Algorithm 1's Boltzmann rollouts are unchanged by the exploration flags' defaults (greedy acting,
    which draws nothing else, leaves the generator untouched)."""
    env = rbc_lunar.make_env("LunarLander-v3", "demo", seed=0, max_episode_steps=400)
    q_network = QNetwork(8, 4)
    with torch.no_grad():  # Q prefers action 2 everywhere: greedy acting never picks anything else
        q_network.network[-1].weight.zero_()
        q_network.network[-1].bias.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))
    greedy, *_ = rbc_lunar.run_episode(env, q_network, "greedy", 1.0, np.random.default_rng(0), seed=1)
    assert (greedy["actions"] == 2).all()
    random_actions, *_ = rbc_lunar.run_episode(
        env, q_network, "greedy", 1.0, np.random.default_rng(0), seed=1, epsilon=1.0
    )
    counts = np.bincount(random_actions["actions"], minlength=4)
    assert len(random_actions["actions"]) >= 40 and (counts > 0).all()
    for epsilon, draws in ((0.0, False), (1e-12, True)):  # greedy acting draws only for the epsilon coin
        rng = np.random.default_rng(5)
        state = rng.bit_generator.state
        rbc_lunar.run_episode(env, q_network, "greedy", 1.0, rng, seed=2, epsilon=epsilon)
        assert (rng.bit_generator.state != state) == draws


def test_wide_start_covers_both_shifted_starts():
    env = rbc_lunar.make_env("LunarLander-v3", "wide", seed=0)
    xs = np.array([env.reset(seed=seed)[0][0] for seed in range(40)])
    assert np.abs(xs).max() <= rbc_lunar.WIDE_X + 0.05  # the usual initial push moves x by < 0.05
    assert xs.min() < -rbc_lunar.SHIFTED_X + 0.15 and xs.max() > rbc_lunar.SHIFTED_X - 0.15


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": 1}, "--batch-size must be at least 2"),
        ({"gamma": 1.0}, "--gamma must be in [0, 1)"),
        ({"alpha": 0.0}, "--alpha must be positive"),
        ({"total_gradient_steps": 0}, "--total-gradient-steps must be at least 1"),
        ({"reward_source": "env", "num_demos": 5}, "it takes no --num-demos"),
        ({"reward_source": "env", "absorbing": "learned"}, "it takes no --absorbing learned"),
        ({"reward_source": "env", "r_samp": 0.5}, "it takes no --r-samp"),
        ({"loss": "rbc", "r_samp": 0.5}, "--r-samp is a reward of SQIL's"),
        ({"paper_values": True, "alpha": 0.5}, "--paper-values sets --alpha"),
        ({"epsilon_start": 1.5}, "--epsilon-start must be a probability"),
        ({"epsilon_decay_steps": 0}, "--epsilon-decay-steps must be at least 1"),
        ({"policy_averaging": 1.0}, "--policy-averaging must be in [0, 1)"),
        ({"ensemble_size": 0}, "--ensemble-size must be at least 1"),
        ({"munchausen": 1.0}, "--munchausen must be in [0, 1)"),
        ({"n_step": 0}, "--n-step must be at least 1"),
        ({"n_step": 3, "munchausen": 0.9}, "--n-step above 1 takes neither"),
        ({"n_step": 3, "absorbing": "learned"}, "--n-step above 1 takes neither"),
    ],
)
def test_bad_flags_are_one_sentence(changes, message):
    args = rbc_lunar.Args(**changes)
    assert message in rbc_lunar.check_args(args)
    assert rbc_lunar.check_args(rbc_lunar.Args()) is None
