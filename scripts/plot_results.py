"""Learning curves from the committed logs under results/: one PNG per experiment under docs/.

    python scripts/plot_results.py            # rewrites every docs/*.png this script owns
    python scripts/plot_results.py --out DIR  # writes them to DIR instead

Each curve is the mean over seeds of the periodic evaluations a script printed to its log, with a
band of one standard error, against environment steps. Runs of one row evaluate at the same
gradient (or env) steps; where their env step counts differ (LunarLander plays whole episodes), a
point sits at the seeds' mean env step count. Straight lines mark levels without a curve: the expert
and behavioural cloning (which trains on the demonstrations alone), at their final evaluations.
The CarRacing picture is eight frames of the committed video of one SQIL episode (docs/car_racing.md).
Nothing is trained here: no line of a figure comes from anything but a committed log or video.
"""

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS, DOCS = ROOT / "results", ROOT / "docs"


def read_curve(log: Path, pattern: str) -> dict[int, tuple[float, float]]:
    """{step: (env steps, value)} from every line of `log` matching `pattern`, whose groups are
    (step, env steps, value) or (env step, value). A resumed run prints a step again: the last wins."""
    curve = {}
    for groups in re.findall(pattern, log.read_text()):
        if len(groups) == 2:
            step, value = groups
            curve[int(step)] = (float(step), float(value))
        else:
            step, env_steps, value = groups
            curve[int(step)] = (float(env_steps), float(value))
    return curve


