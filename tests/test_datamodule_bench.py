"""bench/bench_data.py --tiny runs end to end and prints both tables with numbers (no timing assertions)."""

import importlib.util
import re

from conftest import ROOT


def test_bench_data_tiny(capsys):
    spec = importlib.util.spec_from_file_location("bench_data", ROOT / "bench" / "bench_data.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--tiny", "--videos", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    prep = re.search(r"^\s+2\s+18\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)$", out, re.M)  # 2 clips × 9 frames
    assert prep and float(prep.group(2)) > 0, out
    rows = {name: float(ratio) for name, ratio in
            re.findall(r"^\s+(raw|precomputed) .*\s([\d.]+)×$", out, re.M)}
    assert rows.keys() == {"raw", "precomputed"} and rows["raw"] == 1.0, out
    assert rows["precomputed"] > 0
