"""The DCVC-RT benchmark script must keep running (tiny settings)."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_tiny_runs(capsys):
    path = Path(__file__).resolve().parents[1] / "bench" / "bench_dcvc_rt.py"
    spec = importlib.util.spec_from_file_location("bench_dcvc_rt", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--tiny", "--devices", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "64x64" in out and "enc fps" in out
