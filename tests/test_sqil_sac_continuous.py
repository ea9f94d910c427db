"""sqil_sac_continuous.py: exact checks of the soft target, the likelihood, the critics and the
balanced batch; smoke runs on HalfCheetah and Humanoid crossing episode ends; resume; bad input."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import sqil_sac_continuous as sac  # noqa: E402


def tiny(total_timesteps: int = 300) -> list[str]:
    """Flags for a run that learns for a few steps and crosses episode ends (120-step episodes)."""
    return [
        "--total-timesteps", str(total_timesteps), "--learning-starts", "100", "--batch-size", "32",
        "--max-episode-steps", "120", "--eval-frequency", "150", "--eval-episodes", "1", "--final-eval-episodes", "1",
    ]  # fmt: skip


TINY = tiny()


def test_soft_q_target_bootstraps_on_truncation_not_on_termination():
    rewards = torch.tensor([1.0, 1.0, 0.0])
    next_q_min = torch.tensor([10.0, 10.0, 4.0])
    next_log_prob = torch.tensor([-2.0, -2.0, 1.0])
    terminated = torch.tensor([True, False, False])  # row 1 is a truncated end: stored as not terminated
    targets = sac.soft_q_target(rewards, next_q_min, next_log_prob, terminated, gamma=0.5, alpha=0.25)
    # y = r + gamma * (1 - terminated) * (Q' - alpha log pi'): 1 + 0; 1 + 0.5 * (10 + 0.5); 0 + 0.5 * (4 - 0.25)
    torch.testing.assert_close(targets, torch.tensor([1.0, 6.25, 1.875]))


def test_squashed_gaussian_log_prob_equals_the_change_of_variables():
    torch.manual_seed(0)
    # float64: the reference inverts tanh, which loses float32 precision where |u| is large
    mean, log_std = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 3, dtype=torch.float64).clamp(-2, 1)
    u = mean + log_std.exp() * torch.randn(64, 3, dtype=torch.float64)
    reference = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    expected = reference.log_prob(torch.tanh(u)).sum(-1)
    torch.testing.assert_close(sac.squashed_gaussian_log_prob(u, mean, log_std), expected)
    # where tanh(u) rounds to 1 the naive log(1 - tanh(u)^2) is -inf; ours stays finite
    far = torch.tensor([[30.0]])
    assert torch.isfinite(sac.squashed_gaussian_log_prob(far, torch.zeros(1, 1), torch.zeros(1, 1))).all()


def test_actor_actions_stay_in_the_bounds_and_the_mean_is_deterministic():
    space = gym.spaces.Box(np.array([-0.4, 0.0], np.float32), np.array([0.4, 2.0], np.float32))
    actor = sac.Actor(5, space)
    obs = torch.randn(500, 5) * 20
    sampled, log_prob, mean = actor(obs)
    for actions in (sampled, mean):
        assert (actions >= torch.tensor(space.low)).all() and (actions <= torch.tensor(space.high)).all()
    torch.testing.assert_close(actor(obs)[2], mean)
    assert log_prob.shape == (500,)


@pytest.mark.parametrize("log_prob_space", ["squashed", "action"])
def test_actor_log_prob_is_the_density_of_its_convention(log_prob_space):
    """squashed: the density of tanh(u) (TanhTransform); action: the density of the action itself, tanh(u) then
    rescaled to the bounds (TanhTransform, AffineTransform). On Humanoid's bounds the two differ by 15.6 nats."""
    space = gym.spaces.Box(np.array([-0.4, 0.0, -1.0], np.float32), np.array([0.4, 2.0, 1.0], np.float32))
    torch.manual_seed(0)
    actor = sac.Actor(5, space, log_prob_space=log_prob_space).double()
    obs = torch.randn(64, 5, dtype=torch.float64)
    actions, log_prob, _ = actor(obs)
    mean, log_std = actor.trunk(obs).chunk(2, dim=-1)
    log_std = sac.LOG_STD_MIN + 0.5 * (sac.LOG_STD_MAX - sac.LOG_STD_MIN) * (torch.tanh(log_std) + 1)
    transforms = [torch.distributions.TanhTransform()]
    if log_prob_space == "action":
        transforms.append(torch.distributions.AffineTransform(actor.action_bias, actor.action_scale))
    reference = torch.distributions.TransformedDistribution(torch.distributions.Normal(mean, log_std.exp()), transforms)
    value = actions if log_prob_space == "action" else (actions - actor.action_bias) / actor.action_scale
    torch.testing.assert_close(log_prob, reference.log_prob(value).sum(-1))
    humanoid = gym.make("Humanoid-v5").action_space
    shift = sac.Actor(348, humanoid, log_prob_space="action").log_prob_shift
    assert shift == pytest.approx(17 * np.log(0.4)) and sac.Actor(348, humanoid).log_prob_shift == 0.0


