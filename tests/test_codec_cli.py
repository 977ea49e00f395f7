"""encode / decode end to end on tiny models: odd sizes and lengths, sketch and pose plug-ins, errors, evaluation."""

import re
import sys
from fractions import Fraction
import types

import numpy as np
import pytest

from conftest import make_video
from disco_train import codec_cli as K
from disco_train import container as C
from disco_train import export as E
from disco_train.__main__ import main
from disco_train.video import read_video
from test_export import CODEC, make_run


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec")
    _, ckpt = make_run(root)
    return E.export(ckpt, root / "export", codec=CODEC)


@pytest.fixture(scope="module")
def odd_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "odd.mp4"
    make_video(path, frames=20, height=50, width=70)
    return path


def test_coded_geometry_covers_the_video_on_the_vae_grid():
    g = K.coded_geometry(20, 50, 70, 24.0)
    assert (g.coded_frames, g.coded_height, g.coded_width) == (25, 64, 96)
    assert K.coded_geometry(233, 768, 1440, 30.0).coded_frames == 233  # paper §4.3 sizes need no padding
    g = K.coded_geometry(233, 768, 1440, 30.0)
    assert (g.coded_height, g.coded_width) == (768, 1440)
    assert K.coded_geometry(57, 512, 512, 24000 / 1001).fps == Fraction(24000, 1001)  # NTSC rates stay exact


def test_degraded_stream_round_trip_fills_and_pads(tmp_path, odd_video):
    frames, fps = read_video(odd_video)
    g = K.coded_geometry(*frames.shape[:3], fps)
    stream = K.code_degraded(frames, g, "video", 2, 4, "x264", 10, -1, None)
    assert (stream.ds, stream.dt) == (2, 4)
    assert len(K.decode_frames(stream.data, "x264", None)) == 5  # frames 0, 4, 8, 12, 16 of the video's own 20
    cond = K.restore_degraded(stream, g, "forward", None)
    assert cond.shape == (25, 64, 96, 3)
    assert all(np.array_equal(cond[i], cond[16]) for i in range(17, 25))  # forward fill, then end padding
    assert np.array_equal(cond[1], cond[0]) and not np.array_equal(cond[4], cond[0])
    assert np.abs(cond[0, :50, :70].astype(int) - frames[0]).mean() < 12  # the picture sits at the top left


