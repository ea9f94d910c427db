"""The forked runner (forked_scripts.py) gives what a fresh `python script.py` gives: exit status, streams, cwd, argv."""

import os
import subprocess
import sys

import forked_scripts
import pytest

SCRIPT = """
import os, sys
print("out", os.getcwd(), sys.argv[1:], os.environ["PROBE"], __name__)
print("err", file=sys.stderr)
if sys.argv[1] == "message":
    sys.exit("a message")
if sys.argv[1] == "raise":
    raise ValueError("deep inside")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize("ending", ["0", "2", "message", "raise"])
def test_a_forked_run_is_a_fresh_interpreters_run(tmp_path, ending):
    script = tmp_path / "probe.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PROBE": "set"}
    fresh = subprocess.run(
        [sys.executable, str(script), ending], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    forked = forked_scripts.run(str(script), [ending], cwd=tmp_path, env=env, timeout=60)
    assert forked.returncode == fresh.returncode == {"0": 0, "2": 2}.get(ending, 1)
    assert forked.stdout == fresh.stdout == f"out {tmp_path} ['{ending}'] set __main__\n"
    if ending == "raise":  # the same last line; the forked traceback also shows runpy's frames
        assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "ValueError: deep inside"
        assert forked.stderr.startswith("err\nTraceback (most recent call last):")
    else:
        assert forked.stderr == fresh.stderr
