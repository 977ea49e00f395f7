"""encode / decode end to end on tiny models: odd sizes and lengths, sketch and pose streams, errors, evaluation."""

import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from conftest import ROOT, make_video, send_keys
from disco_train.__main__ import main
from disco_train.codec import backends, cli, pipeline
from disco_train.codec import container as C
from disco_train.codec.receiver import crop, receive
from disco_train.codec.sender import CodecError, geometry_for, send_video
from disco_train.config.send import SendSettings
from disco_train.io.errors import DecodeError
from disco_train.io.video import read_video, write_video
from disco_train.decoder import export as E
from disco_train.decoder.decoder import DiscoDecoder
from disco_train.train.export import export
from test_export import CODEC, make_run


def encode(video, out, **keys):
    """`encode VIDEO OUT key=value ...` through the command's own grammar."""
    a, _ = cli.ENCODE.parse([str(video), str(out), *send_keys(keys)])
    return cli.encode(a)


def decode(path, out="", **keys):
    a, _ = cli.DECODE.parse([str(path), str(out), *(f"{k}={v}" for k, v in keys.items())])
    return cli.decode(a)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec")
    _, ckpt = make_run(root)
    return export(ckpt, root / "export", codec=CODEC)


@pytest.fixture(scope="module")
def odd_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "odd.mp4"
    make_video(path, frames=20, height=50, width=70)
    return path


def test_coded_geometry_covers_the_video_on_the_vae_grid():
    g = geometry_for(20, 50, 70, 24.0)
    assert (g.coded_frames, g.coded_height, g.coded_width) == (25, 64, 96)
    g = geometry_for(233, 768, 1440, 30.0)  # paper §4.3 sizes need no padding
    assert (g.coded_frames, g.coded_height, g.coded_width) == (233, 768, 1440)
    assert geometry_for(57, 512, 512, 24000 / 1001).fps == Fraction(24000, 1001)  # NTSC rates stay exact


def test_degraded_stream_round_trip_fills_and_pads(odd_video):
    frames, fps = read_video(odd_video)
    c = send_video(frames, fps, "x", SendSettings(ds=2, dt=4, codec="x264", crf=10))
    stream = c.get("video")
    assert (stream.ds, stream.dt) == (2, 4)
    assert len(backends.decode("x264", stream.data)) == 5  # frames 0, 4, 8, 12, 16 of the video's own 20
    cond = receive(c, "forward")["cond"]
    assert cond.shape == (25, 64, 96, 3)
    assert all(np.array_equal(cond[i], cond[16]) for i in range(17, 25))  # forward fill, then end padding
    assert np.array_equal(cond[1], cond[0]) and not np.array_equal(cond[4], cond[0])
    assert np.abs(cond[0, :50, :70].astype(int) - frames[0]).mean() < 12  # the picture sits at the top left


def test_encode_decode_end_to_end_odd_size_and_length(export_dir, odd_video, tmp_path, capsys):
    out, recon = tmp_path / "a.disco", tmp_path / "r.mkv"
    assert main(["encode", str(odd_video), str(out), "caption=a moving gradient", f"export={export_dir}"]) == 0
    printed = capsys.readouterr().out
    assert "text" in printed and "video" in printed and "bpp" in printed
    c = C.read(out)
    assert (c.geometry.frames, c.geometry.height, c.geometry.width) == (20, 50, 70)
    video = c.get("video")
    assert (video.ds, video.dt, video.codec) == (4, 4, "x264")  # the export's training settings
    assert f"{sum(c.bits().values()):,} bits" in printed
    size = out.stat().st_size  # the total is the file: streams + header, with kbps at the video's 24 fps
    assert f"{8 * size:,} bits  {8 * size / (20 * 50 * 70):.6f} bpp {8 * size * 24 / 20 / 1000:.3f} kbps" in printed
    assert f"the {c.overhead_bytes}-byte header" in printed
    assert main(["decode", str(out), str(recon), f"export={export_dir}", "steps=2", "guidance=3"]) == 0
    assert "(lossless FFV1)" in capsys.readouterr().out
    frames, fps = read_video(recon)
    assert frames.shape == (20, 50, 70, 3) and fps == pytest.approx(24.0)
    # lossless by default: the file holds exactly the decoder's frames (no second codec before a metric)
    assert np.array_equal(frames, decode(out, export=export_dir, steps=2, guidance=3))
    assert main(["decode", str(out), str(tmp_path / "view.mp4"), f"export={export_dir}", "steps=2", "crf=30"]) == 0
    assert "(lossy H.264 4:2:0 at crf 30)" in capsys.readouterr().out
    assert main(["decode", str(out), str(tmp_path / "view.mkv"), f"export={export_dir}", "crf=30"]) == 2
    assert "a lossy viewing copy is an .mp4" in capsys.readouterr().err
    first, again = (decode(out, export=export_dir, steps=2, seed=1) for _ in range(2))
    assert first.shape == (20, 50, 70, 3) and np.array_equal(first, again)  # seeded: receivers agree
    unmerged = decode(out, export=export_dir, steps=2, seed=1, merge_lora=False)  # the adapter as its own branch
    assert np.abs(unmerged.astype(int) - first).max() <= 1


