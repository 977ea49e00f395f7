"""workers=N and part=K/N: the same samples, byte for byte, as one process; parts written into one folder merge to
exactly the inputs (no duplicate, no gap), also after a part is SIGKILLed and re-run; partitions from the
environment; a merge with a part missing fails naming it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import webdataset as wds

from conftest import ROOT, make_video, prepare_config
from datamodules import sink
from datamodules.inputs import list_videos, part_of
from datamodules.parts import PrepareError, merge, resolve_device, resolve_part
from datamodules.prepare import main, run
from datamodules.sink import Part
from disco_train.config import ConfigError, DataConfig

NAMES = ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4", "sub/v0.mp4", "v0.mkv"]  # stems repeat on purpose
# libx264 in PyAV's wheel codes frames below ~128 px differently from run to run (measured: up to 28 streams in
# 80 encodes of one 64×64 clip, in one process; one stream at 128 px and above), so the tests that compare bytes
# code 128×128 clips at ds=1; the others use 32×32.
EXACT = dict(height=128, width=128, ds=1)


def _inputs(root, names=NAMES, size=32):
    for i, name in enumerate(names):
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(root / "in" / name, 18 if i % 3 == 0 else 9, size, size, seed=i)  # 1 or 2 clips


def _cfg(root, out="out", **kw):
    base = dict(input=str(root / "in"), output=str(root / out), frames=9, height=32, width=32,
                max_clips_per_video=0, ds=2, dt=4, codec="x264", crf=30, caption_default="a clip", shard_size=2)
    base.update(kw)
    return prepare_config(**base)


def _samples(out) -> dict[str, dict]:
    """{key: {field: bytes}} of every shard in the folder (train-*.tar, as the DataModule globs them)."""
    found = {}
    for shard in sorted(out.glob("train-*.tar")):
        for s in wds.WebDataset(str(shard), shardshuffle=False):
            assert s["__key__"] not in found, f"{s['__key__']} twice"
            found[s["__key__"]] = {k: bytes(v) for k, v in s.items() if not k.startswith("__")}
    return found


def _failures(out, name=sink.FAILURES):
    return sorted((r["video"], r["reason"]) for r in sink.read_jsonl(out / name))


def test_two_workers_make_the_bytes_of_one_process(tmp_path):
    _inputs(tmp_path, size=128)
    (tmp_path / "in" / "empty.mp4").write_bytes(b"")
    make_video(tmp_path / "in" / "short.mp4", 5, 32, 32)
    one = run(_cfg(tmp_path, "one", **EXACT), log=lambda *_: None)
    two = run(_cfg(tmp_path, "two", workers=2, **EXACT), log=lambda *_: None)
    assert (two["workers"], one["workers"]) == (2, 1)
    assert {k: one[k] for k in ("done", "failed", "samples")} == {k: two[k] for k in ("done", "failed", "samples")}
    a, b = _samples(tmp_path / "one"), _samples(tmp_path / "two")
    assert len(a) == 10 and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)  # every field of every sample, byte for byte
    assert _failures(tmp_path / "one") == _failures(tmp_path / "two") and len(_failures(tmp_path / "two")) == 2
    index = sink.read_jsonl(tmp_path / "two" / sink.INDEX)
    assert sorted(r["video"] for r in index) == sorted(r["video"] for r in sink.read_jsonl(tmp_path / "one" /
                                                                                          sink.INDEX))
    # resume with workers: nothing is redone
    again = run(_cfg(tmp_path, "two", workers=2, **EXACT), log=lambda *_: None)
    assert (again["done"], again["skipped"]) == (0, 9)


def test_parts_merge_to_exactly_one_full_run(tmp_path):
    _inputs(tmp_path, size=128)
    run(_cfg(tmp_path, "full", **EXACT), log=lambda *_: None)
    full = _samples(tmp_path / "full")
    logs = []
    for k in range(3):
        run(_cfg(tmp_path, part=f"{k}/3", **EXACT), log=logs.append)
    out = tmp_path / "out"
    assert "merged 3 part(s): 7 videos" in logs[-1]
    parts = _samples(out)
    assert parts.keys() == full.keys() and all(parts[k] == full[k] for k in full)
    names = sorted(p.name for p in out.glob("train-*.tar"))
    assert all(n.startswith(("train-p000-", "train-p001-", "train-p002-")) for n in names)
    merged = sink.read_jsonl(out / sink.INDEX)  # the combined index: one row per input, naming its shard
    assert sorted(r["video"] for r in merged) == sorted(str(tmp_path / "in" / n) for n in NAMES)
    assert {r["shard"] for r in merged} == set(names)
    for k in range(3):  # each part holds exactly the videos whose name hashes to it
        rows = sink.read_jsonl(out / Part(k, 3).index_file)
        assert all(part_of(r["video"].split("/in/")[1], 3) == k for r in rows)
        assert json.loads((out / Part(k, 3).done_file).read_text())["part"] == f"{k}/3"
    # the DataModule reads the parts' shards with the usual glob
    from datamodules.shards import ShardDataModule

    module = ShardDataModule(DataConfig(train_shards=f"{out}/train-*.tar", frames=9, height=128, width=128,
                                        batch_size=1, num_workers=0, shuffle_buffer=1))
    assert sorted(k for batch in module.train_dataloader() for k in batch["key"]) == sorted(full)


def test_merge_names_the_missing_part(tmp_path, capsys):
    _inputs(tmp_path)
    logs = []
    for k in (0, 2):
        run(_cfg(tmp_path, part=f"{k}/3"), log=logs.append)
    assert any("waiting for part(s) 1/3" in line for line in logs)
    argv = [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "merge=true"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "part(s) 1/3" in err and "done-p001.json" in err and "part=1/3" in err
    assert not (tmp_path / "out" / sink.INDEX).exists()
    run(_cfg(tmp_path, part="1/3"), log=lambda *_: None)  # the missing part merges on its own
    assert len(sink.read_jsonl(tmp_path / "out" / sink.INDEX)) == len(NAMES)
    assert main(argv) == 0
    # a different number of parts into the same folder is refused, naming N
    with pytest.raises(ConfigError, match="prepared in 3 part"):
        run(_cfg(tmp_path, part="0/2"), log=lambda *_: None)


def test_merge_detects_a_lost_input(tmp_path, capsys):
    _inputs(tmp_path)
    for k in range(2):
        run(_cfg(tmp_path, part=f"{k}/2"), log=lambda *_: None)
    make_video(tmp_path / "in" / "late.mp4", 9, 32, 32)  # listed now, prepared by no part
    assert main([f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "merge=true"]) == 2
    owner = part_of("late.mp4", 2)
    assert f"in no part's index or failures (first: {tmp_path / 'in' / 'late.mp4'}); re-run part(s) {owner}/2" in \
        capsys.readouterr().err


def test_partition_from_the_environment():
    assert resolve_part("", {}) == (Part(0, 1), "the whole input")
    assert resolve_part("", {"RANK": "3", "WORLD_SIZE": "8"})[0] == Part(3, 8)
    array = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "6"}
    assert resolve_part("", array)[0] == Part(4, 6)
    # an array of torchrun jobs: array task × ranks + rank
    assert resolve_part("", {**array, "RANK": "1", "WORLD_SIZE": "2"})[0] == Part(9, 12)
    # srun tasks count only inside a step (a batch script sees SLURM_NTASKS but is one process)
    assert resolve_part("", {"SLURM_PROCID": "2", "SLURM_NTASKS": "4"})[0] == Part(0, 1)
    assert resolve_part("", {"SLURM_PROCID": "2", "SLURM_NTASKS": "4", "SLURM_STEP_ID": "0"})[0] == Part(2, 4)
    # torchrun inside srun: RANK wins over SLURM_PROCID
    assert resolve_part("", {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0", "RANK": "5",
                             "WORLD_SIZE": "16"})[0] == Part(5, 16)
    assert resolve_part("1/3", {"RANK": "3", "WORLD_SIZE": "8"}) == (Part(1, 3), "part=")  # explicit wins
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_ID=7 of SLURM_ARRAY_TASK_COUNT=6"):
        resolve_part("", {**array, "SLURM_ARRAY_TASK_ID": "7"})
    with pytest.raises(ConfigError, match="RANK='x'"):
        resolve_part("", {"RANK": "x", "WORLD_SIZE": "2"})
    assert resolve_device("cuda", {"LOCAL_RANK": "3"}) == "cuda:3"
    assert resolve_device("cuda", {"SLURM_LOCALID": "2", "CUDA_VISIBLE_DEVICES": "5"}) == "cuda:0"
    assert resolve_device("cuda:1", {"LOCAL_RANK": "3"}) == "cuda:1" and resolve_device("cpu", {}) == "cpu"


def test_environment_part_end_to_end(tmp_path, monkeypatch):
    _inputs(tmp_path)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    logs = []
    counts = run(_cfg(tmp_path), log=logs.append)
    mine = [n for n in NAMES if part_of(n, 2) == 1]
    assert counts["done"] == len(mine) and "part 1/2 (RANK/WORLD_SIZE 1/2)" in logs[-2]
    assert (tmp_path / "out" / "index-p001.jsonl").is_file() and not (tmp_path / "out" / "index-p000.jsonl").exists()


def test_partition_is_stable_and_complete():
    names = [f"d{i // 10}/clip{i}.mp4" for i in range(300)]
    parts = [[n for n in names if part_of(n, 4) == k] for k in range(4)]
    assert sorted(sum(parts, [])) == sorted(names) and all(50 < len(p) < 100 for p in parts)
    assert [part_of(n, 4) for n in names[:50]] == [part_of(n, 4) for n in names[:50] + ["new.mp4"]][:50]


SLOW = ("import time\nfrom datamodules import pipeline\norig = pipeline.Pipeline.samples\n"
        "pipeline.Pipeline.samples = lambda self, v: (time.sleep(0.3), orig(self, v))[1]\n")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_three_processes_one_killed_and_rerun(tmp_path):
    names = [f"v{i:02d}.mp4" for i in range(15)]
    _inputs(tmp_path, names)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW)  # every process of these runs, workers too, takes 0.3 s a video
    env = {**os.environ, "PYTHONPATH": f"{hook}:{ROOT}"}
    cfg = _cfg(tmp_path, shard_size=1)
    argv = [f"{k}={getattr(cfg, k)}" for k in ("input", "output", "frames", "height", "width", "caption_default",
                                               "shard_size")] + [f"send.{k}={getattr(cfg.send, k)}" for k in
                                                                 ("ds", "dt", "codec", "crf")]
    out, victim = tmp_path / "out", max(range(3), key=lambda k: sum(part_of(n, 3) == k for n in names))
    procs = {k: subprocess.Popen([sys.executable, "-m", "disco_train", "prepare", *argv, f"part={k}/3",
                                  f"workers={2 if k == victim else 1}"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for k in range(3)}
    deadline = time.time() + 90
    while not list(out.glob(f"train{Part(victim, 3).tag}-000001.tar")) and time.time() < deadline:
        time.sleep(0.02)
    workers = _children(procs[victim].pid)
    procs[victim].send_signal(signal.SIGKILL)
    for k, proc in procs.items():
        proc.wait(timeout=120)
        assert proc.returncode == (-signal.SIGKILL if k == victim else 0), proc.stderr.read().decode()[-2000:]
    assert len(workers) >= 2
    deadline = time.time() + 10
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{w}").exists() for w in workers), "orphaned workers"
    assert not (out / Part(victim, 3).done_file).exists() and not (out / sink.INDEX).exists()
    rerun = subprocess.run([sys.executable, "-m", "disco_train", "prepare", *argv, f"part={victim}/3"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "merged 3 part(s): 15 videos" in rerun.stdout and "already done" in rerun.stdout
    assert sorted(_samples(out)) == sorted(f"{n[:-4]}_c0000" for n in names)  # no duplicate (asserted), no gap
    assert sorted(r["video"] for r in sink.read_jsonl(out / sink.INDEX)) == sorted(str(tmp_path / "in" / n)
                                                                                   for n in names)
    assert not list(out.glob("*.tmp"))


POISON = ("import os, signal\nfrom datamodules import pipeline\norig = pipeline.Pipeline.samples\n"
          "def samples(self, video):\n    if video.path.name == 'poison.mp4':\n"
          "        os.kill(os.getpid(), signal.SIGKILL)\n    return orig(self, video)\n"
          "pipeline.Pipeline.samples = samples\n")


@pytest.mark.slow
def test_a_video_that_kills_its_worker_is_recorded_and_the_rest_go_on(tmp_path, monkeypatch):
    _inputs(tmp_path)
    make_video(tmp_path / "in" / "poison.mp4", 9, 32, 32)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(POISON)  # runs at start-up in the spawned workers only
    monkeypatch.setenv("PYTHONPATH", f"{hook}:{ROOT}")
    counts = run(_cfg(tmp_path, workers=2), log=lambda *_: None)
    assert (counts["done"], counts["failed"]) == (len(NAMES), 1)
    ((video, reason),) = _failures(tmp_path / "out")
    assert video.endswith("poison.mp4") and "worker process preparing it died" in reason
    assert len(_samples(tmp_path / "out")) == 10


def test_worker_setup_errors_fail_before_any_video(tmp_path):
    _inputs(tmp_path, NAMES[:2])
    cfg = _cfg(tmp_path, workers=2, sketch=True, sketch_weights=str(tmp_path / "none.pth"))
    with pytest.raises(ConfigError, match="sketch_weights"):
        run(cfg, log=lambda *_: None)
    assert not list((tmp_path / "out").glob("train-*")) and not (tmp_path / "out" / sink.FAILURES).exists()


def test_no_inputs_for_a_part_is_not_an_error(tmp_path):
    _inputs(tmp_path, ["v0.mp4"])
    empty = next(k for k in range(4) if part_of("v0.mp4", 4) != k)
    counts = run(_cfg(tmp_path, part=f"{empty}/4"), log=lambda *_: None)
    assert counts["done"] == counts["failed"] == 0
    with pytest.raises(PrepareError, match="have not finished"):
        merge(tmp_path / "out", list_videos(str(tmp_path / "in")).videos)


def test_precompute_finished_in_the_main_process_gives_the_same_bytes(tmp_path):
    """workers=N with precompute on a GPU: workers code the clip, the GPU's process adds the latents. The split
    pipeline ('worker' then 'finish') makes what the one-process pipeline makes (here on the CPU, tiny models)."""
    from datamodules.inputs import Video
    from datamodules.pipeline import PENDING, Pipeline
    from disco_train.config import ModelConfig

    _inputs(tmp_path, ["v0.mp4"], size=128)
    cfg = _cfg(tmp_path, precompute=True, model=ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16), **EXACT)
    video = Video(tmp_path / "in" / "v0.mp4", "v0.mp4")
    whole = Pipeline(cfg)
    whole.preflight()
    worker, finisher = Pipeline(cfg, "worker"), Pipeline(cfg, "finish")
    worker.preflight()
    finisher.preflight()
    assert worker.precompute is None and finisher.captioner is finisher.sketch is None
    pending = worker.samples(video)
    assert all(PENDING in s and "latents.safetensors" not in s and "meta.json" not in s for s in pending)
    assert finisher.finish_pending(pending) == whole.samples(video)


@pytest.mark.slow
def test_cpu_stages_in_workers_give_the_same_bytes(tmp_path, stage_files):
    from disco_train.config import ModelConfig

    _inputs(tmp_path, NAMES[:4], size=128)
    kw = dict(sketch=True, sketch_weights=stage_files["sketch_weights"], precompute=True,
              model=ModelConfig(name="tiny", dtype="fp32", max_text_tokens=16), **EXACT)
    run(_cfg(tmp_path, "one", **kw), log=lambda *_: None)
    run(_cfg(tmp_path, "two", workers=2, **kw), log=lambda *_: None)
    a, b = _samples(tmp_path / "one"), _samples(tmp_path / "two")
    assert len(a) == 6 and a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert all({"sketch.bin", "latents.safetensors"} <= set(s) for s in a.values())
