"""Shared helpers: every script is run as a user would run it, in a subprocess with tiny flags."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_script(tmp_path):
    """Runs `python <script> <args>` from a scratch directory (so runs/, videos/ and models/ land
    there) and returns the CompletedProcess. `check=True` fails the test with the script's output."""

    def run(script: str, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SDL_VIDEODRIVER": "dummy"}
        result = subprocess.run(
            [sys.executable, str(ROOT / script), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{script} {' '.join(args)} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    return run
