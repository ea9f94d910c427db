"""The docs: every relative link in README.md and docs/ points at a file that exists, the plot
script redraws its figures from the committed logs, and --help shows real defaults."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "experts" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]


def test_every_relative_link_points_at_a_file():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "#")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
    assert len(PAGES) > 5


def test_no_page_refers_outside_the_repository():
    for page in PAGES:
        assert "/".join(["..", "shared"]) not in page.read_text(), page  # the project's private folder


def test_plot_script_redraws_every_figure_from_the_logs(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plot_results.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    made = sorted(p.name for p in tmp_path.glob("*.png"))
    committed = sorted(p.name for p in (ROOT / "docs").glob("*.png"))
    assert made == committed and made  # every figure the docs show is one the script makes
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_training_games_drop_what_a_stopped_run_played_after_its_checkpoint(tmp_path):
    """A run stopped at env step 260 after its checkpoint at 200 logged a game at 250 that the resumed
    run played again: the curve keeps the resumed run's game, never both."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from plot_results import training_games

    log = tmp_path / "log.txt"
    log.write_text(
        "global_step=120, episodic_return=-21\n"
        "env step 200: checkpoint saved to checkpoints/x.pt\n"
        "global_step=250, episodic_return=-20\n"
        "resumed x at env step 200 from checkpoints/x.pt\n"
        "global_step=240, episodic_return=-5\n"
        "global_step=300, episodic_return=21\n"
    )
    steps, scores = training_games(log)
    assert steps.tolist() == [120, 240, 300] and scores.tolist() == [-21, -5, 21]
    # gail_dqn.py: a game at every k = 250 gradient steps; checkpoint at 500, stopped after its game at 500
    log.write_text(
        "gradient step 250: env steps 900, episodic_return=-21\n"
        "gradient step 500: env steps 1800, episodic_return=-20\n"
        "resumed x at gradient step 500 from checkpoints/x.pt\n"
        "gradient step 500: env steps 1790, episodic_return=-19\n"
    )
    steps, scores = training_games(log)
    assert steps.tolist() == [900, 1790] and scores.tolist() == [-21, -19]


def test_help_shows_the_defaults_that_depend_on_the_environment(run_script):
    """Flags whose default depends on --env-id show their values per environment in --help, not None."""
    gail = run_script("gail_dqn.py", "--help").stdout
    for shown in (
        "LunarLander 200, CarRacing 50, Atari 250",
        "LunarLander 1.0, CarRacing 1.0, Atari 0.1",
        "LunarLander none, CarRacing 10.0, Atari 10.0",
        "LunarLander 100, CarRacing 100, Atari 10",
    ):
        assert shown in " ".join(gail.replace("│", " ").split()), shown
    sac = " ".join(run_script("sqil_sac_continuous.py", "--help").stdout.replace("│", " ").split())
    assert "(default: 10 on HalfCheetah, 5 on Humanoid, else 1)" in sac
    assert "(default: 0.25 on Humanoid, else 1)" in sac and "(default: -dim(A))" in sac
    for flag in ("--k", "--learning-rate", "--r-demo", "--lambda-samp", "--target-entropy"):
        assert f"{flag} {{None}}" not in gail + sac, flag
