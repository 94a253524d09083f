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


def test_onnx_runtime_keeps_its_arena_unless_the_allocator_is_tuned(tiny_weights, tmp_path, monkeypatch):
    from app.core import allocator
    from app.inference.catalog import ModelRegistry
    from models.catalog import ModelCatalog

    registry = ModelRegistry(ModelCatalog(tiny_weights), "cpu", backend="onnx", onnx_cache=tmp_path)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.setattr(allocator, "_applied", {})
    assert registry.load(None).runner.session.get_session_options().enable_cpu_mem_arena
    monkeypatch.setattr(allocator, "_applied", {"MALLOC_MMAP_THRESHOLD_": allocator.MMAP_THRESHOLD})
    assert not registry.load(None).runner.session.get_session_options().enable_cpu_mem_arena
