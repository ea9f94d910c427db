"""Why do Pong's imitation learners lose every point once they have lost one? A diagnostic probe.

Every one of the 20 demonstrated Pong games was won 21-0, so the opponent's score on the screen reads 0
in every demonstrated frame. Greedy BC and SQIL games are all or nothing (21-0 or about 0-21), with and
without sticky actions (docs/atari.md, "Sticky actions"). Two explanations predict that:

- H1, the score display: after the first point lost the opponent's digit reads 1, a picture no
  demonstration shows, and the network's output changes with it.
- H2, the play itself: the states after a lost point (the serve that follows it, the ball's new paths)
  are ones no demonstration shows.

The probe plays each model twice on the games of `atari_sticky_eval.py` (its protocol: the same
preprocessing, seeds 3,000,000 + i, 4,500-step cap, greedy actions, p = 0 and p = 0.25): once as it is,
and once with the opponent's score held at its picture in the game's first step (the left half of the band
above the top wall, rows 0-8 and columns 0-41 of the 84x84 frame, where neither ball nor paddle ever goes),
so that until the opponent's first point the two games are the same, frame for frame. If H1
holds, holding the score changes what the learners do after a lost point; if only H2 holds, it changes
little. This is a diagnostic of what the networks look at, not an evaluation: no learner's reported score
comes from the held condition. Each game's points are recorded in order ('+' won, '-' lost), and the
share of points won after the first lost one measures recovery inside a game. With `--alpha`, a SQIL
Q network's mean soft value V(s) (Eq. 2) over each game's states before and after its first lost point
says whether SQIL's value sees the states after a lost point as farther from the demonstrations, and the
mean entropy of its policy pi(a|s) = exp((Q(s, a) - V(s)) / alpha) (Eq. 1) there says whether its actions
are nearly tied in those states (entropy near log 6 = 1.79) or chosen with confidence (near 0).

    python scripts/pong_score_probe.py --models experts/PongNoFrameskip-v4.pt \
        results/atari_sticky/BC__PongNoFrameskip-v4__*/bc.pt results/atari_sticky/SQIL-*.pt \
        --out results/atari_sticky/pong_score_probe.jsonl
    python scripts/pong_score_probe.py --models results/atari_sticky/SQIL-*.pt --no-held --alpha 0.1 \
        --out results/atari_sticky/pong_soft_value.jsonl
"""

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from atari_sticky_eval import SEED, load_q_network  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sqil_dqn_atari import ATARI_EVAL_MAX_STEPS, ATARI_PREPROCESSING, FRAME_STACK  # noqa: E402

OPPONENT_SCORE = (slice(0, 9), slice(0, 42))  # rows above the top wall (rows 9-12), the left half: the digits


class HoldOpponentScore(gym.Wrapper):
    """Paints the opponent's score on every 84x84 frame as the game's first step showed it (0). Not the reset's
    frame: the emulator draws the band above the wall brighter there than in play."""

    def reset(self, **kwargs):
        self.held = None
        return self.env.reset(**kwargs)

    def step(self, action):
        frame, reward, terminated, truncated, info = self.env.step(action)
        if self.held is None:  # no point is played in one step: the opponent's score still reads 0
            self.held = frame[OPPONENT_SCORE].copy()
        frame = frame.copy()
        frame[OPPONENT_SCORE] = self.held
        return frame, reward, terminated, truncated, info


def make_env(repeat_action_probability: float, hold_score: bool) -> gym.Env:
    """`atari_sticky_eval.make_env` on Pong, the held score (if asked) painted before the frames are stacked."""
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("PongNoFrameskip-v4", repeat_action_probability=repeat_action_probability)
    env = gym.wrappers.AtariPreprocessing(env, **ATARI_PREPROCESSING)
    if hold_score:
        env = HoldOpponentScore(env)
    env = gym.wrappers.TimeLimit(env, ATARI_EVAL_MAX_STEPS)
    return gym.wrappers.FrameStackObservation(env, FRAME_STACK)


