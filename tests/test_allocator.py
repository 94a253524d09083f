"""`cxr serve`'s glibc allocator settings: applied, switchable off, and the operator's variables win."""

import sys

import pytest

from app.core.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD, tune_malloc

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")


@glibc
def test_settings_are_applied(monkeypatch):
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    assert tune_malloc(2) == {"MALLOC_ARENA_MAX": 2, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD,
                              "MALLOC_TRIM_THRESHOLD_": TRIM_THRESHOLD}


@glibc
def test_the_operators_variables_win_and_zero_turns_it_off(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert "MALLOC_ARENA_MAX" not in tune_malloc(2)
    assert tune_malloc(0) == {}


def _wide_graph() -> bytes:
    """(N, 1, 256, 256) -> (N, 2) through a 32-channel 3x3 convolution: 67 MB of intermediates at N = 8,
    over the mmap threshold the service sets, so a run that took them from malloc would map them afresh."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(32, 1, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(2, 32, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["h"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Conv", ["r", "w2"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 256, 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])
    graph = helper.make_graph(nodes, "wide", [x], [y], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@glibc
def test_onnx_sessions_keep_their_working_memory_between_batches():
    """After a few batches of mixed sizes, a run faults in (almost) no fresh pages: the session's memory is
    reused, not mapped and released per batch (which swung the server's RSS by 80 MB and cost every
    full batch its page faults: 16,000+ faults per batch here)."""
    import resource

    import numpy as np

    from models.onnx_serving import cpu_session

    tune_malloc(2)  # as `cxr serve`; mallopt is process-wide and idempotent
    session = cpu_session(_wide_graph(), 2)
    x = np.random.default_rng(1).random((8, 1, 256, 256), dtype=np.float32)
    for n in (8, 3, 8, 1, 5, 8):
        session.run(None, {"x": x[:n]})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for n in (8, 2, 8, 6, 8):
        assert session.run(None, {"x": x[:n]})[0].shape == (n, 2)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 2_000, f"{faults} page faults in 5 batches"
