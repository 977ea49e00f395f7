"""The clip protocol: test sequences -> lossless reference clips of one size and length.

Each video (raw .yuv / .y4m or anything PyAV reads, through `io.video`) is streamed, its first `frames`
frames are scaled to cover `width × height` and centre-cropped (`modalities.degrade.resize_center_crop`, the
same protocol `prepare` applies to training clips: bilinear with antialiasing, e.g. 1920×1080 -> 910×512 ->
512×512), and written losslessly as `out/refs/<name>.mkv` (FFV1, RGB). Every method is coded from and scored
against exactly these frames. A clip's `digest` (sha256 of its frames and frame rate) names it in the cache, so
a changed source, size or length gives new cells and nothing stale.

A `<name>.json` beside each clip records the source (path, size, mtime) and the protocol; a rerun with the same
ones reads the clip back instead of decoding the source again.
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from disco_train.codec.batch import sorted_by_stem
from disco_train.io.files import atomic_write, hold_lock, release_lock
from disco_train.io.video import VIDEO_SUFFIXES, VideoError, iter_video, read_video, write_lossless
from disco_train.modalities.degrade import resize_center_crop

CHUNK = 8  # frames resized at a time: bounded memory for 1080p sources


@dataclass(frozen=True)
class RefClip:
    name: str
    """The source's file stem: the video column of every table."""
    source: str
    """The source file."""
    path: str
    """The lossless reference clip (FFV1 .mkv)."""
    fps: float
    frames: int
    height: int
    width: int
    digest: str
    """sha256 of the clip's frames and frame rate."""

    @property
    def file_name(self) -> str:
        """The source's file name: a captions table's row is matched against it (`modalities.captions`)."""
        return Path(self.source).name

    @property
    def pixels(self) -> int:
        return self.frames * self.height * self.width


def find_videos(refs: str, max_videos: int = 0, exclude: str | Path | None = None) -> list[Path]:
    """`refs` (a folder, searched recursively, or a glob) -> video files sorted by name; files under `exclude`
    (the benchmark's own output folder, which holds reference clips) are not sources."""
    if not refs:
        raise VideoError("refs: give a folder of test videos or a glob (refs=data/hevc_b or refs='data/uvg/*.yuv')")
    root = Path(refs)
    if root.is_dir():
        found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    else:
        found = [Path(p) for p in glob.glob(refs, recursive=True) if Path(p).is_file()]
    if exclude is not None:
        skip = Path(exclude).resolve()
        found = [p for p in found if not p.resolve().is_relative_to(skip)]
    if not found:
        raise VideoError(f"refs={refs}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    found, clashes = sorted_by_stem(found)
    if clashes:
        raise VideoError(f"refs={refs}: several videos named {clashes}; tables name videos by file stem")
    return found[:max_videos] if max_videos else found


def digest(frames: np.ndarray, fps: float) -> str:
    h = hashlib.sha256(np.ascontiguousarray(frames).tobytes())
    h.update(f"{frames.shape}|{fps!r}".encode())
    return h.hexdigest()


def _protocol(source: Path, width: int, height: int, frames: int, yuv: dict) -> dict:
    stat = source.stat()
    return {"source": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "width": width, "height": height, "frames": frames, "yuv": yuv}


def cut(source: Path, width: int, height: int, frames: int, yuv: dict | None = None) -> tuple[np.ndarray, float]:
    """The first `frames` frames of `source`, covering width × height and centre-cropped; uint8 [T,H,W,3]."""
    stream, fps = iter_video(source, frames, yuv)
    out, chunk = [], []
    for frame in stream:
        chunk.append(frame)
        if len(chunk) == CHUNK:
            out.append(resize_center_crop(np.stack(chunk), height, width)[0])
            chunk = []
    if chunk:
        out.append(resize_center_crop(np.stack(chunk), height, width)[0])
    count = sum(len(c) for c in out)
    if count < frames:
        raise VideoError(f"{source}: {count} frames; the clip protocol takes the first {frames} (frames=)")
    return np.concatenate(out), fps


def reference_clip(source: Path, folder: Path, width: int, height: int, frames: int,
                   yuv: dict | None = None) -> RefClip:
    """The lossless reference clip of `source` under `folder` (made once, then read back). Parts of one benchmark
    share `folder`: the first that needs a clip makes it under `.<name>.lock`, the others wait and read it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = hold_lock(folder / f".{source.stem}.lock", wait=True)
    try:
        return _reference_clip(source, folder, width, height, frames, yuv)
    finally:
        release_lock(handle)


def _reference_clip(source: Path, folder: Path, width: int, height: int, frames: int, yuv: dict | None) -> RefClip:
    path, meta = folder / f"{source.stem}.mkv", folder / f"{source.stem}.json"
    protocol = _protocol(source, width, height, frames, dict(yuv or {}))
    if path.is_file() and meta.is_file():
        try:
            saved = json.loads(meta.read_text())
        except json.JSONDecodeError:
            saved = {}
        if saved.get("protocol") == protocol:
            return RefClip(**saved["clip"])
    clip, fps = cut(source, width, height, frames, yuv)
    write_lossless(path, clip, fps)
    back, _ = read_video(path)
    if not np.array_equal(back, clip):  # the reference must be exactly what was cut
        raise VideoError(f"{path}: the lossless reference clip does not read back exactly")
    ref = RefClip(source.stem, str(source), str(path), float(fps), clip.shape[0], clip.shape[1], clip.shape[2],
                  digest(clip, float(fps)))
    atomic_write(meta, json.dumps({"protocol": protocol, "clip": asdict(ref)}, indent=1))
    return ref


class ClipFrames:
    """The reference frames of clips, read on demand; the `keep` most recently used stay in memory."""

    def __init__(self, keep: int = 4):
        self.keep, self._frames = max(1, keep), {}

    def __call__(self, clip: RefClip) -> np.ndarray:
        if clip.name in self._frames:
            self._frames[clip.name] = self._frames.pop(clip.name)  # most recent last
        else:
            frames, _ = read_video(clip.path)
            if digest(frames, clip.fps) != clip.digest:
                raise VideoError(f"{clip.path}: the reference clip changed on disk (digest mismatch); delete it and "
                                 f"its .json to cut it again")
            self._frames[clip.name] = frames
            while len(self._frames) > self.keep:
                self._frames.pop(next(iter(self._frames)))
        return self._frames[clip.name]
