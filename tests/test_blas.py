"""`cxr serve` holds numpy's BLAS to one thread (app/core/blas.py); the operator's variables win."""

import json
import os
import subprocess
import sys

from app.core.blas import OPERATOR_VARIABLES

PROBE = """
import json, sys
import numpy  # its BLAS loaded, as in the server
from app.core.blas import limit_blas_threads
from threadpoolctl import threadpool_info
set_to = limit_blas_threads(int(sys.argv[1]))
print(json.dumps({"set": set_to, "threads": [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]}))
"""


def _probe(threads: int, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in OPERATOR_VARIABLES}
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads)], env=clean | env, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_blas_is_held_to_the_setting():
    probe = _probe(1)
    assert probe["set"] == 1
    assert probe["threads"] and set(probe["threads"]) == {1}


def test_zero_and_the_operators_variable_leave_it_alone():
    assert _probe(0)["set"] is None
    probe = _probe(1, OPENBLAS_NUM_THREADS="2")
    assert probe["set"] is None and set(probe["threads"]) == {2}
