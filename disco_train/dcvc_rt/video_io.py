"""Reading and writing uint8 RGB frame stacks: video containers via PyAV, or exact .npy arrays."""

from pathlib import Path

import numpy as np


def read_frames(path, max_frames: int = 0) -> np.ndarray:
    """(T,H,W,3) uint8 RGB from a video file (PyAV) or a .npy array; max_frames 0 = all."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.suffix == ".npy":
        frames = np.load(path, allow_pickle=False)
        return frames[:max_frames] if max_frames else frames
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"no video frames in {path}")
    return np.stack(frames)


def write_frames(path, frames: np.ndarray, fps: int = 25, vcodec: str = "libx264rgb", crf: int = 0):
    """Write (T,H,W,3) uint8 RGB. .npy is exact; a video container uses `vcodec` (default lossless
    x264 in RGB at crf 0, so the written pixels are the decoded ones)."""
    path = Path(path)
    if path.suffix == ".npy":
        np.save(path, frames)
        return
    import av

    T, H, W, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(vcodec, rate=fps)
        stream.width, stream.height = W, H
        stream.pix_fmt = "rgb24" if vcodec in ("libx264rgb", "ffv1") else "yuv420p"
        if vcodec.startswith("libx264"):
            stream.options = {"crf": str(crf)}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