def test_twin_critics_are_two_independent_networks():
    torch.manual_seed(0)
    qf = sac.TwinSoftQNetwork(obs_dim=4, action_dim=2, hidden=8)
    obs, actions = torch.randn(5, 4), torch.randn(5, 2)
    q = qf(obs, actions)
    assert q.shape == (2, 5)
    x = torch.cat([obs, actions], -1)
    layers = [m for m in qf.network if isinstance(m, sac.EnsembleLinear)]
    for j in range(2):  # member j is an ordinary MLP with the j-th weights of every layer
        h = x
        for i, layer in enumerate(layers):
            h = h @ layer.weight[j] + layer.bias[j]
            h = torch.relu(h) if i < len(layers) - 1 else h
        torch.testing.assert_close(q[j], h.squeeze(-1))
    with torch.no_grad():
        layers[0].weight[0].add_(1.0)
    changed = qf(obs, actions)
    assert not torch.allclose(changed[0], q[0]) and torch.equal(changed[1], q[1])


def test_balanced_batch_and_demonstrations_are_never_evicted():
    device = torch.device("cpu")
    demo = sac.ReplayBuffer(10, 3, 1, device)
    demo.add(np.ones((10, 3)), np.ones((10, 1)), np.full(10, 7.0), np.ones((10, 3)), np.zeros(10, bool))
    agent = sac.ReplayBuffer(4, 3, 1, device)
    for step in range(23):  # wraps the agent buffer five times over
        agent.add([np.full(3, -step)], [[-1.0]], [5.0], [np.full(3, -step - 1)], [step % 7 == 0])
    assert agent.size == 4 and sorted(agent.obs[:, 0].tolist()) == [-22, -21, -20, -19]  # the newest four
    assert torch.equal(demo.obs, torch.ones(10, 3))
    obs, actions, rewards, next_obs, terminated = sac.balanced_batch(demo, agent, 16, r_demo=10.0)
    assert (obs[:8] == 1).all() and (obs[8:] <= -19).all()
    torch.testing.assert_close(rewards, torch.tensor([10.0] * 8 + [0.0] * 8))  # the env's rewards (7, 5) are dropped
    torch.testing.assert_close(next_obs[8:, 0], obs[8:, 0] - 1)


def test_buffer_state_round_trips_and_saves_only_the_filled_rows(tmp_path):
    device = torch.device("cpu")
    buffer = sac.ReplayBuffer(1000, 3, 2, device)
    buffer.add(np.arange(15.0).reshape(5, 3), np.ones((5, 2)), np.arange(5.0), -np.ones((5, 3)), [0, 0, 1, 0, 0])
    torch.save(buffer.state_dict(), tmp_path / "buffer.pt")
    assert (tmp_path / "buffer.pt").stat().st_size < 10_000  # 1,000 rows of capacity would be over 32 KB
    restored = sac.ReplayBuffer(1000, 3, 2, device)
    restored.load_state_dict(torch.load(tmp_path / "buffer.pt"))
    assert restored.size == 5 and restored.position == 5
    for key in ("obs", "actions", "rewards", "next_obs", "terminated"):
        assert torch.equal(getattr(restored, key), getattr(buffer, key))