def mean_curve(curves: list[dict[int, tuple[float, float]]]):
    """Mean env steps, mean value and standard error at the steps that every seed reached."""
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    x = np.array([[c[s][0] for c in curves] for s in steps]).mean(axis=1)
    values = np.array([[c[s][1] for c in curves] for s in steps])
    stderr = values.std(axis=1, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros(len(steps))
    return x, values.mean(axis=1), stderr


def final_value(log: Path, pattern: str) -> float:
    return float(re.findall(pattern, log.read_text())[-1])


def plot_band(ax, logs: list[Path], pattern: str, label: str, color: str, style: str = "-") -> None:
    if not logs:
        return
    x, mean, stderr = mean_curve([read_curve(log, pattern) for log in logs])
    marker = "o" if len(x) < 3 else None  # a curve of one or two points still shows
    label = f"{label} ({len(logs)} seed{'s' if len(logs) > 1 else ''})"
    ax.plot(x, mean, color=color, linestyle=style, marker=marker, label=label)
    ax.fill_between(x, mean - stderr, mean + stderr, color=color, alpha=0.2)


def save(fig, out: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def level(ax, value: float, label: str, color: str, style: str = "--") -> None:
    ax.axhline(value, color=color, linestyle=style, linewidth=1, label=label)


# ---------------------------------------------------------------------------------------------
# LunarLander (paper Figure 4): rbc_lunar.py rows of the lunar sweep (scripts/lunar_table.py).
# ---------------------------------------------------------------------------------------------
LUNAR_EVAL = r"step (\d+): env steps (\d+), eval greedy return [-\d.]+ success ([\d.]+)"
LUNAR_ABLATIONS = ("SQIL-lambda_samp0", "SQIL-gamma0", "SQIL-piUnif")
LUNAR_FINAL = r"final greedy evaluation \(\w+ start\): return [-\d.]+, success ([\d.]+)"


def lunar(
    out_dir: Path, steps: int = 100_000, name: str = "lunar_lander.png", folder: Path = RESULTS / "lunar_fig4"
) -> Path | None:
    """The runs of one budget (gradient steps): a panel per demonstration file and start state they cover."""
    runs = [p.parent.name.split("__") for p in folder.glob(f"*__*__*__{steps}__*/results.json")]
    demos = sorted({run[1] for run in runs if run[0] == "BC"})  # the files with the baseline to compare with
    starts = [start for start in ("shifted", "demo") if any(run[2] == start for run in runs)]
    if not demos:
        return None
    fig, axes = plt.subplots(len(demos), len(starts), figsize=(5.5 * len(starts), 3.6 * len(demos)), squeeze=False)
    for row_axes, demo in zip(axes, demos):
        for ax, start in zip(row_axes, starts):
            finished = {  # row -> logs of its finished runs
                row: sorted(
                    p.parent / "log.txt" for p in folder.glob(f"{row}__{demo}__{start}__{steps}__*/results.json")
                )
                for row in ("SQIL", "RBC", "SQIL-paper-values", "GAIL-DQL-B", "GAIL-DQL-U", "BC") + LUNAR_ABLATIONS
            }
            for row, color in (
                ("SQIL", "C0"), ("RBC", "C2"), ("SQIL-paper-values", "C3"), ("GAIL-DQL-B", "C4"), ("GAIL-DQL-U", "C5")
            ):  # fmt: skip
                plot_band(ax, finished[row], LUNAR_EVAL, row, color)
            for row, color in zip(LUNAR_ABLATIONS, ("C6", "C7", "C8")):  # dashed: the paper's three ablations of SQIL
                plot_band(ax, finished[row], LUNAR_EVAL, row, color, style="--")
            if bc := [final_value(log, LUNAR_FINAL) for log in finished["BC"]]:
                level(ax, float(np.mean(bc)), f"BC, final ({len(bc)} seeds)", "C1")
            expert = RESULTS / "lunar_expert" / demo / "success.txt"  # the expert's own success from each start
            if expert.exists():
                level(ax, final_value(expert, rf"{start} start: success ([\d.]+)"), "expert", "k", ":")
            ax.set_title(f"{demo} demonstrations, {start} start, {steps // 1000}k gradient steps")
            ax.set_xlabel("environment steps")
            ax.set_ylabel("greedy landing success (10 episodes)")
            ax.set_ylim(-0.05, 1.05)
            ax.legend(fontsize=8, loc="lower right")
    return save(fig, out_dir / name)


def lunar_unaveraged(out_dir: Path) -> Path | None:  # the defaults before 2026-12-03: no --policy-averaging
    return lunar(out_dir, 100_000, "lunar_lander_unaveraged.png", RESULTS / "lunar_fig4_unaveraged")


def lunar_longer(out_dir: Path) -> Path | None:
    return lunar(out_dir, 200_000, "lunar_lander_200k.png", RESULTS / "lunar_fig4_unaveraged")


# ---------------------------------------------------------------------------------------------
# MuJoCo (paper Figure 3): sqil_sac_continuous.py with its defaults, BC from bc.py.
# ---------------------------------------------------------------------------------------------
MUJOCO_EVAL = r"step (\d+): deterministic evaluation return ([-\d.]+)"
MUJOCO_BC_FINAL = r"final deterministic evaluation \(100 episodes\): return ([-\d.]+)"
MUJOCO_ROWS = {  # env -> (SQIL row with today's defaults, BC row on the same demonstrations, expert return)
    "HalfCheetah-v5": ("SQIL-alpha0.2", "BC", 6965.1),
    "Humanoid-v5": ("SQIL-alpha0.2-stochdemos-lambda0.25", "BC-stochdemos", 5107.3),
}


def mujoco(out_dir: Path) -> Path:
    folder = RESULTS / "mujoco"
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), squeeze=False)
    for row_axes, (env, (sqil_row, bc_row, expert)) in zip(axes, MUJOCO_ROWS.items()):
        for ax, demos in zip(row_axes, (25, 5, 1)):
            plot_band(ax, sorted(folder.glob(f"{sqil_row}__{env}__{demos}demos__*/log.txt")), MUJOCO_EVAL, "SQIL", "C0")
            bc = [
                final_value(log, MUJOCO_BC_FINAL)
                for log in sorted(folder.glob(f"{bc_row}__{env}__{demos}demos__*/log.txt"))
            ]
            if bc:
                level(ax, float(np.mean(bc)), f"BC, final ({len(bc)} seeds)", "C1")
            level(ax, expert, "expert", "k", ":")
            ax.set_title(f"{env}, {demos} demonstration{'s' if demos > 1 else ''}")
            ax.set_xlabel("environment steps")
            ax.set_ylabel("return (deterministic, 10 episodes)")
            ax.legend(fontsize=8, loc="upper left")
    return save(fig, out_dir / "mujoco.png")


