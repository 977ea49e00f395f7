"""Outputs never over inputs (issue 29, class 1): encode, decode, export and benchmark resolve what they write before
any work, and refuse with exit 2 an output that is an input or an existing file or folder they did not write."""

from __future__ import annotations

import os

import pytest

from conftest import make_video
from disco_train.__main__ import main
from disco_train.codec import container as C
from disco_train.config.outputs import MARKER
from disco_train.train.export import export
from test_codec_cli import export_dir  # noqa: F401  (the module fixture: a tiny model's export)
from test_export import CODEC, make_run


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "mine.mp4"
    make_video(path, frames=9, height=32, width=32)
    return path


def _encode(*args):
    return main(["encode", *map(str, args), "caption=x", "send.codec=x264"])


@pytest.mark.parametrize("form", ["same", "dot", "symlink", "hardlink"])
def test_encode_never_writes_over_its_video(video, tmp_path, capsys, form):
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(video.read_bytes())
    before = mine.read_bytes()
    out = {"same": mine, "dot": tmp_path / "." / "mine.mp4", "symlink": tmp_path / "link.mp4",
           "hardlink": tmp_path / "hard.mp4"}[form]
    if form == "symlink":
        out.symlink_to(mine)
    elif form == "hardlink":
        os.link(mine, out)
    assert _encode(mine, out) == 2
    err = capsys.readouterr().err
    assert "is the input video=" in err and err.count("\n") <= 2
    assert mine.read_bytes() == before


def test_encode_replaces_only_its_own_files_unless_overwrite(video, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert _encode(video, notes) == 2
    assert "exists; choose a new name or pass overwrite=true" in capsys.readouterr().err
    assert notes.read_text() == "keep me"
    out = tmp_path / "a.disco"
    assert _encode(video, out) == 0 and _encode(video, out) == 0  # an earlier .disco is encode's own
    assert C.read(out).geometry.frames == 9
    assert main(["encode", str(video), str(notes), "caption=x", "send.codec=x264", "overwrite=true"]) == 0
    assert C.read(notes).geometry.frames == 9


def test_decode_refuses_a_folder_it_did_not_fill_before_decoding(video, tmp_path, capsys):
    disco = tmp_path / "a.disco"
    assert _encode(video, disco) == 0
    photos = tmp_path / "PHOTOS"
    photos.mkdir()
    (photos / "000000.png").write_bytes(b"my holiday")
    # refused before the export is read: a missing export would be the error otherwise
    assert main(["decode", str(disco), str(photos), f"export={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err
    assert "folder holds files decode did not write (000000.png)" in err
    assert (photos / "000000.png").read_bytes() == b"my holiday"
    for out in (disco, tmp_path):  # the input itself; a folder holding the input
        assert main(["decode", str(disco), str(out), f"export={tmp_path / 'none'}", "overwrite=true"]) == 2
        assert "input input=" in capsys.readouterr().err
    before = disco.read_bytes()
    assert main(["decode", str(disco), str(tmp_path / "x.mkv"), f"export={tmp_path / 'none'}"]) == 2
    (tmp_path / "r.mkv").write_bytes(b"earlier")
    assert main(["decode", str(disco), str(tmp_path / "r.mkv"), f"export={tmp_path / 'none'}"]) == 2
    assert "r.mkv: exists" in capsys.readouterr().err and disco.read_bytes() == before


def test_decode_writes_new_and_own_folders(video, export_dir, tmp_path):
    disco = tmp_path / "a.disco"
    assert _encode(video, disco) == 0
    frames = tmp_path / "new" / "frames"  # a missing folder is made
    args = ["decode", str(disco), str(frames), f"export={export_dir}", "steps=1"]
    assert main(args) == 0
    assert (frames / MARKER).is_file() and len(list(frames.glob("*.png"))) == 9
    (frames / "000042.png").write_bytes(b"stale frame of a longer earlier decode")
    assert main(args) == 0  # its own folder: written again, the stale frame removed
    assert len(list(frames.glob("*.png"))) == 9


def test_an_output_below_a_file_is_refused_before_any_work(video, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert _encode(video, notes / "a.disco") == 2
    assert f"out={notes / 'a.disco'}: {notes} is a file, not a folder" in capsys.readouterr().err
    disco = tmp_path / "a.disco"
    assert _encode(video, disco) == 0
    # refused before the export is read (and so before sampling): a missing export would be the error otherwise
    for out in (notes / "sub" / "r.mkv", notes / "frames"):
        assert main(["decode", str(disco), str(out), f"export={tmp_path / 'none'}"]) == 2
        err = capsys.readouterr().err
        assert f"{notes} is a file, not a folder" in err and err.count("\n") <= 2, err
    assert notes.read_text() == "keep me"


def test_export_force_never_replaces_its_inputs_or_a_foreign_folder(tmp_path, capsys):
    _, ckpt = make_run(tmp_path)
    run = ckpt.parents[1]
    keys = [f"{k}={v}" for k, v in CODEC.items()]
    assert main(["export", f"ckpt={ckpt}", f"out={run}", "force=true", *keys]) == 2
    assert "holds the input ckpt=" in capsys.readouterr().err and ckpt.is_file()
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    assert main(["export", f"ckpt={ckpt}", f"out={home}", "force=true", *keys]) == 2
    assert "is not an export" in capsys.readouterr().err and (home / "thesis.tex").is_file()


def test_benchmark_output_is_never_the_reference_folder(video, tmp_path, capsys):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "a.mp4").write_bytes(video.read_bytes())
    for out, refs_arg in ((refs, refs), (tmp_path, refs), (refs, f"{refs}/*.mp4")):
        assert main(["benchmark", "recipe=benchmark_debug", f"refs={refs_arg}", f"out={out}", "methods=x264",
                     "anchor=x264", "metrics.names=psnr"]) == 2
        assert "holds the input refs=" in capsys.readouterr().err
    assert sorted(p.name for p in refs.iterdir()) == ["a.mp4"]


def test_a_viewing_copy_of_an_odd_size_is_refused_before_sampling(tmp_path, capsys):
    odd = tmp_path / "odd.mp4"
    make_video(odd, frames=9, height=33, width=35, codec="libx264rgb")
    disco = tmp_path / "a.disco"
    assert _encode(odd, disco) == 0
    # refused before the export is read: a missing export would be the error otherwise
    assert main(["decode", str(disco), str(tmp_path / "v.mp4"), f"export={tmp_path / 'none'}", "crf=20"]) == 2
    assert "crf: a 4:2:0 viewing copy needs an even width and height; " in capsys.readouterr().err