def test_encode_decode_end_to_end_odd_size_and_length(export_dir, odd_video, tmp_path, capsys):
    out, recon = tmp_path / "a.disco", tmp_path / "r.mp4"
    assert main(["encode", str(odd_video), str(out), "caption=a moving gradient", f"export={export_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "text" in printed and "video" in printed and "bpp" in printed
    c = C.read(out)
    assert (c.geometry.frames, c.geometry.height, c.geometry.width) == (20, 50, 70)
    video = c.get("video")
    assert (video.ds, video.dt, video.codec) == (4, 4, "x264")  # the export's training settings
    assert f"{sum(c.bits().values()):,} bits" in printed
    assert main(["decode", str(out), str(recon), f"export={export_dir}", "steps=2", "guidance=3"]) == 0
    frames, fps = read_video(recon)
    assert frames.shape == (20, 50, 70, 3) and fps == pytest.approx(24.0)
    args = {"export": str(export_dir), "steps": "2", "seed": "1"}
    first, again = K.decode(out, None, args), K.decode(out, None, args)
    assert first.shape == (20, 50, 70, 3) and np.array_equal(first, again)  # seeded: receivers agree
    unmerged = K.decode(out, None, dict(args, merge_lora="false"))  # the adapter as a separate branch
    assert np.abs(unmerged.astype(int) - first).max() <= 1


def test_decoder_folds_the_adapter_into_the_base_weights(export_dir):
    import torch

    merged, plain = E.build_decoder(export_dir), E.build_decoder(export_dir, merge=False)
    q_merged, q_plain = (m.transformer.transformer_blocks[0].attn1.to_q for m in (merged, plain))
    assert q_merged.merged and not q_plain.merged
    assert not torch.equal(q_merged.base_layer.weight, q_plain.base_layer.weight)  # the trained adapter is not 0
    g = torch.Generator().manual_seed(0)
    n, c = 12, merged.transformer.config.in_channels
    args = (torch.randn(1, n, c, generator=g), torch.randn(1, n, c, generator=g), 1,
            torch.rand(1, 3, n, generator=g) * 4, torch.full((1,), 0.7), torch.randn(1, 8, 32, generator=g),
            torch.ones(1, 8, dtype=torch.long))
    with torch.no_grad():
        torch.testing.assert_close(merged.denoise(*args), plain.denoise(*args), rtol=1e-4, atol=1e-5)


def test_sketch_stream_feeds_an_interleave_decoder(tmp_path, odd_video):
    _, ckpt = make_run(tmp_path, "condition.mode=interleave", "condition.aux=sketch")
    export_dir = E.export(ckpt, tmp_path / "export", codec=CODEC)
    sketch = tmp_path / "sketch.mp4"
    make_video(sketch, frames=20, height=50, width=70, seed=3)
    out = tmp_path / "s.disco"
    args = {"caption": "lines", "sketch": str(sketch), "codec": "x264", "sketch_ds": "2", "sketch_dt": "2"}
    c = K.encode(odd_video, out, args)
    assert (c.get("sketch").ds, c.get("sketch").dt, c.get("sketch").codec) == (2, 2, "x264")
    frames = K.decode(out, tmp_path / "r.mp4", {"export": str(export_dir), "steps": "1", "guidance": "1"})
    assert frames.shape == (20, 50, 70, 3)
    K.encode(odd_video, tmp_path / "plain.disco", {"caption": "lines", "codec": "x264"})
    with pytest.raises(K.CodecError, match=r"needs a sketch stream; the container holds \['text', 'video'\]"):
        K.decode(tmp_path / "plain.disco", None, {"export": str(export_dir), "steps": "1"})


def test_pose_stream_round_trip(tmp_path, odd_video):
    """A real pose bitstream (disco_train.pose) travels in the container and is rendered at the receiver."""
    from disco_train.pose import PoseSequence, encode_poses

    rng = np.random.default_rng(0)

    def poses(frames):
        kps = [rng.uniform(5, 45, (1, 134, 2)).astype(np.float32) for _ in range(frames)]
        return PoseSequence(kps, [np.ones((1, 134), np.float32)] * frames, frame_size=(50, 70))

    (tmp_path / "p.xz").write_bytes(encode_poses(poses(20)))
    c = K.encode(odd_video, tmp_path / "p.disco", {"caption": "x", "codec": "x264", "pose": str(tmp_path / "p.xz")})
    stream = C.read(tmp_path / "p.disco").get("pose")
    assert stream.data == (tmp_path / "p.xz").read_bytes() and stream.codec == "lzma"
    rendered = K.AUX["pose"].decode(stream, c.geometry, {})
    assert rendered.shape == (25, 64, 96, 3)  # the coded grid: 8k+1 frames, multiples of 32, cropped later
    assert rendered.max() > 0  # skeletons were drawn
    (tmp_path / "bad.xz").write_bytes(encode_poses(poses(19)))
    with pytest.raises(K.CodecError, match="19 frames of poses for a 20-frame video"):
        K.encode(odd_video, tmp_path / "q.disco", {"caption": "x", "codec": "x264", "pose": str(tmp_path / "bad.xz")})


def test_errors_are_clear_and_keep_existing_output(export_dir, odd_video, tmp_path, capsys):
    good = tmp_path / "a.disco"
    assert main(["encode", str(odd_video), str(good), "caption=x", "codec=x264"]) == 0
    before = good.read_bytes()
    assert main(["encode", str(odd_video), str(good), "codec=x264"]) == 2  # no caption
    assert "caption=TEXT or captioner=DIR" in capsys.readouterr().err
    assert good.read_bytes() == before  # a failed encode leaves the old file alone
    assert main(["encode", str(odd_video), str(good), "caption=x", "codec=x266"]) == 2
    assert "codec=x266" in capsys.readouterr().err
    assert main(["encode", str(odd_video), str(good), "caption=x", "qpp=3"]) == 2
    assert "qpp: unknown argument" in capsys.readouterr().err
    bad = tmp_path / "bad.disco"
    bad.write_bytes(before[:-3])
    assert main(["decode", str(bad), str(tmp_path / "r.mp4"), f"export={export_dir}"]) == 2
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "r.mp4").exists()
    assert main(["decode", str(good), str(tmp_path / "r.mp4")]) == 2
    assert "export=DIR" in capsys.readouterr().err
    sketch = tmp_path / "short.mp4"
    make_video(sketch, frames=9, height=50, width=70)
    assert main(["encode", str(odd_video), str(good), "caption=x", "codec=x264", f"sketch={sketch}"]) == 2
    assert "sketch=" in capsys.readouterr().err


def test_bdrate_on_csvs_from_evaluate_with_disco_rates(odd_video, tmp_path, capsys):
    """encode at two rates per 'codec', evaluate the degraded baselines with the .disco files as the rate, then
    `python -m disco_train bdrate` on the csvs that evaluate wrote."""
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "v.mp4").write_bytes(odd_video.read_bytes())
    csvs = {}
    for name, crfs in (("a", (20, 36)), ("b", (22, 38))):  # overlapping quality ranges: a finite BD-rate
        csvs[name] = tmp_path / f"{name}.csv"
        for crf in crfs:
            bits, recons = tmp_path / f"bits_{name}{crf}", tmp_path / f"recons_{name}{crf}"
            bits.mkdir()
            recons.mkdir()
            c = K.encode(odd_video, bits / "v.disco", {"caption": "x", "codec": "x264", "ds": 1, "dt": 1, "crf": crf})
            restored = K.crop(K.restore_degraded(c.get("video"), c.geometry, "forward", None), c.geometry)
            from disco_train.video import write_video

            write_video(recons / "v.mp4", restored, 24.0, crf=0)
            argv = ["evaluate", f"refs={refs}", f"recons={recons}", "metrics=psnr", f"out={csvs[name]}",
                    f"bitstreams={bits}"] + (["append=true"] if crf == crfs[1] else [])
            assert main(argv) == 0
    capsys.readouterr()
    assert main(["bdrate", str(csvs["a"]), str(csvs["b"]), "metric=psnr"]) == 0
    printed = capsys.readouterr().out
    assert "BD-rate psnr" in printed and "nan" not in printed.lower()
    assert re.search(r"-?\d+\.\d+ %", printed)


@pytest.mark.slow
def test_dcvc_rt_degraded_stream(odd_video, tmp_path):
    frames, fps = read_video(odd_video)
    g = K.coded_geometry(*frames.shape[:3], fps)
    stream = K.code_degraded(frames, g, "video", 4, 4, "dcvc_rt", 0, 16, "synthetic")
    out = tmp_path / "d.disco"
    C.write(out, C.Container(g, [stream]))
    assert K.restore_degraded(C.read(out).get("video"), g, "forward", "synthetic").shape == (25, 64, 96, 3)
