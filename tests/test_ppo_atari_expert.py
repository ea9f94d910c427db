"""scripts/ppo_atari_expert.py: the advantage estimates on a small exact case, a stopped and resumed run that equals
the run that did not stop, and the saved expert acting in collect_demos.py on the stacks it was trained on."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import ppo_atari_expert as ppo  # noqa: E402

import collect_demos  # noqa: E402
import sqil_dqn_atari as atari  # noqa: E402

PONG = "PongNoFrameskip-v4"


def test_advantages_stop_at_episode_ends_and_bootstrap_from_the_next_value():
    rewards, values = torch.tensor([[1.0], [0.0], [1.0]]), torch.tensor([[0.5], [0.2], [0.1]])
    dones = torch.tensor([[0.0], [0.0], [1.0]])  # step 2 begins a new episode: step 1 does not bootstrap from it
    advantages, returns = ppo.advantages_and_returns(
        rewards, values, dones, torch.tensor([0.3]), torch.tensor([0.0]), gamma=0.5, gae_lambda=0.5
    )
    # delta_2 = 1 + 0.5 * 0.3 - 0.1 = 1.05; delta_1 = 0 - 0.2; delta_0 = 1 + 0.5 * 0.2 - 0.5 = 0.6, A_0 = 0.6 + 0.25 * A_1
    torch.testing.assert_close(advantages, torch.tensor([[0.55], [-0.2], [1.05]]))
    torch.testing.assert_close(returns, torch.tensor([[1.05], [0.0], [1.15]]))


def scalars(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = [tag for tag in events.Tags()["scalars"] if tag != "charts/SPS"]
    return {tag: sorted((event.step, event.value) for event in events.Scalars(tag)) for tag in tags}


def test_a_stopped_and_resumed_run_is_the_run_that_did_not_stop(run_script, tmp_path):
    flags = [
        "--env-id", PONG, "--num-envs", "2", "--num-steps", "64", "--no-anneal-lr", "--eval-frequency", "256",
        "--eval-episodes", "1", "--checkpoint-frequency", "256", "--no-cuda",
    ]  # fmt: skip
    script = "scripts/ppo_atari_expert.py"
    run_script(script, *flags, "--total-timesteps", "512", "--exp-name", "straight")
    run_script(script, *flags, "--total-timesteps", "256", "--exp-name", "stopped")
    (stopped,) = tmp_path.glob("checkpoints/*stopped*.pt")
    result = run_script(script, *flags, "--total-timesteps", "512", "--resume", str(stopped))
    assert "at env step 256" in result.stdout and "trained 256 env steps" in result.stdout
    (straight,) = tmp_path.glob("checkpoints/*straight*.pt")
    ends = [torch.load(path, weights_only=False) for path in (straight, stopped)]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 512
    assert all(torch.equal(tensor, ends[1]["agent"][name]) for name, tensor in ends[0]["agent"].items())
    for moments, resumed in zip(ends[0]["optimizer"]["state"].values(), ends[1]["optimizer"]["state"].values()):
        assert all(torch.equal(moments[name], resumed[name]) for name in moments)
    assert np.array_equal(ends[0]["next_obs"], ends[1]["next_obs"]) and torch.equal(
        ends[0]["torch_rng"], ends[1]["torch_rng"]
    )
    runs = [next(tmp_path.glob(f"runs/*{name}*")) for name in ("straight", "stopped")]
    logged = [scalars(run) for run in runs]
    # the stopped half's own final evaluation, at env step 256, comes on top of the one both ran there
    assert logged[1]["eval/greedy_episodic_return"][:1] * 2 == logged[1]["eval/greedy_episodic_return"][:2]
    del logged[1]["eval/greedy_episodic_return"][0]
    assert logged[0] == logged[1] and len(logged[0]["losses/policy_loss"]) == 4
    results = [json.loads((run / "results.json").read_text()) for run in runs]
    assert results[0]["final_greedy_returns"] == results[1]["final_greedy_returns"]
    # A flag that defines the experiment must be the checkpoint's.
    result = run_script(
        script, *flags, "--total-timesteps", "768", "--gamma", "0.9", "--resume", str(stopped), check=False
    )
    assert result.returncode == 2 and "was run with --gamma 0.99 (now 0.9)" in result.stderr


def test_the_expert_acts_in_collect_demos_on_the_stacks_it_was_trained_on(tmp_path, monkeypatch):
    """collect_demos.py records single frames; the expert rebuilds the 4-frame stacks of sqil_dqn_atari.make_env,
    across a new game. Its network is replaced by one whose action is a checksum of the whole stack, each frame
    weighted differently, so that any other stack (or order) would show as another action."""

    def checksum_logits(self, obs: torch.Tensor) -> torch.Tensor:
        weights = torch.tensor([1.0, 10.0, 100.0, 1000.0])[None, :, None, None]
        return torch.nn.functional.one_hot((obs.double() * weights).sum((1, 2, 3)).long() % 6, 6).float()

    path = tmp_path / "expert.pt"
    torch.save({"policy": atari.QNetwork(6).state_dict(), "args": {"env_id": PONG}, "env_steps": 0}, path)
    recording_env, training_env = collect_demos.make_env(PONG), atari.make_env(PONG, seed=0)()
    expert, description = collect_demos.atari_expert(str(path), recording_env, stochastic=False)
    assert "ppo_atari_expert.py" in description
    monkeypatch.setattr(atari.QNetwork, "forward", checksum_logits)
    actions = []
    for seed in (3, 4):  # two games: the second must start a new stack
        frame, _ = recording_env.reset(seed=seed)
        stacked, _ = training_env.reset(seed=seed)
        for _ in range(60):
            action = expert(recording_env, frame)
            assert action == int(checksum_logits(None, torch.as_tensor(stacked)[None]).argmax())
            actions.append(action)
            frame, *_ = recording_env.step(action)
            stacked, *_ = training_env.step(action)
    assert len(set(actions)) >= 4  # the checksum did vary


def test_the_sampled_expert_draws_from_the_policys_softmax(tmp_path, monkeypatch):
    """`collect_demos.py --stochastic` on an Atari expert draws each action from softmax(logits): a policy sure of
    one action always takes it, and a uniform one takes every action about equally often."""
    path = tmp_path / "expert.pt"
    torch.save({"policy": atari.QNetwork(6).state_dict(), "args": {"env_id": PONG}, "env_steps": 0}, path)
    env = collect_demos.make_env(PONG)
    frame, _ = env.reset(seed=0)
    expert, description = collect_demos.atari_expert(str(path), env, stochastic=True)
    assert "sampled actions" in description
    monkeypatch.setattr(atari.QNetwork, "forward", lambda self, obs: torch.tensor([[0.0, 0, 0, 50, 0, 0]]))
    assert {expert(env, frame) for _ in range(200)} == {3}
    monkeypatch.setattr(atari.QNetwork, "forward", lambda self, obs: torch.zeros(1, 6))
    counts = np.bincount([expert(env, frame) for _ in range(1200)], minlength=6)
    assert counts.min() > 140 and counts.max() < 260  # 200 expected each; 5 standard deviations is about 65