def test_decode_never_imports_lightning(export_dir, odd_video, tmp_path):
    """The receiver builds only the DiscoDecoder: a fresh interpreter decodes a tiny .disco without Lightning."""
    out = tmp_path / "a.disco"
    encode(odd_video, out, caption="x", export=export_dir)
    code = ("import sys; from disco_train.__main__ import main; "
            f"rc = main(['decode', {str(out)!r}, '', 'export={export_dir}', 'steps=1', 'guidance=1']); "
            "assert rc == 0, rc; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')); "
            "assert not bad, bad; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_decoder_folds_the_adapter_into_the_base_weights(export_dir):
    import torch

    merged, plain = DiscoDecoder.from_export(export_dir), DiscoDecoder.from_export(export_dir, merge=False)
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
    export_dir = export(ckpt, tmp_path / "export", codec=CODEC)
    sketch = tmp_path / "sketch.mp4"
    make_video(sketch, frames=20, height=50, width=70, seed=3)
    out = tmp_path / "s.disco"
    c = encode(odd_video, out, caption="lines", sketch=sketch, codec="x264", sketch_ds=2, sketch_dt=2)
    assert (c.get("sketch").ds, c.get("sketch").dt, c.get("sketch").codec) == (2, 2, "x264")
    frames = decode(out, tmp_path / "r.mp4", export=export_dir, steps=1, guidance=1)
    assert frames.shape == (20, 50, 70, 3)
    encode(odd_video, tmp_path / "plain.disco", caption="lines", codec="x264")
    with pytest.raises(DecodeError, match=r"needs a sketch stream; the container holds \['text', 'video'\]"):
        decode(tmp_path / "plain.disco", export=export_dir, steps=1)


def test_pose_stream_round_trip(tmp_path, odd_video):
    """A real pose bitstream travels in the container and is rendered at the receiver."""
    from disco_train.modalities.pose import PoseSequence, encode_poses

    rng = np.random.default_rng(0)

    def poses(frames):
        kps = [rng.uniform(5, 45, (1, 134, 2)).astype(np.float32) for _ in range(frames)]
        return PoseSequence(kps, [np.ones((1, 134), np.float32)] * frames, frame_size=(50, 70))

    (tmp_path / "p.xz").write_bytes(encode_poses(poses(20)))
    encode(odd_video, tmp_path / "p.disco", caption="x", codec="x264", pose=tmp_path / "p.xz")
    c = C.read(tmp_path / "p.disco")
    stream = c.get("pose")
    assert stream.data == (tmp_path / "p.xz").read_bytes() and stream.codec == "lzma"
    rendered = receive(c, "forward", aux="pose")["aux"]
    assert rendered.shape == (25, 64, 96, 3)  # the coded grid: 8k+1 frames, multiples of 32, cropped later
    assert rendered.max() > 0  # skeletons were drawn
    (tmp_path / "bad.xz").write_bytes(encode_poses(poses(19)))
    with pytest.raises(CodecError, match="19 frames of poses for a 20-frame video"):
        encode(odd_video, tmp_path / "q.disco", caption="x", codec="x264", pose=tmp_path / "bad.xz")


def test_errors_are_clear_and_keep_existing_output(export_dir, odd_video, tmp_path, capsys):
    good = tmp_path / "a.disco"
    assert main(["encode", str(odd_video), str(good), "caption=x", "send.codec=x264"]) == 0
    before = good.read_bytes()
    assert main(["encode", str(odd_video), str(good), "send.codec=x264"]) == 2  # no caption
    assert "caption=TEXT or captioner=DIR" in capsys.readouterr().err
    assert good.read_bytes() == before  # a failed encode leaves the old file alone
    assert main(["encode", str(odd_video), str(good), "caption=x", "send.codec=x266"]) == 2
    assert "x266" in capsys.readouterr().err
    assert main(["encode", str(odd_video), str(good), "caption=x", "qpp=3"]) == 2
    assert "qpp: unknown key (from command line); did you mean 'send.qp'?" in capsys.readouterr().err
    bad = tmp_path / "bad.disco"
    bad.write_bytes(before[:-3])
    assert main(["decode", str(bad), str(tmp_path / "r.mp4"), f"export={export_dir}"]) == 2
    assert "truncated" in capsys.readouterr().err and not (tmp_path / "r.mp4").exists()
    assert main(["decode", str(good), str(tmp_path / "r.mp4")]) == 2
    assert "export: is required" in capsys.readouterr().err
    sketch = tmp_path / "short.mp4"
    make_video(sketch, frames=9, height=50, width=70)
    assert main(["encode", str(odd_video), str(good), "caption=x", "send.codec=x264", f"sketch={sketch}"]) == 2
    assert "sketch:" in capsys.readouterr().err


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
            c = encode(odd_video, bits / "v.disco", caption="x", codec="x264", ds=1, dt=1, crf=crf)
            write_video(recons / "v.mp4", crop(receive(c, "forward")["cond"], c.geometry), 24.0, crf=0)
            argv = ["evaluate", f"refs={refs}", f"recons={recons}", "metrics.names=psnr", f"out={csvs[name]}",
                    f"bitstreams={bits}"] + (["append=true"] if crf == crfs[1] else [])
            assert main(argv) == 0
    capsys.readouterr()
    assert main(["bdrate", str(csvs["a"]), str(csvs["b"]), "metric=psnr"]) == 0
    printed = capsys.readouterr().out
    assert "BD-rate psnr" in printed and "nan" not in printed.lower()
    assert re.search(r"-?\d+\.\d+ %", printed)


def test_dcvc_rt_degraded_stream(odd_video, tmp_path):
    """The real DCVC-RT codec (synthetic weights) through the sender and receiver."""
    frames, fps = read_video(odd_video)
    c = send_video(frames[:5], fps, "x", SendSettings(ds=4, dt=4, codec="dcvc_rt", qp=16,
                                                        dcvc_rt_dir=backends.SYNTHETIC))
    C.write(tmp_path / "d.disco", c)
    got = receive(C.read(tmp_path / "d.disco"), "forward", video_weights=backends.SYNTHETIC)["cond"]
    assert got.shape == (9, 64, 96, 3)


def test_batched_decoding_gives_each_clip_its_own_noise(export_dir, odd_video, tmp_path):
    """decode_containers (the benchmark's batched path): a clip decodes the same alone or beside another one."""
    frames, fps = read_video(odd_video)
    s = SendSettings(ds=4, dt=4, codec="x264", crf=30)
    a, b = send_video(frames, fps, "a gradient", s), send_video(frames[:, ::-1].copy(), fps, "flipped", s)
    decoder = DiscoDecoder.from_export(export_dir)
    args = (2, 3.0)
    alone = pipeline.decode_containers(decoder, [a], *args, [7], decoder.cfg.validation.negative_prompt)[0]
    pair = pipeline.decode_containers(decoder, [b, a], *args, [5, 7], decoder.cfg.validation.negative_prompt)
    assert pair[1].shape == alone.shape == (20, 50, 70, 3)
    assert np.abs(pair[1].astype(int) - alone).max() <= 2  # the same noise; only float summation order differs
    other = pipeline.decode_containers(decoder, [a], *args, [8], decoder.cfg.validation.negative_prompt)[0]
    assert np.abs(other.astype(int) - alone).max() > 2
    small = send_video(frames[:, :32, :32].copy(), fps, "x", s)
    with pytest.raises(CodecError, match="one batch needs one coded size"):
        pipeline.decode_containers(decoder, [a, small], *args, [0, 0], "")


def test_selected_streams_follow_the_exports_pattern(tmp_path, odd_video, capsys):
    """A decoder trained on selected streams (condition.stream=selected) gets them from `encode export=`; the
    receiver refuses a file of another pattern before the decoder is built."""
    from safetensors import safe_open

    _, ckpt = make_run(tmp_path, "condition.mode=interleave", "condition.aux=sketch", "condition.stream=selected",
                       "condition.interleave_unit=latent_frame", "condition.ratio=1:1")
    export_dir = export(ckpt, tmp_path / "export", codec=CODEC)
    with safe_open(str(export_dir / E.DIFFUSERS_FILE), "pt") as f:
        meta = f.metadata()
    assert (meta["disco.stream"], meta["disco.interleave_unit"], meta["disco.interleave_ratio"]) == \
        ("selected", "latent_frame", "1:1")
    sketch, out = tmp_path / "sketch.mp4", tmp_path / "s.disco"
    make_video(sketch, frames=20, height=50, width=70, seed=3)
    assert main(["encode", str(odd_video), str(out), "caption=x", f"export={export_dir}", f"sketch={sketch}"]) == 0
    assert "pattern stream=selected interleave_unit=latent_frame ratio=1:1" in capsys.readouterr().out
    c = C.read(out)
    assert out.read_bytes()[4] == 2 and c.pattern == C.Pattern("selected", "latent_frame", 1, 1)
    assert decode(out, export=export_dir, steps=1, guidance=1).shape == (20, 50, 70, 3)
    full = encode(odd_video, tmp_path / "full.disco", caption="x", export=export_dir, sketch=sketch, stream="full")
    assert full.pattern == C.FULL and len(full.get("video").data) > len(c.get("video").data)
    assert main(["decode", str(tmp_path / "full.disco"), "", f"export={export_dir}", "steps=1"]) == 2
    assert "the file's streams are stream=full; this decoder reads stream=selected" in capsys.readouterr().err