# ---------------------------------------------------------------------------------------------
# One-seed runs: CarRacing's longer SQIL run (paper Figure 1) and the Space Invaders runs (Figure 2).
# ---------------------------------------------------------------------------------------------
def single_runs(out_dir: Path) -> Path:
    fig, (car, atari) = plt.subplots(1, 2, figsize=(11, 3.8))
    log = RESULTS / "car_racing" / "SQIL-long__rotated__10000__1" / "log.txt"
    plot_band(car, [log], r"step (\d+): eval greedy return ([-\d.]+) \(rotated start\)", "SQIL, greedy", "C0")
    bc = [
        float(json.loads(p.read_text())["final_deterministic_return"])
        for p in (RESULTS / "car_racing").glob("BC__rotated__*/results.json")
    ]
    expert = [
        float(json.loads(p.read_text())["final_return"])
        for p in (RESULTS / "car_racing").glob("Expert__rotated__*/results.json")
    ]
    level(car, float(np.mean(bc)), f"BC, final ({len(bc)} seeds, 2,500 steps)", "C1")
    level(car, float(np.mean(expert)), f"expert ({len(expert)} seeds)", "k", ":")
    car.set_title("CarRacing-v3, rotated start (5 episodes per point)")
    car.set_xlabel("gradient steps (one rollout per 50)")
    car.set_ylabel("return")
    for row, color in (("SQIL", "C0"), ("GAIL-DQL-B", "C3"), ("GAIL-DQL-U", "C2")):
        for log in sorted((RESULTS / "atari").glob(f"{row}__SpaceInvadersNoFrameskip-v4__*/log.txt")):
            pattern = ATARI_SQIL_EVAL if row == "SQIL" else ATARI_GAIL_EVAL
            plot_band(atari, [log], pattern, row, color)
    bc_log = RESULTS / "atari" / "BC__SpaceInvadersNoFrameskip-v4__1" / "log.txt"
    level(
        atari,
        final_value(bc_log, r"final deterministic evaluation \(10 episodes\): return ([-\d.]+)"),
        "BC, final",
        "C1",
    )
    atari.set_title("SpaceInvaders (scripted demonstrations, 414)")
    atari.set_xlabel("environment steps")
    atari.set_ylabel("game score (greedy)")
    for ax in (car, atari):
        ax.legend(fontsize=8, loc="lower right")
    return save(fig, out_dir / "single_runs.png")


ATARI_GAIL_EVAL = r"step (\d+): env steps (\d+), eval greedy return ([-\d.]+)"  # seeds meet at gradient steps
ATARI_SQIL_EVAL = r"global_step=(\d+), greedy evaluation return ([-\d.]+)"


# ---------------------------------------------------------------------------------------------
# Atari (paper Figure 2): the rows of the atari sweep (scripts/atari_table.py) on the trained experts' demos.
# ---------------------------------------------------------------------------------------------
def training_games(log: Path) -> tuple[np.ndarray, np.ndarray]:
    """(env steps at its end, score) of every training game a sqil_dqn_atari.py or gail_dqn.py log printed.
    Games that a stopped run played after its last checkpoint are dropped at the `resumed ... at env step N`
    (`... at gradient step N`) line: the resumed run played those steps again."""
    games = []  # (env steps, score, gradient step of gail_dqn.py's games)
    for line in log.read_text().splitlines():
        if resumed := re.search(r"resumed .* at env step (\d+)", line):
            games = [game for game in games if game[0] <= int(resumed.group(1))]
        elif resumed := re.search(r"resumed .* at gradient step (\d+)", line):
            games = [game for game in games if game[2] < int(resumed.group(1))]
        elif game := re.search(r"global_step=(\d+), episodic_return=(-?[\d.]+)", line):
            games.append((int(game.group(1)), float(game.group(2)), None))
        elif game := re.search(r"gradient step (\d+): env steps (\d+), episodic_return=(-?[\d.]+)", line):
            games.append((int(game.group(2)), float(game.group(3)), int(game.group(1))))
    steps, scores = np.array([game[:2] for game in games], dtype=float).reshape(-1, 2).T
    return steps, scores


def plot_training_games(ax, logs: list[Path], label: str, color: str, window: int = 50) -> None:
    """The mean over seeds of each run's rolling mean of its last `window` training games (the paper's
    Figure 2 smooths over 100), on a grid of env steps that every seed reached, and each seed's own line."""
    rolling = []
    for log in logs:
        steps, scores = training_games(log)
        if len(scores) >= window:
            rolling.append((steps[window - 1 :], np.convolve(scores, np.ones(window) / window, mode="valid")))
    if not rolling:
        return
    for steps, mean in rolling:  # each seed thin, so a seed that ran further still shows past the common range
        ax.plot(steps, mean, color=color, linewidth=0.6, alpha=0.5)
    grid = np.arange(max(s[0] for s, _ in rolling), min(s[-1] for s, _ in rolling) + 1, 5_000)
    values = np.array([np.interp(grid, steps, mean) for steps, mean in rolling])
    stderr = values.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros(len(grid))
    ax.plot(grid, values.mean(axis=0), color=color, label=f"{label} ({len(values)} seed{'s' * (len(values) > 1)})")
    ax.fill_between(grid, values.mean(axis=0) - stderr, values.mean(axis=0) + stderr, color=color, alpha=0.2)


