"""Fixtures the test modules share: derivanim's command line run as a user runs it, and the tiny random Llama
(tests/tiny_model.py) that stands in for a real base model."""

import os
import subprocess
import sys

import pytest

from tiny_model import make_tiny_model  # pytest puts this folder (it is not a package) on sys.path for conftest.py


@pytest.fixture(scope="session")
def derivanim():
    """derivanim(*args, cwd=None, timeout=120): `python -m derivanim.cli ARGS` in a fresh process, finished.

    The terminal is narrow (COLUMNS=40): an error message must stay on one line however wide it is."""
    def run(*args: str, cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "40", "DERIVANIM_DEBUG": ""}
        return subprocess.run([sys.executable, "-m", "derivanim.cli", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd, env=env)

    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """The folder of the tiny random Llama, made once a session (seed 0: every copy would be the same)."""
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-llama")))