def test_halfcheetah_sqil_crosses_truncations_saves_and_evaluates(run_script, tmp_path, write_random_demos):
    write_random_demos(tmp_path / "cheetah.npz", "HalfCheetah-v5")
    result = run_script(
        "sqil_sac_continuous.py", "--demo-path", str(tmp_path / "cheetah.npz"), "--save-model", *TINY
    )  # fmt: skip
    assert "2 episodes, 120 transitions" in result.stdout and "r_demo 10.0" in result.stdout  # the paper's value
    assert "final stochastic evaluation (1 episodes)" in result.stdout
    (results_file,) = tmp_path.glob("runs/*/results.json")
    results = json.loads(results_file.read_text())
    assert results["r_demo"] == 10.0 and np.isfinite(results["final_deterministic_return"])
    (model_file,) = tmp_path.glob("runs/*/sqil_sac_continuous.pt")
    saved = torch.load(model_file, weights_only=False)
    env = gym.make("HalfCheetah-v5")
    sac.Actor(env.observation_space.shape[0], env.action_space).load_state_dict(saved["actor"])

    # the saved actor is an expert that collect_demos.py can record, in the format the loader takes
    out = tmp_path / "recorded.npz"
    run_script(
        "collect_demos.py", "--env-id", "HalfCheetah-v5", "--expert-model", str(model_file), "--num-episodes", "1",
        "--out", str(out),
    )  # fmt: skip
    demos = sac.load_demos(str(out), env.unwrapped, None)
    assert demos["actions"].shape == (1000, 6) and demos["actions"].dtype == np.float32
    np.testing.assert_array_equal(demos["next_obs"][:-1], demos["obs"][1:])


def test_the_same_seed_gives_the_same_run(check_the_seed_decides_the_run, tmp_path, write_random_demos):
    write_random_demos(tmp_path / "cheetah.npz", "HalfCheetah-v5")
    check_the_seed_decides_the_run("sqil_sac_continuous.py", "--demo-path", str(tmp_path / "cheetah.npz"), *TINY)


def test_humanoid_sqil_crosses_terminations(run_script, tmp_path, write_random_demos):
    write_random_demos(tmp_path / "humanoid.npz", "Humanoid-v5")  # random Humanoids fall: terminated ends
    assert np.load(tmp_path / "humanoid.npz")["terminated"].any()
    result = run_script(
        "sqil_sac_continuous.py", "--env-id", "Humanoid-v5", "--demo-path", str(tmp_path / "humanoid.npz"),
        "--log-prob-space", "action", *TINY,
    )  # fmt: skip
    assert "r_demo 5.0, lambda_samp 0.25" in result.stdout and "final deterministic evaluation" in result.stdout


def test_defaults_that_depend_on_the_environment():
    for env_id, r_demo, lambda_samp in (("HalfCheetah-v5", 10.0, 1.0), ("Humanoid-v5", 5.0, 0.25), ("Hopper-v5", 1, 1)):
        args = sac.with_env_defaults(sac.Args(env_id=env_id))
        assert (args.r_demo, args.lambda_samp) == (r_demo, lambda_samp)
    given = sac.with_env_defaults(sac.Args(env_id="Humanoid-v5", r_demo=2.0, lambda_samp=1.0))
    assert (given.r_demo, given.lambda_samp) == (2.0, 1.0)  # what the user gave is kept
    plain_sac = sac.with_env_defaults(sac.Args(env_id="Humanoid-v5", reward_source="env", lambda_samp=1.0))
    assert (plain_sac.r_demo, plain_sac.lambda_samp) == (None, None)  # e.g. an old plain-SAC checkpoint's args


def test_plain_sac_checkpoints_and_resumes(run_script, tmp_path):
    flags = ["--reward-source", "env", "--checkpoint-frequency", "200"]
    run_script("sqil_sac_continuous.py", *flags, *tiny(200))
    (checkpoint,) = tmp_path.glob("checkpoints/*.pt")
    state = torch.load(checkpoint, weights_only=False)
    assert state["global_step"] == 200 and len(state["agent_buffer"]["actions"]) == 200
    result = run_script("sqil_sac_continuous.py", *flags, *tiny(300), "--resume", str(checkpoint))
    assert "at step 200" in result.stdout and "trained 100 env steps" in result.stdout
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 300
    # A flag that defines the experiment must be the checkpoint's; the run's length may change.
    result = run_script(
        "sqil_sac_continuous.py", *flags, *tiny(400), "--gamma", "0.9", "--resume", str(checkpoint), check=False
    )
    assert result.returncode != 0 and "was run with --gamma 0.99 (now 0.9)" in result.stderr
    assert "Traceback" not in result.stderr


