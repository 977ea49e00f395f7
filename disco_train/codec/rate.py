"""Rate control: `encode target_kbps=X` / `target_bpp=X` and the benchmark's disco@rate send the best trained rate
point of an export whose whole `.disco` file (every stream and the container's header) fits the budget at the
clip's size and duration.

Order (`order`): the trained points from worst to best expected quality. With the export's `rd_table.json`
(`decoder.rd_table`, written by `calibrate`) by the measured metric, keeping only the points the table does not
show dominated (another point of no more bpp and better quality: never worth sending, and dropping them makes
the rate rise along the order, which the search needs); else by the bits a point transmits: samples kept per
pixel 1/(D_s²·D_t), then the QP (CRF) in the codec's direction, ties to the smaller D_s, then D_t.

Search (`search`): bisection over the ordered list, each candidate encoded once (encoding is cheap next to
decoding); when even the cheapest tried does not fit, every other point is tried too (a clip's bytes depend on
its content), and if none fits the error names the smallest achievable rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from disco_train.codec.backends import used_qp
from disco_train.codec.container import Container, Geometry, pack
from disco_train.config import ConfigError
from disco_train.decoder.export import describe_settings


class RateError(ValueError):
    """No trained rate point fits the target; the message names the smallest achievable rate."""


@dataclass(frozen=True)
class Target:
    """A rate target: kbit/s at the clip's frame rate, or bits per pixel of the clip."""

    kbps: float | None = None
    bpp: float | None = None

    @classmethod
    def of(cls, kbps: float | None, bpp: float | None, keys: tuple[str, str] = ("target_kbps", "target_bpp")
           ) -> "Target | None":
        """The target given (None for none); both, or one <= 0, is a ConfigError naming `keys`."""
        if kbps is not None and bpp is not None:
            raise ConfigError(f"{keys[0]}, {keys[1]}: give one rate target, not both")
        for key, value in zip(keys, (kbps, bpp)):
            if value is not None and not value > 0:
                raise ConfigError(f"{key}: a rate target must be > 0, got {value}")
        return None if kbps is None and bpp is None else cls(kbps, bpp)

    def budget(self, frames: int, height: int, width: int, fps: float) -> int:
        """The most bits a file of this clip may have."""
        if self.kbps is not None:
            return int(self.kbps * 1000 * frames / float(fps))
        return int(self.bpp * frames * height * width)

    def rate(self, bits: int, frames: int, height: int, width: int, fps: float) -> float:
        """`bits` in the target's unit."""
        if self.kbps is not None:
            return bits * float(fps) / frames / 1000
        return bits / (frames * height * width)

    @property
    def unit(self) -> str:
        return "kbps" if self.kbps is not None else "bpp"

    def __str__(self) -> str:
        return f"target_{self.unit}={self.kbps if self.kbps is not None else self.bpp:g}"


def expected_bits(point: dict) -> tuple:
    """Sort key: more transmitted bits (expected) is larger; ties go to the smaller D_s, then D_t."""
    ds, dt, codec = int(point["ds"]), int(point["dt"]), point.get("codec", "")
    qp = used_qp(codec, point.get("qp", -1))
    if codec == "dcvc_rt":  # DCVC-RT's QP 63 is its highest quality
        fineness = qp
    else:  # x264/x265/vvenc: a lower QP, or CRF where the point codes at one, spends more bits
        fineness = -(qp if qp >= 0 else point.get("crf", 0))
    return 1 / (ds * ds * dt), fineness, -ds, -dt


def order(points: list[dict], table=None) -> list[dict]:
    """The points from worst to best expected quality (module docstring); `table`: an `rd_table.RDTable`."""
    by_bits = sorted(points, key=expected_bits)
    if table is None:
        return by_bits
    ranked = sorted(by_bits, key=table.quality)  # stable: equal quality keeps the order by bits
    kept, cheapest = [], float("inf")
    for p in reversed(ranked):  # from the best down: keep a point only if it costs less than every better one
        if table.bpp(p) < cheapest:
            kept.append(p)
            cheapest = table.bpp(p)
    return kept[::-1]


@dataclass
class Choice:
    """What the search found: the index of the point sent (in the ordered list), every size it measured."""

    index: int
    sizes: dict
    """{index: bits of the whole file} of every candidate encoded."""
    point: dict | None = None
    """The point sent (`send_best`)."""
    line: str = ""
    """What `summary` says of it (`send_best`)."""

    @property
    def tried(self) -> int:
        return len(self.sizes)


def search(count: int, bits_of: Callable[[int], int], budget: int) -> tuple[int | None, dict]:
    """(the highest index of 0..count-1 whose `bits_of` fits `budget`, or None; {index: bits} of every index
    tried). Bisection assumes the bits rise with the index; where it finds nothing it tries every index."""
    sizes: dict[int, int] = {}

    def size(i: int) -> int:
        if i not in sizes:
            sizes[i] = int(bits_of(i))
        return sizes[i]

    low, high, best = 0, count - 1, None
    while low <= high:
        mid = (low + high) // 2
        if size(mid) <= budget:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    if best is None:
        fitting = [i for i in range(count) if size(i) <= budget]
        best = max(fitting) if fitting else None
    return best, sizes


def choose(points: list[dict], bits_of: Callable[[int], int], target: Target, frames: int, height: int, width: int,
           fps: float) -> Choice:
    """Search the ordered `points` (`bits_of(i)`: the file's bits at points[i]) for `target` at a clip of
    frames × height × width at fps; RateError naming the smallest achievable rate when none fits."""
    budget = target.budget(frames, height, width, fps)
    best, sizes = search(len(points), bits_of, budget)
    if best is None:
        floor = min(sizes, key=sizes.get)
        rate = target.rate(sizes[floor], frames, height, width, fps)
        raise RateError(f"{target}: no trained rate point fits ({budget:,} bits for this clip); the smallest "
                        f"achievable is {rate:.6g} {target.unit} ({describe_settings([points[floor]])}: "
                        f"{sizes[floor]:,} bits)")
    return Choice(best, sizes)


def summary(target: Target, point: dict, choice: Choice, count: int, frames: int, height: int, width: int,
            fps: float) -> str:
    """One line: the point chosen, its bits and rate, the budget, the candidates tried."""
    bits, size = choice.sizes[choice.index], (frames, height, width, fps)
    return (f"{target}: {describe_settings([point])}, {bits:,} bits ({target.rate(bits, *size):.6g} {target.unit}; "
            f"budget {target.budget(*size):,} bits), {choice.tried} of {count} candidates tried")


def ordered_points(export: str | Path) -> list[dict]:
    """The export's trained points in `order`, by its rd_table.json when it has one."""
    from disco_train.decoder import rd_table
    from disco_train.decoder.export import read_manifest, trained_settings

    manifest = read_manifest(export, verify=False)
    points = trained_settings(manifest)
    return order(points, rd_table.read(export, manifest, points))


def send_best(points: list[dict], send: Callable[[dict], Container], target: Target, g: Geometry
              ) -> tuple[Container, Choice]:
    """(the container of the best of the ordered `points` that fits `target`, the choice with its point and
    `summary` line); `send(point)` codes the clip, of geometry `g` (`sender.geometry_for`), at a point."""
    sent: dict[int, Container] = {}

    def bits_of(i: int) -> int:
        sent[i] = send(points[i])
        return 8 * len(pack(sent[i]))

    size = (g.frames, g.height, g.width, float(g.fps))
    found = choose(points, bits_of, target, *size)
    found.point = points[found.index]
    found.line = summary(target, found.point, found, len(points), *size)
    return sent[found.index], found