def atari_fig2(out_dir: Path, game: str = "PongNoFrameskip-v4") -> Path | None:
    folder = RESULTS / "atari_fig2"
    if not list(folder.glob(f"*__{game}__*/log.txt")):
        return None
    fig, (greedy, training) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for row, color in (("SQIL", "C0"), ("SQIL-alpha0.1", "C4"), ("GAIL-DQL-B", "C3"), ("GAIL-DQL-U", "C2")):
        pattern = ATARI_SQIL_EVAL if row.startswith("SQIL") else ATARI_GAIL_EVAL
        logs = sorted(folder.glob(f"{row}__{game}__*/log.txt"))
        unfinished = sum(not (log.parent / "results.json").exists() for log in logs)
        label = row + (f"; {unfinished} run(s) unfinished" if unfinished else "")
        evaluated = [log for log in logs if read_curve(log, pattern)]
        plot_band(greedy, evaluated, pattern, label, color)
        for log in evaluated if len(evaluated) > 1 else []:  # each seed thin, as in the training games
            x, value = np.array(sorted(read_curve(log, pattern).values())).T
            greedy.plot(x, value, color=color, linewidth=0.6, alpha=0.5)
        plot_training_games(training, logs, label, color)
    bc = [json.loads(p.read_text())["final_deterministic_return"] for p in folder.glob(f"BC__{game}__*/results.json")]
    with np.load(ROOT / "demos" / f"{game}.npz") as demos:
        expert = float(np.mean(demos["episode_returns"]))
    for ax in (greedy, training):
        if bc:
            seeds = f"{len(bc)} seed{'s' if len(bc) > 1 else ''}"
            level(ax, float(np.mean(bc)), f"BC, final greedy ({seeds}, no env steps)", "C1")
        level(ax, expert, "expert (its recorded games)", "k", ":")
        ax.set_xlabel("environment steps")
        ax.legend(fontsize=8, loc="center right")
    name = game.removesuffix("NoFrameskip-v4")
    greedy.set_title(f"{name}: greedy evaluations, 10 games each")
    greedy.set_ylabel("game score")
    training.set_title(f"{name}: training games (Boltzmann), rolling mean of 50")
    return save(fig, out_dir / f"atari_{game.removesuffix('NoFrameskip-v4').lower()}.png")


def atari_breakout(out_dir: Path) -> Path | None:
    return atari_fig2(out_dir, "BreakoutNoFrameskip-v4")


# ---------------------------------------------------------------------------------------------
# CarRacing (paper Figure 1): frames of the committed video of SQIL's rotated-start recovery.
# ---------------------------------------------------------------------------------------------
RECOVERY_STEPS = (40, 80, 120, 150, 180, 220, 400, 995)  # agent steps shown (the video runs at 50 frames/s)


def car_racing(out_dir: Path) -> Path:
    from moviepy import VideoFileClip

    clip = VideoFileClip(str(DOCS / "car_racing_rotated_recovery.mp4"))
    fig, axes = plt.subplots(2, 4, figsize=(12, 4))
    for ax, step in zip(axes.flat, RECOVERY_STEPS):
        ax.imshow(clip.get_frame(min(step / clip.fps, clip.duration - 1 / clip.fps)))
        ax.text(8, 30, f"step {step}", fontsize=9, color="black")
        ax.axis("off")
    clip.close()
    fig.subplots_adjust(left=0, right=1, top=1, bottom=0, wspace=0.01, hspace=0.02)
    out = out_dir / "car_racing_rotated_recovery.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the PNG files")
    out_dir = parser.parse_args().out
    out_dir.mkdir(parents=True, exist_ok=True)
    for make in (lunar, lunar_unaveraged, lunar_longer, mujoco, single_runs, atari_fig2, atari_breakout, car_racing):
        if (out := make(out_dir)) is not None:
            print(f"wrote {out}")
