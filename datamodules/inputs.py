"""The inputs of `prepare`: which videos, the name each is known by, and the part of the inputs it belongs to.

A video's name is its path relative to the input root (posix): the folder given as `input`, the folder a glob
starts from (`data/**/*.mp4` -> `data`), or, for a csv/jsonl list, the list's folder (paths outside it keep
their path as listed). Sample keys (`datamodules.schema.sample_key`), caption look-ups and the partition of the
inputs (`part_of`) all use the name, so `a/video.mp4` and `b/video.mp4`, or `clip.mkv` and `clip.mov`, stay
different videos, and the part a video falls in depends on its name alone (adding inputs moves no video).
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from datamodules.schema import sample_key
from disco_train.config import ConfigError
from disco_train.io import video as videoio
from disco_train.modalities import captions as caption_table

VIDEO_SUFFIXES = set(videoio.VIDEO_SUFFIXES)  # what the project reads as a video
UNREADABLE_SUFFIXES = {".yuv": "raw YUV has no header: its name must give the size and frame rate, like "
                               "Name_1920x1080_50fps_420_10bit.yuv or Name_1920x1080_60.yuv; rename it, or convert "
                               "it to .y4m (ffmpeg -s WxH -pix_fmt yuv420p -r FPS -i in.yuv out.y4m)"}
"""Videos `read_video` cannot read (a .yuv whose name does not say its size and rate): counted and reported, not
processed."""


def readable(path: Path) -> bool:
    """Whether `read_video` can read this listed file: raw YUV only when its name gives its size and rate."""
    if path.suffix.lower() != ".yuv":
        return path.suffix.lower() in VIDEO_SUFFIXES
    from disco_train.io.rawyuv import format_from_name

    try:
        found = format_from_name(path.stem)
    except ValueError:
        return False
    return {"width", "height", "fps"} <= set(found)
_WILDCARDS = "*?["


@dataclass(frozen=True)
class Video:
    """One input video."""

    path: Path
    """The path as listed (recorded as `source` in meta.json and as `video` in the index)."""
    name: str
    """The path relative to the input root, posix: sample keys, captions and partitions use it."""
    caption: str | None = None
    """Its caption from the captions file (None: not listed there)."""
    no_caption: str = ""
    """Why the captions file gave none, when that is not simply an absent row (an ambiguous file name)."""


@dataclass
class Listing:
    videos: list[Video]
    ignored: Counter = field(default_factory=Counter)
    """Files of UNREADABLE_SUFFIXES found in a folder input, by suffix."""

    def ignored_note(self) -> str:
        """'2 .yuv files ignored (why)', or ''."""
        return "; ".join(f"{n} {suffix} file{'s' * (n > 1)} ignored ({UNREADABLE_SUFFIXES[suffix]})"
                         for suffix, n in sorted(self.ignored.items()))


def _name(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # outside the root (a list naming paths elsewhere): the path itself, without its anchor
        return Path(*path.parts[1:]).as_posix() if path.is_absolute() else path.as_posix()


def _glob_root(spec: str) -> Path:
    parts = Path(spec).parts
    first = next((i for i, p in enumerate(parts) if any(c in p for c in _WILDCARDS)), len(parts) - 1)
    return Path(*parts[:first]) if first else Path(".")


def list_videos(spec: str) -> Listing:
    """A folder (recursive), a glob, or a csv/jsonl whose 'video' column / field holds paths, with their names."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        videos = [Video(p, _name(p, path)) for p in files if readable(p)]
        return Listing(videos, Counter(p.suffix.lower() for p in files
                                       if p.suffix.lower() in UNREADABLE_SUFFIXES and not readable(p)))
    if path.suffix in (".csv", ".jsonl") and path.is_file():
        root = path.parent.resolve()
        videos = []
        for p in (Path(p) for p in caption_table.list_column(path, "video")):
            whole = p if p.is_absolute() else p.resolve()  # listed relative paths are relative to the cwd
            videos.append(Video(p, _name(whole, root) if whole.is_relative_to(root) else _name(p, root)))
        return Listing(videos)
    found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
    if not found:
        raise ConfigError(f"input: {spec!r} matches no video (a folder, glob, or csv/jsonl list)")
    root = _glob_root(spec)
    return Listing([Video(p, _name(p, root)) for p in found])


def check_unique(videos: list[Video]) -> None:
    """Two inputs with one name or one sample key would overwrite each other's samples: refuse, naming both."""
    first: dict[str, Video] = {}
    for video in videos:
        for key in (f"name {video.name}", f"key {sample_key(video.name, 0)}"):
            if key in first:
                raise ConfigError(f"input: {first[key].path} and {video.path} have the same {key}; list each "
                                  f"video once")
            first[key] = video


def part_of(name: str, count: int) -> int:
    """The part (0..count-1) a video belongs to: a hash of its name, so it does not depend on the other inputs."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % count


def lookup(videos: list[Video], table: caption_table.CaptionTable) -> list[tuple[str | None, str]]:
    """Each video's entry in the table (value or None, why none): by name (relative path), else by the name
    without its suffix, file name or stem where that is unambiguous among both the table and the inputs."""
    counts = Counter()
    for v in videos:
        path = PurePosixPath(v.name)
        counts.update({("bare", str(path.with_suffix(""))), ("name", path.name), ("stem", path.stem)})
    shared = {k for k, n in counts.items() if n > 1}
    return [table.lookup(v.name, shared) for v in videos]


def with_captions(videos: list[Video], table: caption_table.CaptionTable) -> list[Video]:
    """Each video with its caption from the table (`lookup`)."""
    return [Video(v.path, v.name, *found) for v, found in zip(videos, lookup(videos, table))]


def _score(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def curate(videos: list[Video], captions: str, key: str, column: str, min_quality: float
           ) -> tuple[list[Video], dict[str, int]]:
    """(the videos whose `column` score in the captions file is >= min_quality, the counts of those skipped:
    {below_min_quality, no_quality_score}). A video without a usable score (no row, empty, not a finite number)
    is skipped too: a filter that kept unknowns would let the bad ones it exists to remove through."""
    if min_quality <= 0:
        return videos, {}
    scores = [_score(text) for text, _ in lookup(videos, caption_table.load(captions, key, column,
                                                                              "quality_column"))]
    kept = [v for v, score in zip(videos, scores) if score is not None and score >= min_quality]
    unscored = sum(score is None for score in scores)
    return kept, {"below_min_quality": len(videos) - len(kept) - unscored, "no_quality_score": unscored}