def test_checkpoint_without_buffer_resumes_by_refilling(run_script, tmp_path):
    flags = ["--reward-source", "env", "--checkpoint-frequency", "200", "--no-checkpoint-buffer"]
    run_script("sqil_sac_continuous.py", *flags, *tiny(200))
    (checkpoint,) = tmp_path.glob("checkpoints/*.pt")
    assert torch.load(checkpoint, weights_only=False)["agent_buffer"] is None
    at_200 = tmp_path / "at_200.pt"  # each resumed run overwrites the checkpoint when it ends
    at_200.write_bytes(checkpoint.read_bytes())
    # Resumed at 200 with learning_starts 100: steps 200-299 refill the buffer, so a run to 300 never updates...
    result = run_script("sqil_sac_continuous.py", *flags, *tiny(300), "--resume", str(at_200))
    assert "100 policy steps refill it before updates" in result.stdout
    assert "trained 100 env steps" in result.stdout and "with one gradient step each" not in result.stdout
    # ... and a run to 400 updates from step 300 on.
    result = run_script("sqil_sac_continuous.py", *flags, *tiny(400), "--resume", str(at_200))
    assert "trained 200 env steps" in result.stdout and "with one gradient step each" in result.stdout


def test_target_entropy_sets_the_direction_of_the_temperature(run_script, tmp_path):
    # Starting from alpha 0.2, the temperature rises when the policy's entropy is below the target and falls
    # when it is above: a target far above any entropy the policy has must raise it, one far below lower it.
    flags = ["--reward-source", "env", "--checkpoint-frequency", "200", "--no-checkpoint-buffer", *tiny(200)]
    log_alphas = []
    for target in ("100", "-100"):
        run_script(
            "sqil_sac_continuous.py", *flags, "--autotune", "--target-entropy", target, "--exp-name", f"target{target}"
        )
        (checkpoint,) = tmp_path.glob(f"checkpoints/*target{target}*.pt")
        log_alphas.append(torch.load(checkpoint, weights_only=False)["log_alpha"].item())
    assert log_alphas[0] > np.log(0.2) > log_alphas[1]


def test_no_backup_entropy_takes_the_entropy_out_of_the_critic_target(run_script, tmp_path):
    # With a huge temperature the entropy bonus -alpha log pi(a'|s') dominates SAC's target and drives the
    # critics far from the true rewards (|r| < 2 on random HalfCheetah steps); without it they stay near them.
    flags = ["--reward-source", "env", "--no-autotune", "--alpha", "1000", "--checkpoint-frequency", "200", *tiny(200)]
    mean_abs_q = []
    for flag, name in (("--backup-entropy", "entropy-on"), ("--no-backup-entropy", "entropy-off")):
        run_script("sqil_sac_continuous.py", *flags, flag, "--exp-name", name)
        (checkpoint,) = tmp_path.glob(f"checkpoints/*{name}*.pt")
        state = torch.load(checkpoint, weights_only=False)
        qf = sac.TwinSoftQNetwork(17, 6)
        qf.load_state_dict(state["qf"])
        with torch.no_grad():
            mean_abs_q.append(qf(state["agent_buffer"]["obs"], state["agent_buffer"]["actions"]).abs().mean().item())
    assert mean_abs_q[0] > 100 > 10 > mean_abs_q[1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--demo-path", "missing.npz"], "does not exist"),
        (["--demo-path", str(ROOT / "demos" / "LunarLander-v3.npz")], "holds observations"),
        (["--env-id", "LunarLander-v3"], "needs vector observations and bounded Box actions"),
        (["--env-id", "NoSuchEnv-v0"], "cannot make environment 'NoSuchEnv-v0'"),
        (["--resume", "missing.pt"], "checkpoint missing.pt does not exist"),
        (["--resume", str(ROOT / "demos" / "HalfCheetah-v5.npz")], "is not a checkpoint of sqil_sac_continuous.py"),
        (["--total-timesteps", "-1"], "--total-timesteps must be at least 1, not -1"),
        (["--no-autotune", "--target-entropy", "0"], "--target-entropy is what --autotune aims at"),
        (["--reward-source", "env", "--lambda-samp", "0.5"], "--reward-source env uses none"),
    ],
)
def test_bad_input_gives_one_sentence(run_script, flags, message):
    result = run_script("sqil_sac_continuous.py", *TINY, *flags, check=False)  # later flags win
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_num_demos_out_of_range(run_script, tmp_path, write_random_demos):
    write_random_demos(tmp_path / "cheetah.npz", "HalfCheetah-v5")
    result = run_script(
        "sqil_sac_continuous.py", "--demo-path", str(tmp_path / "cheetah.npz"), "--num-demos", "3", *TINY, check=False
    )  # fmt: skip
    assert result.returncode != 0 and "--num-demos 3 is not between 1 and the 2 episodes" in result.stderr
