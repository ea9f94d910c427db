"""Greedy Atari policies evaluated with sticky actions: does a learner recover from states its demonstrations
never show?

On ALE's deterministic v4 games the only randomness is the no-op reset, so a policy that copies a greedy
expert may never leave the states the expert visited (BC scores the expert's 21.0 on Pong). Sticky actions
(Machado et al. 2018; the default of ALE's v5 games) repeat the previous action instead of the chosen one
with probability p on every emulator frame, which pushes every policy off the demonstrated states.

The protocol, fixed before any result was read (docs/atari.md, "Sticky actions"): p = 0.25, the v5 default;
exactly the preprocessing the demonstrations were recorded through (`sqil_dqn_atari.make_env`: 30 no-op
reset, frame skip 4 with max-pooling, 84x84 grayscale, 4 stacked frames, full games); games of at most
4,500 agent steps; 10 games a model, game i reset with seed 3,000,000 + i (no learner has seen these
seeds); the greedy action of every network. Every model is also played at p = 0 with the same seeds.

    python scripts/atari_sticky_eval.py --env-id PongNoFrameskip-v4 \
        --models experts/PongNoFrameskip-v4.pt results/atari_sticky/BC__PongNoFrameskip-v4__1/runs/*/bc.pt

A model is any of: an expert saved by `scripts/ppo_atari_expert.py`, a network saved by `bc.py --save-model`
or `sqil_dqn_atari.py --save-model`, or a checkpoint of `sqil_dqn_atari.py` or `gail_dqn.py` (its Q network).
"""

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqil_dqn_atari import ATARI_EVAL_MAX_STEPS, ATARI_PREPROCESSING, FRAME_STACK, QNetwork  # noqa: E402

SEED = 3_000_000


def make_env(env_id: str, repeat_action_probability: float) -> gym.Env:
    """`sqil_dqn_atari.make_env`'s environment (capped as its evaluation) with sticky actions."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make(env_id, repeat_action_probability=repeat_action_probability)
    env = gym.wrappers.AtariPreprocessing(env, **ATARI_PREPROCESSING)
    env = gym.wrappers.TimeLimit(env, ATARI_EVAL_MAX_STEPS)
    env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)
    return gym.wrappers.RecordEpisodeStatistics(env)


def load_q_network(path: str, n_actions: int, env_id: str) -> QNetwork:
    """The network whose greedy action is the policy's, from any of the files the module docstring names."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if "policy" in saved:  # scripts/ppo_atari_expert.py
        state = saved["policy"]
    elif "q_network" in saved and isinstance(saved["q_network"], dict):  # a checkpoint
        state = saved["q_network"]
    else:  # a state dict: sqil_dqn_atari.py's QNetwork, or bc.py's DiscretePolicy (its q_network)
        state = {key.removeprefix("q_network."): value for key, value in saved.items()}
    trained_on = saved.get("args", {}).get("env_id", env_id) if isinstance(saved.get("args"), dict) else env_id
    if trained_on != env_id:
        sys.exit(f"atari_sticky_eval.py: {path} was trained on {trained_on}, not {env_id}.")
    q_network = QNetwork(n_actions)
    q_network.load_state_dict(state)
    return q_network.eval()


def play(env_id: str, q_network: QNetwork, repeat_action_probability: float, games: int) -> tuple[list, list]:
    """Scores and lengths of `games` greedy games, game i reset with seed SEED + i, played side by side."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_id, repeat_action_probability) for _ in range(games)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs, _ = envs.reset(seed=[SEED + i for i in range(games)])
    scores, lengths = [None] * games, [None] * games
    while None in scores:  # a game that ended goes on, unrecorded, until the last one ends
        with torch.no_grad():
            actions = q_network(torch.as_tensor(obs)).argmax(1).numpy()
        obs, _, terminated, truncated, infos = envs.step(actions)
        for i in np.flatnonzero(terminated | truncated):
            if scores[i] is None:
                scores[i] = float(infos["final_info"]["episode"]["r"][i])
                lengths[i] = int(infos["final_info"]["episode"]["l"][i])
    envs.close()
    return scores, lengths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="PongNoFrameskip-v4")
    parser.add_argument("--models", nargs="+", required=True, help="the files to evaluate (see above)")
    parser.add_argument("--repeat-action-probability", type=float, nargs="+", default=[0.0, 0.25])
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument("--out", default=None, help="a JSON lines file to append each model's result to")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.models:
        if not Path(path).is_file():
            sys.exit(f"atari_sticky_eval.py: {path} does not exist.")
    n_actions = int(make_env(args.env_id, 0.0).action_space.n)
    for path in args.models:
        q_network = load_q_network(path, n_actions, args.env_id)
        for p in args.repeat_action_probability:
            scores, lengths = play(args.env_id, q_network, p, args.games)
            print(
                f"{path}: sticky {p}: mean {np.mean(scores):.1f} ± {np.std(scores) / np.sqrt(len(scores)):.1f} (s.e.), "
                f"scores {[int(s) for s in scores]}, lengths {lengths}",
                flush=True,
            )
            if args.out:
                with open(args.out, "a") as f:
                    result = dict(model=path, env_id=args.env_id, repeat_action_probability=p, seed=SEED)
                    f.write(json.dumps({**result, "scores": scores, "lengths": lengths}) + "\n")


if __name__ == "__main__":
    main()
