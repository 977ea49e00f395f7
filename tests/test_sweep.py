import csv

import pytest
import yaml

from disco_train.config import ConfigError
from disco_train.config.recipe import resolve
from disco_train.commands.sweep import COMMAND, final_metrics, grid, parse, run_sweep


def test_parse_and_grid():
    cfg, _ = COMMAND.parse(["recipe=disco_lora_debug", "sweep.condition.ratio=1:1,1:3", "sweep.lora.rank=4,8",
                            "trainer.max_steps=3", "sweep_out=/tmp/s"])
    common, axes = parse(cfg.overrides)
    assert common == ["recipe=disco_lora_debug", "trainer.max_steps=3"] and cfg.sweep_out == "/tmp/s"
    points = grid(axes)
    assert len(points) == 4 and {"condition.ratio": "1:3", "lora.rank": "8"} in points
    with pytest.raises(ConfigError, match="at least one axis"):
        parse(["recipe=disco_lora_debug"])


def test_invalid_point_fails_before_any_run(tmp_path):
    with pytest.raises(ConfigError, match="lora.rank"):
        run_sweep(["recipe=disco_lora_debug", "sweep.lora.rank=4,zero", f"sweep_out={tmp_path}"])


def test_wandb_sweep_file_matches_the_recipe_grammar():
    spec = yaml.safe_load(open("sweeps/interleave_ratio.yaml"))
    recipe = next(a for a in spec["command"] if str(a).startswith("recipe="))
    fixed = [a for a in spec["command"] if isinstance(a, str) and "=" in a and not a.startswith("recipe=")]
    for key, values in spec["parameters"].items():
        for value in values["values"]:
            cfg, _, _ = resolve([recipe, *fixed, f"{key}={value}"])
            assert cfg.condition.ratio == value


def test_final_metrics_reads_last_values(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "metrics.csv").write_text("epoch,step,train/loss,val/psnr\n0,4,1.5,\n0,9,1.2,\n0,9,,21.5\n")
    assert final_metrics(tmp_path) == {"train/loss": "1.2", "val/psnr": "21.5"}
    # The steps the run reached, as it printed them ("steps 10"), not the last logged step index (9).
    (tmp_path / "summary.json").write_text('{"steps": 10, "first_loss": 1.5, "last_loss": 1.2}')
    assert final_metrics(tmp_path) == {"steps": "10", "train/loss": "1.2", "val/psnr": "21.5"}


@pytest.mark.slow
def test_sweep_runs_each_value_and_writes_table(demo_shards, tmp_path):
    path = run_sweep(["recipe=disco_lora_debug", "sweep.lora.rank=2,4", "trainer.max_steps=5", "data.num_workers=0",
                      f"data.train_shards={demo_shards}/train-*.tar", f"sweep_out={tmp_path}"])
    rows = list(csv.DictReader(open(path)))
    assert [r["lora.rank"] for r in rows] == ["2", "4"]
    assert all(r["status"] == "ok" and float(r["train/loss"]) > 0 and r["steps"] == "5" for r in rows)


def test_sweep_folder_follows_output_dir_and_the_callers_folder(tmp_path, monkeypatch):
    """output_dir= is honoured and a relative folder is the caller's, not the repository's (each point is a
    train.py process started in the repository)."""
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("subprocess.run", lambda args, cwd: seen.append(args) or type("R", (), {"returncode": 0}))
    path = run_sweep(["recipe=disco_lora_debug", "sweep.lora.rank=2", "output_dir=mine"])
    assert path == tmp_path / "mine" / "sweeps" / "disco_lora_debug-rank" / "results.csv"
    assert f"output_dir={tmp_path / 'mine' / 'sweeps' / 'disco_lora_debug-rank'}" in seen[0]


def test_print_config_prints_every_point_and_runs_nothing(tmp_path, capsys):
    """print_config=true shows each point's resolved config; no training starts, no results.csv is written."""
    out = run_sweep(["recipe=disco_lora_debug", "sweep.condition.ratio=1:1,1:3", "print_config=true",
                     f"sweep_out={tmp_path}"], python="/bin/false")  # a started run would leave a row and a csv
    shown = capsys.readouterr().out
    assert out is None and not list(tmp_path.iterdir())
    assert shown.count("# sweep point condition.ratio=") == 2 and shown.count("\ncondition:") == 2
