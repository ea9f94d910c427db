"""Runs a script as `python <script> <args>` would, in a process forked from a server that has already
imported torch, gymnasium, tyro and TensorBoard (multiprocessing's forkserver with those modules preloaded).

Importing torch, and the torch._dynamo that its optimisers import on first use, is most of the 7 s that a
run stopping at a bad flag takes on the project's 2-core CPU (0.2 s forked), and the suite starts a few
hundred runs: that was about half of its time. A forked run is still a process of its own, with its own globals, working
directory, environment, seeds, standard streams and exit status; only the import is shared. The server
never computes anything, so no thread pool exists when it forks.
"""

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback

FORKSERVER = multiprocessing.get_context("forkserver")
# pytest too: a child imports its parent's main module, here pytest's, before it runs (multiprocessing's rule).
FORKSERVER.set_forkserver_preload(
    ["torch", "torch._dynamo", "torch.utils.tensorboard", "gymnasium", "numpy", "tyro", "pytest"]
)


def exit_status(code) -> int:
    """The interpreter's rule for `sys.exit(code)`: None is 0, an integer is itself, anything else is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def child(script: str, args: list[str], cwd: str, env: dict, stdout: str, stderr: str) -> None:
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(file, fd)
        os.close(file)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(script)  # as `python script.py` puts the script's folder first
    try:
        runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as exit:
        status = exit_status(exit.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run(script: str, args: list[str], cwd: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as streams:
        stdout, stderr = os.path.join(streams, "stdout"), os.path.join(streams, "stderr")
        process = FORKSERVER.Process(target=child, args=(script, list(args), str(cwd), env, stdout, stderr))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired([script, *args], timeout)
        with open(stdout, errors="replace") as out, open(stderr, errors="replace") as err:
            return subprocess.CompletedProcess([script, *args], process.exitcode, out.read(), err.read())
