"""Natural-looking synthetic test video: textured scenes under a moving camera, for codec checks without datasets.

Flat shapes on flat backgrounds (the demo corpus) are the easy case of every codec — a few blocks and a motion
vector — and say nothing about which codec is better. Real footage has (1) a power-law spectrum (amplitude about
1/f: detail at every scale), (2) occlusion edges between surfaces of different texture, and (3) camera motion
that is not a whole number of pixels per frame, plus sensor noise. This scene has all four:

- a "dead leaves" layer: discs with power-law radii (density ∝ r^-3, the scale-invariant case) dropped in
  front of each other, each with its own muted colour: sharp occlusion edges at every scale;
- multiplied by 1/f-amplitude noise (random phases) for texture inside the surfaces;
- a camera that pans at a sub-pixel velocity and zooms slowly, sampled with bilinear interpolation from a canvas
  larger than the frame, and one textured object that moves against the camera;
- Gaussian sensor noise (σ = 1.5 levels) on every frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pink_noise(rng: np.random.Generator, height: int, width: int, exponent: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-variance noise with amplitude spectrum 1/f^exponent."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** exponent
    spectrum[0, 0] = 0
    noise = np.fft.irfft2(spectrum, s=(height, width))
    return noise / noise.std()


def _surface_colour(rng: np.random.Generator) -> np.ndarray:
    """A muted colour: surfaces in real scenes vary far more in brightness than in hue."""
    return (rng.uniform(0.15, 0.85) + rng.normal(0, 0.08, size=3)).clip(0.02, 0.98)


def dead_leaves(rng: np.random.Generator, height: int, width: int, coverage: float = 3.0) -> np.ndarray:
    """RGB float [H,W,3] in 0..1: discs of power-law radius in muted colours, later ones in front, enough of them
    to cover the canvas `coverage` times over (so little of the farthest surface shows)."""
    r_min = float(np.clip(max(height, width) / 16, 1.5, 6.0))  # 6 px, less on tiny canvases
    r_max = max(2 * r_min, max(height, width) / 4)
    # density ∝ r^-3 on [r_min, r_max]: mean disc area = 2π r_min² ln(r_max / r_min) (to first order)
    mean_area = 2 * np.pi * r_min ** 2 * np.log(r_max / r_min)
    discs = int(coverage * height * width / mean_area)
    u = rng.uniform(size=discs)  # inverse-CDF sampling of the r^-3 density
    radii = 1 / np.sqrt(1 / r_min ** 2 - u * (1 / r_min ** 2 - 1 / r_max ** 2))
    canvas = np.empty((height, width, 3))
    canvas[:] = _surface_colour(rng)  # the farthest surface, behind every disc
    yy, xx = np.mgrid[0:height, 0:width]
    for r in radii:  # in random order of size, as objects stand in front of each other in a scene
        cy, cx = rng.uniform(-r, height + r), rng.uniform(-r, width + r)
        y0, y1 = int(max(0, cy - r)), int(min(height, cy + r + 1))
        x0, x1 = int(max(0, cx - r)), int(min(width, cx + r + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        inside = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        canvas[y0:y1, x0:x1][inside] = _surface_colour(rng)
    return canvas


def _bilinear(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """image [H,W,C] sampled at float coordinates (clamped to the image)."""
    h, w = image.shape[:2]
    ys, xs = np.clip(ys, 0, h - 1.001), np.clip(xs, 0, w - 1.001)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured still scene, RGB float 0..255."""
    shared = pink_noise(rng, height, width)[..., None]  # texture is mostly in brightness ...
    tint = np.stack([pink_noise(rng, height, width, exponent=1.5) for _ in range(3)], -1)  # ... a little in hue
    texture = 1 + (0.22 * shared + 0.04 * tint).clip(-0.6, 0.6)
    return (dead_leaves(rng, height, width) * texture * 255).clip(0, 255)


def natural_video(frames: int, height: int, width: int, seed: int = 0, speed: float = 1.7) -> np.ndarray:
    """uint8 [T,H,W,3]: the camera pans across a textured scene at `speed` px/frame (direction and a slow zoom
    from the seed), with an object moving the other way and sensor noise."""
    rng = np.random.default_rng(seed)
    margin = int(speed * frames) + 32
    canvas = scene(rng, height + 2 * margin, width + 2 * margin)
    angle = rng.uniform(0, 2 * np.pi)
    vy, vx = speed * np.sin(angle), speed * np.cos(angle)
    zoom = rng.uniform(-0.002, 0.002)  # relative scale change per frame
    radius = min(height, width) / 6
    thing = scene(rng, int(2 * radius) + 2, int(2 * radius) + 2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        scale = 1 + zoom * t
        ys = margin + cy + (yy - cy) * scale + vy * t
        xs = margin + cx + (xx - cx) * scale + vx * t
        frame = _bilinear(canvas, ys, xs)
        oy, ox = cy - 0.8 * vy * t * 1.5, cx - 0.8 * vx * t * 1.5  # the object moves against the camera
        inside = (yy - oy) ** 2 + (xx - ox) ** 2 <= radius ** 2
        frame[inside] = _bilinear(thing, (yy - oy + radius)[inside], (xx - ox + radius)[inside])
        frame += rng.normal(0, 1.5, frame.shape)
        out[t] = frame.clip(0, 255).round().astype(np.uint8)
    return out


def write_natural_set(folder: str | Path, videos: int = 3, frames: int = 33, height: int = 256, width: int = 256,
                      fps: float = 25.0, seed: int = 0) -> list[Path]:
    """`videos` lossless FFV1 .mkv clips of natural-looking content (different scenes and motion per seed)."""
    from disco_train.io.video import write_lossless

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(videos):
        path = folder / f"natural_{i:02d}.mkv"
        write_lossless(path, natural_video(frames, height, width, seed=seed + i), fps)
        paths.append(path)
    return paths
