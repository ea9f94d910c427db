"""Shared helpers: every script is run as a user would run it, in a process of its own with tiny flags."""

import atexit
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import forked_scripts
import gymnasium as gym
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# One replay cache of image demonstrations for the whole session (set before any script is imported, which
# reads it): each file is replayed once, and the user's own cache is never touched.
os.environ["SQIL_DEMO_CACHE"] = tempfile.mkdtemp(prefix="sqil-demo-cache-")
atexit.register(shutil.rmtree, os.environ["SQIL_DEMO_CACHE"], ignore_errors=True)


@pytest.fixture
def run_script(tmp_path):
    """Runs `python <script> <args>` from a scratch directory (so runs/, videos/ and models/ land
    there) and returns the CompletedProcess. `check=True` fails the test with the script's output.
    The run is a process forked from one that has imported torch already (forked_scripts.py);
    SQIL_TEST_SUBPROCESS=1 starts a fresh interpreter for each run instead."""

    def run(script: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDL_VIDEODRIVER": "dummy"}
        if os.environ.get("SQIL_TEST_SUBPROCESS") == "1":
            command = [sys.executable, str(ROOT / script), *args]
            result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        else:
            result = forked_scripts.run(str(ROOT / script), args, cwd=tmp_path, env=env, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(
                f"{script} {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    return run


CLOCK = ("sps", "per_s", "time")  # TensorBoard tags and results.json keys that time the run rather than record it


@pytest.fixture
def check_the_seed_decides_the_run(run_script, tmp_path):
    """Runs `python <script> <args>` twice with one seed and once with another, and checks that everything the
    run records (every TensorBoard scalar, every entry of results.json; not the clock's, not the echoed flags)
    repeats with the seed and changes with another seed: every number in the docs relies on the first half."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    names = itertools.count()

    def record(script: str, args: tuple[str, ...], seed: int) -> dict:
        name = f"seed{seed}run{next(names)}"
        run_script(script, *args, "--seed", str(seed), "--exp-name", name)
        (run_dir,) = tmp_path.glob(f"runs/*__{name}__*")
        events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
        events.Reload()
        scalars = {
            tag: [(event.step, event.value) for event in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
            if not any(clock in tag.lower() for clock in CLOCK)
        }
        results = json.loads((run_dir / "results.json").read_text())
        results = {k: v for k, v in results.items() if k != "args" and not any(clock in k.lower() for clock in CLOCK)}
        assert scalars and results, f"{script} logged nothing to compare"
        return {"scalars": scalars, "results": results}

    def check(script: str, *args: str) -> None:
        first = record(script, args, seed=1)
        again = record(script, args, seed=1)
        for part in ("scalars", "results"):
            for key in first[part]:
                assert again[part].get(key) == first[part][key], f"{script}: {part} {key} differs with the same seed"
            assert again[part].keys() == first[part].keys()
        assert record(script, args, seed=2) != first, f"{script}: seed 2 recorded exactly what seed 1 did"

    return check


@pytest.fixture
def write_random_demos():
    """Writes a small demonstration file in the project's format from a random policy (plumbing only)."""

    def write(path: Path, env_id: str, episodes: int = 2, length: int = 60) -> None:
        env = gym.make(env_id, max_episode_steps=length)
        env.action_space.seed(0)
        obs_rows, final_obs, actions, terminated, truncated, lengths = [], [], [], [], [], []
        for episode in range(episodes):
            obs, _ = env.reset(seed=episode)
            done = False
            while not done:
                action = env.action_space.sample()
                next_obs, _, term, trunc, _ = env.step(action)
                obs_rows.append(obs)
                actions.append(action)
                terminated.append(term)
                truncated.append(trunc)
                obs, done = next_obs, term or trunc
            final_obs.append(obs)
            lengths.append(len(actions) - sum(lengths))
        space = {"type": "Box", "shape": list(env.observation_space.shape), "dtype": str(env.observation_space.dtype)}
        act_space = {"type": "Box", "shape": list(env.action_space.shape), "dtype": str(env.action_space.dtype)}
        metadata = {"format_version": 1, "env_id": env_id, "observation_space": space, "action_space": act_space}
        np.savez_compressed(
            path,
            obs=np.asarray(obs_rows, np.float32),
            final_obs=np.asarray(final_obs, np.float32),
            actions=np.asarray(actions, np.float32),
            rewards=np.zeros(len(actions), np.float32),
            terminated=np.asarray(terminated),
            truncated=np.asarray(truncated),
            episode_lengths=np.asarray(lengths),
            episode_returns=np.zeros(episodes),
            metadata=np.array(json.dumps(metadata)),
        )

    return write
