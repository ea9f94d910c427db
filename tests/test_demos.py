"""The bundled demonstrations: they load, hold the documented keys, replay to their checksums,
and bad files stop the loader with one sentence."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import collect_demos  # noqa: E402

BUNDLED = sorted((ROOT / "demos").rglob("*.npz"))  # demos/sampled/ too
DOCUMENTED_KEYS = collect_demos.REQUIRED_KEYS | {"episode_seeds"}


def test_every_paper_environment_of_this_issue_is_bundled():
    names = {p.stem for p in BUNDLED}
    for env_id in [
        "LunarLander-v3",
        "PongNoFrameskip-v4",
        "BreakoutNoFrameskip-v4",
        "SpaceInvadersNoFrameskip-v4",
        "CarRacing-v3",
        "HalfCheetah-v5",
        "Humanoid-v5",
    ]:
        assert env_id in names


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(ROOT / "demos")))
def test_bundled_file_loads_and_is_consistent(path):
    raw = np.load(path)
    assert DOCUMENTED_KEYS <= set(raw.keys())
    metadata = json.loads(str(raw["metadata"]))
    assert metadata["env_id"] == path.stem
    lengths = raw["episode_lengths"]
    assert lengths.sum() == len(raw["actions"]) == len(raw["terminated"]) == len(raw["truncated"])
    # every episode ends exactly once, at its last step, terminated or truncated but not both
    ends = np.zeros(len(raw["actions"]), dtype=bool)
    ends[np.cumsum(lengths) - 1] = True
    assert np.array_equal(raw["terminated"] | raw["truncated"], ends)
    assert not (raw["terminated"] & raw["truncated"]).any()
    # returns are the sums of the recorded rewards
    per_episode = np.add.reduceat(raw["rewards"].astype(np.float64), np.r_[0, np.cumsum(lengths)[:-1]])
    np.testing.assert_allclose(per_episode, raw["episode_returns"], rtol=1e-5, atol=1e-3)

    env = collect_demos.make_env(metadata["env_id"])
    episodes = 2 if metadata["env_id"].startswith("CarRacing") else None  # 1,000 slow steps an episode: two
    demos = collect_demos.load_demos(str(path), env.observation_space, env.action_space, episodes)  # replays images
    steps = int(lengths[:episodes].sum())
    assert demos["obs"].shape == demos["next_obs"].shape == (steps, *env.observation_space.shape)
    inside = ~ends[: steps - 1]  # within an episode, the next observation is the following row's observation
    assert np.array_equal(demos["next_obs"][:-1][inside], demos["obs"][1:][inside])


def test_loader_rejects_missing_file(tmp_path):
    env = gym.make("LunarLander-v3")
    with pytest.raises(collect_demos.DemoError, match="does not exist"):
        collect_demos.load_demos(str(tmp_path / "nope.npz"), env.observation_space, env.action_space)


def test_loader_rejects_a_file_in_another_format(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a numpy file")
    env = gym.make("LunarLander-v3")
    with pytest.raises(collect_demos.DemoError, match="not a demonstration file"):
        collect_demos.load_demos(str(bad), env.observation_space, env.action_space)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(collect_demos.DemoError, match="not a demonstration file"):
        collect_demos.load_demos(str(tmp_path / "other.npz"), env.observation_space, env.action_space)


def test_loader_rejects_mismatched_spaces_but_not_other_env_ids():
    lunar = str(ROOT / "demos" / "LunarLander-v3.npz")
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(collect_demos.DemoError, match="but the environment has"):
        collect_demos.load_demos(lunar, cartpole.observation_space, cartpole.action_space)
    # spaces decide, not names: the same spaces under another id load fine
    shifted = gym.make("LunarLander-v3", gravity=-9.0)
    assert len(collect_demos.load_demos(lunar, shifted.observation_space, shifted.action_space)["obs"]) > 0


def test_replay_divergence_is_a_clear_error(tmp_path):
    path = min((p for p in BUNDLED if "NoFrameskip" in p.stem), key=lambda p: p.stat().st_size)
    data = dict(np.load(path))
    data["actions"] = data["actions"].copy()
    data["actions"][5:50] = (data["actions"][5:50] + 1) % 4  # a different game from step 5 on
    np.savez(tmp_path / "tampered.npz", **data)
    env = collect_demos.make_env(path.stem)
    with pytest.raises(collect_demos.DemoError, match="gave other frames than were recorded"):
        collect_demos.load_demos(str(tmp_path / "tampered.npz"), env.observation_space, env.action_space)


def test_collect_and_summarise(run_script, tmp_path):
    out = tmp_path / "ll.npz"
    run_script(
        "collect_demos.py", "--env-id", "LunarLander-v3", "--num-episodes", "3", "--seed", "5", "--out", str(out)
    )
    summary = run_script("collect_demos.py", "--summary", str(out)).stdout
    assert "episodes 3" in summary and "landing success rate" in summary
    assert list(np.load(out)["episode_seeds"]) == [5, 6, 7]
    bad = run_script("collect_demos.py", "--summary", str(tmp_path / "missing.npz"), check=False)
    assert bad.returncode != 0 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def test_collect_demos_regenerates_the_bundled_lunar_file(run_script, tmp_path):
    """The bundled file is what the documented command makes: its first episodes come out again."""
    out = tmp_path / "again.npz"
    run_script("collect_demos.py", "--env-id", "LunarLander-v3", "--num-episodes", "3", "--out", str(out))
    again, bundled = np.load(out), np.load(ROOT / "demos" / "LunarLander-v3.npz")
    steps = int(again["episode_lengths"].sum())
    assert np.array_equal(again["episode_lengths"], bundled["episode_lengths"][:3])
    assert np.array_equal(again["actions"], bundled["actions"][:steps])
    assert np.array_equal(again["obs"], bundled["obs"][:steps])


def test_collect_demos_regenerates_the_bundled_car_racing_file(run_script, tmp_path):
    """The CarRacing expert reads the track, not the pixels: the documented command gives the bundled
    first episode again, actions and frame checksum alike."""
    out = tmp_path / "car.npz"
    run_script("collect_demos.py", "--env-id", "CarRacing-v3", "--num-episodes", "1", "--out", str(out))
    again, bundled = np.load(out), np.load(ROOT / "demos" / "CarRacing-v3.npz")
    assert again["episode_checksums"][0] == bundled["episode_checksums"][0]
    assert np.array_equal(again["actions"], bundled["actions"][: int(again["episode_lengths"][0])])


def loaders():
    """Every loader of every script, called as its script calls it (the signatures differ by what each trains on)."""
    import bc
    import gail_dqn
    import rbc_lunar
    import sqil_car_racing
    import sqil_dqn_atari
    import sqil_sac_continuous

    lunar = gym.make("LunarLander-v3")
    cheetah_like = gym.make("Pendulum-v1")
    return {
        "collect_demos": (
            collect_demos,
            lambda p: collect_demos.load_demos(p, lunar.observation_space, lunar.action_space),
        ),
        "bc": (bc, lambda p: bc.load_demos(p, lunar.observation_space, lunar.action_space, None)),
        "rbc_lunar": (rbc_lunar, lambda p: rbc_lunar.load_demos(p, lunar.unwrapped, None)),
        "gail_dqn": (gail_dqn, lambda p: gail_dqn.load_demos(p, lunar.unwrapped, None)),
        "gail_dqn images": (gail_dqn, lambda p: gail_dqn.load_image_demos(p, "PongNoFrameskip-v4", 6, None)),
        "sqil_car_racing": (sqil_car_racing, lambda p: sqil_car_racing.load_demos(p, "CarRacing-v3", None)),
        "sqil_dqn_atari": (
            sqil_dqn_atari,
            lambda p: sqil_dqn_atari.load_demos(p, gym.spaces.Discrete(6), None, torch.device("cpu")),
        ),
        "sqil_sac_continuous": (sqil_sac_continuous, lambda p: sqil_sac_continuous.load_demos(p, cheetah_like, None)),
    }


def test_every_loader_raises_its_files_demo_error(tmp_path):
    """A bad file is an exception of the script's own DemoError (a ValueError) with one sentence, never
    a SystemExit: a loader copied into a larger program must not stop it."""
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((ROOT / "demos" / "LunarLander-v3.npz").read_bytes()[:1000])
    for name, (module, load) in loaders().items():
        for path, message in ((tmp_path / "missing.npz", "does not exist"), (truncated, "not a")):
            with pytest.raises(module.DemoError, match=message) as caught:
                load(str(path))
            assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value), name


def same_file(a: Path, b: Path) -> list[str]:
    """The keys in which two demonstration files differ (values, dtypes or shapes), or that only one has."""
    first, second = dict(np.load(a)), dict(np.load(b))
    keys = first.keys() | second.keys()
    return sorted(
        k
        for k in keys
        if k not in first
        or k not in second
        or not (
            first[k].dtype == second[k].dtype
            and first[k].shape == second[k].shape
            and np.array_equal(first[k], second[k])
        )
    )


@pytest.mark.parametrize("name", ["LunarLander-v3.npz", "expert/LunarLander-v3.npz", "HalfCheetah-v5.npz"])
def test_a_minari_round_trip_is_exact(run_script, tmp_path, monkeypatch, name):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # never the user's own datasets
    run_script("collect_demos.py", "--to-minari", str(ROOT / "demos" / name), "sqil/roundtrip-v0")
    import minari

    dataset = minari.load_dataset("sqil/roundtrip-v0")  # a dataset Minari itself reads: episodes, both ends
    data = np.load(ROOT / "demos" / name)
    assert dataset.total_episodes == len(data["episode_lengths"]) and dataset.total_steps == len(data["actions"])
    episode = next(dataset.iterate_episodes())
    length = int(data["episode_lengths"][0])
    assert np.array_equal(episode.observations[:-1], data["obs"][:length])
    assert np.array_equal(episode.observations[-1], data["final_obs"][0])
    assert (
        episode.terminations[-1] == data["terminated"][length - 1]
        and episode.truncations[-1] == data["truncated"][length - 1]
    )
    run_script("collect_demos.py", "--from-minari", "sqil/roundtrip-v0", "--out", str(tmp_path / "back.npz"))
    assert same_file(ROOT / "demos" / name, tmp_path / "back.npz") == []


def test_a_minari_dataset_from_elsewhere_trains_through_the_conversion(run_script, tmp_path, monkeypatch):
    """A dataset that collect_demos.py did not write (no metadata of ours): converted, it loads in a training
    script; returns are summed from its rewards, seeds unknown (-1), and a step both terminated and
    truncated counts as terminated."""
    minari = pytest.importorskip("minari")
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = gym.make("LunarLander-v3")
    episodes = []
    for e in range(2):
        obs, _ = env.reset(seed=e)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        for t in range(30):  # cut short by hand: the second episode's last step is both ends at once
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            observations.append(obs), actions.append(0), rewards.append(reward)
            terminations.append(terminated or (e == 1 and t == 29)), truncations.append(t == 29)
            if terminated:
                break
        episodes.append(
            EpisodeBuffer(
                id=e,
                observations=np.stack(observations),
                actions=np.array(actions),
                rewards=np.array(rewards),
                terminations=np.array(terminations),
                truncations=np.array(truncations),
            )
        )
    with pytest.warns(UserWarning):  # Minari asks for an author and a code link; a user's dataset may lack them
        minari.create_dataset_from_buffers("other/lunar-v0", episodes, env="LunarLander-v3", algorithm_name="hand")
    out = tmp_path / "converted.npz"
    run_script("collect_demos.py", "--from-minari", "other/lunar-v0", "--out", str(out))
    data = np.load(out)
    assert list(data["episode_seeds"]) == [-1, -1] and data["terminated"][-1] and not data["truncated"][-1]
    assert np.allclose(data["episode_returns"], [np.sum(e.rewards) for e in episodes])
    assert not (data["terminated"] & data["truncated"]).any()
    run_script(
        "rbc_lunar.py",
        "--demo-path",
        str(out),
        "--total-gradient-steps",
        "20",
        "--eval-frequency",
        "20",
        "--eval-episodes",
        "1",
        "--final-eval-episodes",
        "1",
        "--max-episode-steps",
        "50",
    )


def test_minari_conversions_fail_in_one_sentence(run_script, tmp_path, monkeypatch):
    pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    cases = [
        (("--to-minari", str(ROOT / "demos" / "CarRacing-v3.npz"), "sqil/car-v0"), "stay in this project's format"),
        (("--to-minari", str(tmp_path / "missing.npz"), "sqil/x-v0"), "does not exist"),
        (("--from-minari", "sqil/nonesuch-v0", "--out", str(tmp_path / "x.npz")), "no local Minari dataset"),
        (("--from-minari", "sqil/nonesuch-v0"), "needs --out"),
    ]
    for args, message in cases:
        done = run_script("collect_demos.py", *args, check=False)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
