"""The training worker yields the CPU: its nice value and, where the kernel groups sessions, its group's."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="kernel without autogroup scheduling")
def test_a_new_session_gets_the_workers_nice_for_its_scheduling_group():
    code = ("import os; from app.training.worker import yield_cpu; yield_cpu(19); "
            "print(os.getpriority(os.PRIO_PROCESS, 0)); print(open('/proc/self/autogroup').read().strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                         start_new_session=True)  # as the runner starts the worker
    assert out.returncode == 0, out.stderr
    nice, group = out.stdout.split("\n")[:2]
    assert nice == "19"
    assert group.endswith("nice 19"), group
