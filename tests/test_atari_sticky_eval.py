"""scripts/atari_sticky_eval.py: every kind of saved network loads as the same greedy policy, and the sticky
actions really are the emulator's (p = 1 repeats the first action for ever)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import atari_sticky_eval as sticky  # noqa: E402

import bc  # noqa: E402
import sqil_dqn_atari as atari  # noqa: E402

PONG = "PongNoFrameskip-v4"


def test_every_saved_kind_loads_as_the_same_network(tmp_path):
    torch.manual_seed(0)
    policy = bc.DiscretePolicy(atari.gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), 6)
    q_state = {key.removeprefix("q_network."): value for key, value in policy.state_dict().items()}
    files = {
        "bc.pt": policy.state_dict(),  # bc.py --save-model
        "sqil.pt": q_state,  # sqil_dqn_atari.py --save-model
        "expert.pt": {"policy": q_state, "args": {"env_id": PONG}},  # scripts/ppo_atari_expert.py
        "checkpoint.pt": {"q_network": q_state, "target_network": {}, "args": {"env_id": PONG}},
    }
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    expected = policy.q_network(obs)
    for name, content in files.items():
        torch.save(content, tmp_path / name)
        torch.testing.assert_close(sticky.load_q_network(str(tmp_path / name), 6, PONG)(obs), expected)
    with pytest.raises(SystemExit, match="was trained on PongNoFrameskip-v4, not BreakoutNoFrameskip-v4"):
        sticky.load_q_network(str(tmp_path / "expert.pt"), 6, "BreakoutNoFrameskip-v4")


def test_sticky_actions_are_the_emulators():
    """With p = 1 the emulator repeats the action it started with (NOOP) whatever the agent asks: the frames are
    those of a game played with NOOP and no sticky actions; with p = 0 pressing UP gives other frames."""

    def frames(p: float, action: int) -> np.ndarray:
        env = sticky.make_env(PONG, p)
        obs, _ = env.reset(seed=5)
        seen = [obs]
        for _ in range(60):
            obs, *_ = env.step(action)
            seen.append(obs)
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == p
        return np.stack(seen)

    noop = frames(0.0, 0)
    assert np.array_equal(frames(1.0, 2), noop)
    assert not np.array_equal(frames(0.0, 2), noop)


def test_a_missing_model_is_one_sentence():
    result = subprocess.run(
        [sys.executable, "scripts/atari_sticky_eval.py", "--models", "nowhere.pt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and result.stderr.strip().endswith("nowhere.pt does not exist.")


def test_the_probe_holds_the_opponents_score_and_nothing_else():
    """scripts/pong_score_probe.py: NOOP loses points. Until the first lost point the frames with the score held
    are the frames as played; after it only the opponent's digits differ, and they keep their picture in play."""
    import pong_score_probe as probe

    def frames(hold_score: bool) -> tuple[np.ndarray, np.ndarray]:
        env = probe.make_env(0.0, hold_score)
        obs, _ = env.reset(seed=5)
        seen, rewards = [obs[-1]], [0.0]
        for _ in range(300):
            obs, reward, *_ = env.step(0)
            seen.append(obs[-1])
            rewards.append(reward)
        return np.stack(seen), np.array(rewards)

    played, rewards = frames(False)
    held, rewards_held = frames(True)
    assert np.array_equal(rewards, rewards_held) and (rewards < 0).any()
    first_loss = np.flatnonzero(rewards < 0)[0]
    band = (slice(None), *probe.OPPONENT_SCORE)
    assert np.array_equal(held[:first_loss], played[:first_loss])  # the same game until the point is lost
    assert not np.array_equal(played[band][-1], played[band][1])  # as played, the digit changed ...
    assert (held[band][1:] == played[band][1]).all()  # ... held, it reads as in the first step throughout
    held[band] = played[band]
    assert np.array_equal(held, played)  # and nothing else differs


def test_points_won_after_the_first_lost_one():
    import pong_score_probe as probe

    # after each game's first lost point: "+-", nothing lost, "+", "-"
    assert probe.won_after_first_loss(["+-+-", "+++", "-+", "--"]) == (2, 4)


def test_soft_value_and_entropy_exact_cases():
    """Eq. 1-2: tied actions give V = Q + alpha log 6 and the entropy log 6; one action far ahead gives V = its Q
    and the entropy 0."""
    import pong_score_probe as probe

    q_values = torch.tensor([[2.0] * 6, [5.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    values, entropy = probe.soft_value_and_entropy(q_values, alpha=0.1)
    assert torch.allclose(values, torch.tensor([2.0 + 0.1 * math.log(6), 5.0]))
    assert torch.allclose(entropy, torch.tensor([math.log(6), 0.0]), atol=1e-6)
