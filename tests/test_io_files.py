"""disco_train.io.files: the one atomic write and the one lock every command uses."""

import os

import pytest

from disco_train.io.files import (LockHeld, atomic_folder, atomic_open, atomic_write, hold_lock, locked, release_lock,
                                  temporaries)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "state.json"
    atomic_write(path, "old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_open(path, "w") as handle:
            handle.write("half of the new one")
            raise RuntimeError("disk full")
    assert path.read_text() == "old" and os.listdir(path.parent) == ["state.json"]
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["state.json"]


def test_temporaries_finds_what_a_killed_writer_left(tmp_path):
    (tmp_path / "index.jsonl.4242.tmp").write_text("cut")  # a writer killed before its rename
    (tmp_path / "index.jsonl").write_text("whole")
    assert temporaries(tmp_path, "index.jsonl") == [tmp_path / "index.jsonl.4242.tmp"]
    assert temporaries(tmp_path, "failures.jsonl") == []


def test_a_held_lock_names_its_holder(tmp_path):
    path = tmp_path / "run.lock"
    handle = hold_lock(path)
    try:
        # flock locks belong to the open file: a second open in this process conflicts like another process
        with pytest.raises(LockHeld, match=f"pid {os.getpid()} on "):
            hold_lock(path)
        with pytest.raises(ValueError, match=r"out=x is being written by another decode run \(pid "):
            with locked(path, ValueError, "out=x", by="decode run"):
                pass
    finally:
        release_lock(handle)
    with locked(path, ValueError, "out=x"):
        pass  # free again once released


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "export"
    with atomic_folder(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyError):
        with atomic_folder(out) as tmp:
            (tmp / "b").write_text("2")
            raise KeyError("failed half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"] and os.listdir(out) == ["a"]
    with atomic_folder(out) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"] and os.listdir(out) == ["c"]
