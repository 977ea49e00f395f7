"""DCVC-RT intra (image) model `DMCI`, key-compatible with the official `image_model.py`."""

import torch
import torch.nn.functional as F
from torch import nn

from .entropy import BitEstimator, round_and_clamp
from .layers import DepthConvBlock, ResidualBlockUpsample, ResidualBlockWithStride2
from .padding import pad_for_y
from .prior import prior_4x

G_CH_SRC = 3 * 8 * 8  # pixel_unshuffle(8) of 3 channels
G_CH_ENC_DEC = 368
QP_NUM = 64


class IntraEncoder(nn.Module):
    def __init__(self, N: int):
        super().__init__()
        self.enc_1 = DepthConvBlock(G_CH_SRC, G_CH_ENC_DEC)
        self.enc_2 = nn.Sequential(
            *[DepthConvBlock(G_CH_ENC_DEC, G_CH_ENC_DEC) for _ in range(6)],
            nn.Conv2d(G_CH_ENC_DEC, N, 3, stride=2, padding=1),
        )

    def forward(self, x, quant_step):
        out = self.enc_1(F.pixel_unshuffle(x, 8))
        return self.enc_2(out * quant_step)


class IntraDecoder(nn.Module):
    def __init__(self, N: int):
        super().__init__()
        self.dec_1 = nn.Sequential(
            ResidualBlockUpsample(N, G_CH_ENC_DEC),
            *[DepthConvBlock(G_CH_ENC_DEC, G_CH_ENC_DEC) for _ in range(12)],
        )
        self.dec_2 = DepthConvBlock(G_CH_ENC_DEC, G_CH_SRC)

    def forward(self, x, quant_step):
        out = self.dec_1(x) * quant_step
        return F.pixel_shuffle(self.dec_2(out), 8)


class DMCI(nn.Module):
    """Intra model. QP 0 is the lowest quality, 63 the highest (as the DCVC-RT authors confirm).

    Input: YCbCr 4:4:4 in [0,1], NCHW, H and W multiples of 16 (see padding.pad_frame).
    """

    groups = 4

    def __init__(self, N: int = 256, z_channel: int = 128):
        super().__init__()
        self.z_channel = z_channel
        self.bit_estimator_z = BitEstimator(QP_NUM, z_channel)
        self.enc = IntraEncoder(N)
        self.hyper_enc = nn.Sequential(
            DepthConvBlock(N, z_channel),
            ResidualBlockWithStride2(z_channel, z_channel),
            ResidualBlockWithStride2(z_channel, z_channel),
        )
        self.hyper_dec = nn.Sequential(
            ResidualBlockUpsample(z_channel, z_channel),
            ResidualBlockUpsample(z_channel, z_channel),
            DepthConvBlock(z_channel, N),
        )
        self.y_prior_fusion = nn.Sequential(
            DepthConvBlock(N, N * 2),
            DepthConvBlock(N * 2, N * 2),
            DepthConvBlock(N * 2, N * 2),
            nn.Conv2d(N * 2, N * 2 + 2, 1),
        )
        self.y_spatial_prior_reduction = nn.Conv2d(N * 2 + 2, N, 1)
        self.y_spatial_prior_adaptor_1 = DepthConvBlock(N * 2, N * 2, force_adaptor=True)
        self.y_spatial_prior_adaptor_2 = DepthConvBlock(N * 2, N * 2, force_adaptor=True)
        self.y_spatial_prior_adaptor_3 = DepthConvBlock(N * 2, N * 2, force_adaptor=True)
        self.y_spatial_prior = nn.Sequential(
            DepthConvBlock(N * 2, N * 2),
            DepthConvBlock(N * 2, N * 2),
            DepthConvBlock(N * 2, N * 2),
            nn.Conv2d(N * 2, N * 2, 1),
        )
        self.dec = IntraDecoder(N)
        self.q_scale_enc = nn.Parameter(torch.ones((QP_NUM, G_CH_ENC_DEC, 1, 1)))
        self.q_scale_dec = nn.Parameter(torch.ones((QP_NUM, G_CH_ENC_DEC, 1, 1)))

    @staticmethod
    def check_qp(qp: int):
        if not 0 <= int(qp) < QP_NUM:
            raise ValueError(f"intra qp must be in 0..{QP_NUM - 1}, got {qp}")

    def analyse(self, x, qp, trace=None):
        """x (padded) -> y (latent) and z_hat (rounded hyper-latent)."""
        self.check_qp(qp)
        y = self.enc(x, self.q_scale_enc[qp:qp + 1])
        z = self.hyper_enc(pad_for_y(y))
        z_hat = round_and_clamp(z)
        if trace is not None:
            trace.update(y=y, z=z, z_hat=z_hat)
        return y, z_hat

    def prior_params(self, z_hat, y_size):
        params = self.y_prior_fusion(self.hyper_dec(z_hat))
        return params[:, :, :y_size[0], :y_size[1]].contiguous()

    def code_latent(self, params, source, y=None, trace=None):
        adaptors = (self.y_spatial_prior_adaptor_1, self.y_spatial_prior_adaptor_2,
                    self.y_spatial_prior_adaptor_3)
        return prior_4x(params, self.y_spatial_prior_reduction, adaptors, self.y_spatial_prior,
                        source, y=y, trace=trace)

    def synthesise(self, y_hat, qp):
        """Decoder network output before the [0,1] clamp, at the padded size."""
        self.check_qp(qp)
        return self.dec(y_hat, self.q_scale_dec[qp:qp + 1])

    def compress(self, x, qp, source, trace=None):
        """Encoder path. `source` is a prior.QuantizeSteps collecting the symbols to write."""
        y, z_hat = self.analyse(x, qp, trace)
        params = self.prior_params(z_hat, y.shape[-2:])
        if trace is not None:
            trace["params"] = params
        y_hat = self.code_latent(params, source, y=y, trace=trace)
        x_hat = self.synthesise(y_hat, qp)
        if trace is not None:
            trace.update(y_hat=y_hat, x_hat_raw=x_hat)
        return {"z_hat": z_hat, "y_hat": y_hat, "x_hat": x_hat.clamp(0, 1)}

    def decompress(self, z_hat, source, qp, y_size):
        """Decoder path. `source` is a prior.DecodeSteps reading symbols from the bitstream."""
        self.check_qp(qp)
        params = self.prior_params(z_hat, y_size)
        y_hat = self.code_latent(params, source)
        return {"y_hat": y_hat, "x_hat": self.synthesise(y_hat, qp).clamp(0, 1)}
