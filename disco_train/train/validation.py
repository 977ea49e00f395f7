"""Validation by sampling: every N steps, reconstruct held-out clips and log quality and side-by-side videos.

Runs as a callback on a fixed set of held-out samples (loaded once), so the numbers of successive validations
compare the same clips with the same noise. Outputs per validation, under <run>/samples/step<N>/:
`<key>.mp4` (original | degraded | reconstruction, side by side) and `<key>.png` (their middle frames).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from disco_train.metrics.fidelity import psnr_video, ssim_video


def side_by_side(*videos: np.ndarray) -> np.ndarray:
    """uint8 [T,H,W,3] clips of equal shape -> one [T,H,ΣW,3] clip."""
    return np.concatenate(videos, axis=2)


def shown_reference(cond: np.ndarray, shape, ds: int) -> np.ndarray:
    """The degraded clip at the target's size for the side-by-side: a compact reference (coded size / ds, padded)
    is cropped and upsampled as the full reference would be (`modalities.degrade.restore`)."""
    from disco_train.modalities.degrade import restore

    t, h, w = shape[:3]
    return cond if cond.shape == tuple(shape) else restore(cond[:, :h // ds, :w // ds], h, w, 1, t)


def load_val_samples(cfg, count: int) -> list[dict]:
    """The first `count` held-out samples of data.val_shards, decoded like training samples."""
    from datamodules.shards import decode_sample, expand_shards
    from datamodules.tars import tar_samples
    from disco_train.codec.container import Pattern

    urls = expand_shards(cfg.data.val_shards, key="data.val_shards")
    samples, errors = [], []
    for raw in tar_samples(({"url": u} for u in urls), errors.append, cfg.data.max_member_bytes):
        samples.append(decode_sample(raw, cfg.data, cfg.condition.fill, cfg.condition.aux,
                                     pattern=Pattern.of_condition(cfg.condition), reference=cfg.condition.reference))
        if len(samples) == count:
            break
    if not samples:
        raise ValueError(f"data.val_shards={cfg.data.val_shards}: no sample could be read {errors[:1]}")
    return samples


def _batch(sample: dict, device) -> dict:
    """One decoded sample as a batch of one on `device`, collated as the training loader does."""
    from datamodules.shards import collate

    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collate([sample]).items()}


def _optional_lpips(weights_dir: str = "checkpoints/metrics"):
    """LPIPS (AlexNet) when its weight files are present; validation logs it only then."""
    from disco_train.metrics.perceptual import TorchFrameMetric, load_lpips

    try:
        model = load_lpips("alex", weights_dir)
    except FileNotFoundError as err:
        print(f"validation: LPIPS off ({err})")
        return None
    return TorchFrameMetric(model)


class SampleValidation(L.Callback):
    def __init__(self, cfg, out_dir: Path):
        self.cfg, self.out_dir = cfg, Path(out_dir)
        self.samples: list[dict] | None = None
        self.lpips = _optional_lpips()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.cfg.validation.every_n_steps
        if every and trainer.global_step % every == 0 and trainer.is_global_zero:
            self.run(trainer, pl_module)

    @torch.no_grad()
    def run(self, trainer, module) -> dict[str, float]:
        vc = self.cfg.validation
        if self.samples is None:
            self.samples = load_val_samples(self.cfg, vc.num_samples)
        folder = self.out_dir / "samples" / f"step{trainer.global_step:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for sample in self.samples:
            recon = module.reconstruct(_batch(sample, module.device), vc.steps, vc.guidance, vc.seed,
                                       vc.negative_prompt, vc.schedule)[0].cpu().numpy()
            ref = sample["video"].numpy()
            cond = shown_reference(sample["cond"].numpy(), ref.shape, sample.get("ds", 1))
            row = {"psnr": psnr_video(ref, recon), "ssim": ssim_video(ref, recon), "bpp": sample["bpp"]}
            if self.lpips is not None:
                row["lpips"] = float(self.lpips(ref, recon).mean())
            rows.append(row)
            self._write(folder, sample, (ref, cond, recon), row, trainer)
        metrics = {f"val/{k}": float(np.mean([r[k] for r in rows])) for k in rows[0]}
        # Straight to the logger: `self.log` from a callback is throttled to log_every_n_steps.
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
            logger.save()
        print(f"validation @ step {trainer.global_step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        return metrics

    def _write(self, folder: Path, sample: dict, clips: tuple, row: dict, trainer) -> None:
        """The side-by-side clip at the source's frame rate, and a labelled PNG of the middle frames."""
        from disco_train.io.video import write_video

        key, fps, video = sample["key"], float(sample["fps"]), side_by_side(*clips)
        write_video(folder / f"{key}.mp4", video, fps, crf=18)
        scores = ", ".join(f"{k.upper()} {row[k]:.3f}" for k in ("psnr", "ssim", "lpips") if k in row)
        labels = ["original", f"degraded ({row['bpp']:.4f} bpp)", f"reconstruction: {scores}"]
        labelled_panel([c[len(c) // 2] for c in clips], labels).save(folder / f"{key}.png")
        logger = trainer.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            import wandb

            logger.experiment.log({f"val/video/{key}": wandb.Video(video.transpose(0, 3, 1, 2), fps=round(fps)),
                                   "trainer/global_step": trainer.global_step})


def labelled_panel(frames: list[np.ndarray], labels: list[str], min_width: int = 256):
    """Frames side by side, each under its label. Frames narrower than `min_width` are enlarged by an integer
    factor (nearest neighbour: no smoothing added to what is judged) so the labels fit."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = frames[0].shape[:2]
    scale = max(1, -(-min_width // w))
    font = ImageFont.load_default(size=14)
    band = 24
    panel = Image.new("RGB", (len(frames) * w * scale, h * scale + band), "white")
    draw = ImageDraw.Draw(panel)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        tile = Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST)
        panel.paste(tile, (i * w * scale, band))
        draw.text((i * w * scale + 4, 4), label, fill="black", font=font)
    return panel