def soft_value_and_entropy(q_values: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """V(s) = alpha logsumexp(Q(s, .) / alpha) (Eq. 2), and the entropy of pi(.|s) = softmax(Q(s, .) / alpha) (Eq. 1)."""
    log_pi = torch.log_softmax(q_values / alpha, dim=1)
    return alpha * torch.logsumexp(q_values / alpha, dim=1), -(log_pi.exp() * log_pi).sum(1)


def play(q_network, repeat_action_probability: float, hold_score: bool, games: int, alpha: float = 1.0):
    """Each game's points in order ('+' won, '-' lost), game i reset with seed SEED + i, greedy; and each game's
    mean soft value V(s) and mean policy entropy (at temperature alpha) before and after its first lost point."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(repeat_action_probability, hold_score) for _ in range(games)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    obs, _ = envs.reset(seed=[SEED + i for i in range(games)])
    points, done = [""] * games, [False] * games
    values, entropies = [([], []) for _ in range(games)], [([], []) for _ in range(games)]
    while not all(done):  # a game that ended goes on, unrecorded, until the last one ends
        with torch.no_grad():
            q_values = q_network(torch.as_tensor(obs))
        soft_values, entropy = soft_value_and_entropy(q_values, alpha)
        obs, rewards, terminated, truncated, _ = envs.step(q_values.argmax(1).numpy())
        for i in range(games):
            if not done[i]:
                values[i]["-" in points[i]].append(float(soft_values[i]))  # of the state acted in
                entropies[i]["-" in points[i]].append(float(entropy[i]))
                points[i] += "+" * int(rewards[i] > 0) + "-" * int(rewards[i] < 0)
                done[i] = bool(terminated[i] or truncated[i])
    envs.close()
    means = [[[float(np.mean(v)) if v else None for v in game] for game in kind] for kind in (values, entropies)]
    return points, *means


def won_after_first_loss(points: list[str]) -> tuple[int, int]:
    """Points won, and points played, after each game's first lost point."""
    after = [p[p.index("-") + 1 :] for p in points if "-" in p]
    return sum(a.count("+") for a in after), sum(len(a) for a in after)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", required=True, help="files as atari_sticky_eval.py takes them")
    parser.add_argument("--repeat-action-probability", type=float, nargs="+", default=[0.0, 0.25])
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument(
        "--held", action=argparse.BooleanOptionalAction, default=True, help="also play with the score held"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="record the soft value V(s) and the policy's entropy at this temperature (SQIL's Q networks)",
    )
    parser.add_argument("--out", default=None, help="a JSON lines file to append each result to")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.models:
        if not Path(path).is_file():
            sys.exit(f"pong_score_probe.py: {path} does not exist.")
    for path in args.models:
        q_network = load_q_network(path, 6, "PongNoFrameskip-v4")
        for p in args.repeat_action_probability:
            for hold_score in (False, True) if args.held else (False,):
                points, values, entropies = play(q_network, p, hold_score, args.games, args.alpha or 1.0)
                scores = [g.count("+") - g.count("-") for g in points]
                won, played = won_after_first_loss(points)
                print(
                    f"{path}: sticky {p}, opponent's score {'held at 0' if hold_score else 'as played'}: "
                    f"mean {np.mean(scores):.1f}, scores {scores}, points won after the first lost one "
                    f"{won} of {played}"
                    + (
                        f", per game mean soft value / entropy before and after it {values} / {entropies}"
                        if args.alpha
                        else ""
                    ),
                    flush=True,
                )
                if args.out:
                    with open(args.out, "a") as f:
                        result = dict(model=path, repeat_action_probability=p, hold_opponent_score=hold_score)
                        result |= dict(seed=SEED, scores=scores, points=points)
                        if args.alpha:
                            result |= dict(alpha=args.alpha, soft_value_before_after_first_loss=values)
                            result |= dict(entropy_before_after_first_loss=entropies)
                        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
