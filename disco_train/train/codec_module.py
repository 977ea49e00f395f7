"""SketchCodecModule: DCVC-RT finetuned on sketch videos (DiSCo §4.2 "Sketch codec"), task `sketch_dcvc`.

Stage `intra` trains DMCI on every frame of the batch as an image (DMC frozen); stage `inter` trains DMC on
P-frame unrolls with DMCI frozen: non-cascaded (reference detached between frames; on 2 frames the reference is
the ground-truth frame 0) for `stage.noncascaded_steps`, then cascaded (one backward through the unroll). The
math is `codecs.dcvc_rt.rd` and `train_forward`. Non-finite gradient norms skip the optimizer step (counted and
logged as train/skipped_steps). The module holds both networks, so a checkpoint exports to the official format;
the run ends by exporting to <run>/export (the folder a next stage names in `model.init_from`).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from disco_train.dcvc_rt import rd
from disco_train.dcvc_rt import train_forward as tf
from disco_train.dcvc_rt.export import export_models
from disco_train.dcvc_rt.inter import DMC
from disco_train.dcvc_rt.intra import DMCI
from disco_train.dcvc_rt.loading import checkpoint_path, load_model
from disco_train.config import ConfigError
from disco_train.config import CodecModelConfig, SketchCodecConfig
from disco_train.train.optim import configure_adamw


def weight_files(cfg: CodecModelConfig) -> list[Path]:
    """The checkpoint files this model config reads ([] for init=random without init_from)."""
    if cfg.init_from:
        return [checkpoint_path(kind, cfg.init_from) for kind in ("intra", "inter")]
    if cfg.init == "official":
        return [checkpoint_path(kind, cfg.ckpt_dir) for kind in ("intra", "inter")]
    return []


def check_weights(cfg: CodecModelConfig) -> None:
    """Fail before anything loads when a checkpoint the config needs is missing."""
    missing = [p for p in weight_files(cfg) if not p.is_file()]
    if not missing:
        return
    if cfg.init_from:
        raise ConfigError(f"model.init_from: {missing[0]} not found; point it at the export folder of the previous "
                          f"stage (<run>/export, or `python -m disco_train dcvc-rt export ckpt=... out=...`)")
    raise ConfigError(f"model.init=official: {missing[0]} not found. Download the DCVC-RT checkpoints "
                      f"(microsoft/DCVC, DCVC-family/DCVC-RT/README.md) into {cfg.ckpt_dir}/ (see "
                      f"checkpoints/README.md), or use model.init=random for a debug run")


def load_networks(cfg: CodecModelConfig, seed: int) -> tuple[DMCI, DMC]:
    """DMCI and DMC per the model config: strict official/exported checkpoints, or seeded random init."""
    check_weights(cfg)
    if cfg.init_from or cfg.init == "official":
        folder = cfg.init_from or cfg.ckpt_dir
        return load_model("intra", ckpt_dir=folder), load_model("inter", ckpt_dir=folder)
    torch.manual_seed(seed)
    return DMCI(), DMC()


class SketchCodecModule(L.LightningModule):
    def __init__(self, cfg: SketchCodecConfig, networks: tuple[DMCI, DMC] | None = None):
        super().__init__()
        self.cfg = cfg
        self.intra, self.inter = networks or load_networks(cfg.model, cfg.seed)
        self.trained = self.intra if cfg.stage.train == "intra" else self.inter
        self.frozen = self.inter if cfg.stage.train == "intra" else self.intra
        self.frozen.requires_grad_(False).eval()
        self.trained.requires_grad_(True)
        self.skipped_steps = 0

    def describe(self) -> str:
        m, s = self.cfg.model, self.cfg.stage
        source = m.init_from or (m.ckpt_dir if m.init == "official" else f"random (seed {self.cfg.seed})")
        trained = sum(p.numel() for p in self.trained.parameters())
        return (f"stage {s.train}: {type(self.trained).__name__} trained ({trained:,} parameters), "
                f"{type(self.frozen).__name__} frozen; init {source}; base QP {s.qp_min}..{s.qp_max}")

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.eval()  # frozen network stays in inference mode (Lightning calls train() on the whole module)
        return self

    def _draw_qp(self, n: int) -> torch.Tensor:
        s = self.cfg.stage
        return torch.randint(s.qp_min, s.qp_max + 1, (n,), device=self.device)

    # ---- losses ---------------------------------------------------------------------------------------------
    def intra_loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Every frame of [B,T,3,H,W] is an image with its own random QP; λ from the image range."""
        x = frames.flatten(0, 1)
        qp = self._draw_qp(x.shape[0])
        out = tf.intra_forward(self.intra, x, qp)
        dist, rate = rd.distortion(out["x_hat"], x), tf.bpp(out, *x.shape[-2:])
        loss = rd.rd_loss(rd.lambda_for_qp(qp.cpu(), "image").to(x), dist, rate)
        return loss, {"bpp": rate.mean(), "distortion": dist.mean(), "psnr_y": _psnr_y(out["x_hat"], x)}

    def inter_loss(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """P-frame unroll of the first n frames; mean over P-frames of λ_video(base QP) · w(poc) · D + bpp."""
        n, cascaded = self.cfg.unroll_frames(self.global_step)
        frames = frames[:, :n]
        qp = self._draw_qp(frames.shape[0])
        lmbda = rd.lambda_for_qp(qp.cpu(), "video").to(frames)
        self.inter.clear_dpb()
        if n == 2 and not cascaded:
            self.inter.add_ref_frame(None, frames[:, 0])  # DCVC-UF: 2-frame non-cascaded uses the true frame 0
        else:
            with torch.no_grad():
                i_frame = tf.intra_forward(self.intra, frames[:, 0], qp, noise=False)["x_hat"]
            self.inter.add_ref_frame(None, i_frame)
        losses, rates, dists, psnrs = [], [], [], []
        for poc in range(1, n):
            x = frames[:, poc]
            out = tf.inter_forward(self.inter, x, tf.frame_qp(qp, poc))
            if not cascaded:
                self.inter.add_ref_frame(out["feature"].detach(), out["x_hat"].detach())
            dist, rate = rd.distortion(out["x_hat"], x), tf.bpp(out, *x.shape[-2:])
            losses.append(rd.rd_loss(lmbda, dist, rate, rd.p_frame_weight(poc)))
            rates.append(rate.mean()), dists.append(dist.mean()), psnrs.append(_psnr_y(out["x_hat"], x))
        self.inter.clear_dpb()
        stats = {"bpp": torch.stack(rates).mean(), "distortion": torch.stack(dists).mean(),
                 "psnr_y": torch.stack(psnrs).mean(), "frames": float(n), "cascaded": float(cascaded)}
        return torch.stack(losses).mean(), stats

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        frames = batch["frames"]
        loss, stats = (self.intra_loss if self.cfg.stage.train == "intra" else self.inter_loss)(frames)
        b = frames.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=b)
        for key, value in stats.items():
            self.log(f"train/{key}", value, prog_bar=key == "bpp", batch_size=b)
        self.log("train/skipped_steps", float(self.skipped_steps), batch_size=b)
        return loss

    # ---- optimisation ---------------------------------------------------------------------------------------
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """Clip the global norm; a non-finite norm drops all gradients, so AdamW skips every parameter this step
        (no moment or weight update, as DCVC-UF's `continue`). Lightning calls this in every automatic step."""
        params = [p for p in self.trained.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, gradient_clip_val or float("inf"))
        if not torch.isfinite(norm):
            self.skipped_steps += 1
            for p in params:
                p.grad = None

    def configure_optimizers(self):
        return configure_adamw(self.trained.parameters(), self.cfg.optim, self.cfg.trainer.max_steps)

    # ---- export ---------------------------------------------------------------------------------------------
    def export(self, out_dir) -> Path:
        info = {"stage": self.cfg.stage.train, "global_step": int(self.global_step),
                "skipped_steps": self.skipped_steps, "init": self.cfg.model.init_from or self.cfg.model.init}
        return export_models(self.intra, self.inter, out_dir, info)

    def on_train_end(self) -> None:
        if self.trainer.is_global_zero:
            out = self.export(Path(self.cfg.output_dir) / self.cfg.name / "export")
            print(f"exported the finetuned codec to {out}")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sketch_dcvc"] = {"stage": self.cfg.stage.train, "skipped_steps": self.skipped_steps}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.skipped_steps = int(checkpoint.get("sketch_dcvc", {}).get("skipped_steps", 0))


def _psnr_y(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean PSNR of the Y plane in dB: 10 log10(1 / mse_Y), mse floored at 1e-10 (100 dB)."""
    mse = ((x_hat[:, 0] - x[:, 0]) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return (-10.0 * torch.log10(mse)).mean().detach()


def build_module(cfg: SketchCodecConfig) -> SketchCodecModule:
    return SketchCodecModule(cfg)


def build_datamodule(cfg: SketchCodecConfig):
    """Checks the weights the module will need first (train.py builds the data before the model)."""
    from datamodules.sketch_clips import SketchClipDataModule

    check_weights(cfg.model)
    return SketchClipDataModule(cfg.data, seed=cfg.seed)
