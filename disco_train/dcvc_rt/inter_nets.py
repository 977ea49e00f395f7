"""Sub-networks of the DCVC-RT inter model, key-compatible with the official `video_model.py`.

Concatenation orders matter for weight compatibility: encoder (feature, ctx), decoder
(up(y_hat), ctx), prior fusion (hyper, temporal), spatial prior (y_hat_0, params).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DepthConvBlock, ResidualBlockUpsample, ResidualBlockWithStride2, SubpelConv2x

G_CH_SRC_D = 3 * 8 * 8
G_CH_RECON = 320
G_CH_Y = 128
G_CH_Z = 128
G_CH_D = 256


def _dcbs(ch: int, n: int):
    return [DepthConvBlock(ch, ch) for _ in range(n)]


class FeatureExtractor(nn.Module):
    """Reference feature -> (ctx for en/decoder, ctx_t = first-stage feature * q_feature)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(*_dcbs(G_CH_D, 2))
        self.conv2 = nn.Sequential(*_dcbs(G_CH_D, 4))

    def forward(self, x, quant):
        x1 = self.conv1(x)
        return self.conv2(x1), x1 * quant


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(G_CH_SRC_D, G_CH_D, 1)
        self.conv2 = nn.Sequential(DepthConvBlock(G_CH_D * 2, G_CH_D), DepthConvBlock(G_CH_D, G_CH_D))
        self.conv3 = DepthConvBlock(G_CH_D, G_CH_D)
        self.down = nn.Conv2d(G_CH_D, G_CH_Y, 3, stride=2, padding=1)

    def forward(self, x, ctx, quant_step):
        feature = self.conv1(F.pixel_unshuffle(x, 8))
        feature = self.conv3(self.conv2(torch.cat((feature, ctx), dim=1)))
        return self.down(feature * quant_step)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = SubpelConv2x(G_CH_Y, G_CH_D, 3, padding=1)
        self.conv1 = nn.Sequential(DepthConvBlock(G_CH_D * 2, G_CH_D), *_dcbs(G_CH_D, 2))
        self.conv2 = nn.Conv2d(G_CH_D, G_CH_D, 1)

    def forward(self, x, ctx, quant_step):
        feature = self.conv1(torch.cat((self.up(x), ctx), dim=1))
        return self.conv2(feature) * quant_step


class ReconGeneration(nn.Module):
    """Decoder feature (1/8 res) -> clamped pixels."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(DepthConvBlock(G_CH_D, G_CH_RECON), *_dcbs(G_CH_RECON, 3))
        self.head = nn.Conv2d(G_CH_RECON, G_CH_SRC_D, 1)

    def forward(self, x, quant_step):
        out = self.head(self.conv(x) * quant_step)
        return torch.clamp(F.pixel_shuffle(out, 8), 0.0, 1.0)


class HyperEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            DepthConvBlock(G_CH_Y, G_CH_Z),
            ResidualBlockWithStride2(G_CH_Z, G_CH_Z),
            ResidualBlockWithStride2(G_CH_Z, G_CH_Z),
        )

    def forward(self, x):
        return self.conv(x)


class HyperDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            ResidualBlockUpsample(G_CH_Z, G_CH_Z),
            ResidualBlockUpsample(G_CH_Z, G_CH_Z),
            DepthConvBlock(G_CH_Z, G_CH_Y),
        )

    def forward(self, x):
        return self.conv(x)


class PriorFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(*_dcbs(G_CH_Y * 3, 3), nn.Conv2d(G_CH_Y * 3, G_CH_Y * 3, 1))

    def forward(self, x):
        return self.conv(x)


class SpatialPrior(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            DepthConvBlock(G_CH_Y * 4, G_CH_Y * 3),
            DepthConvBlock(G_CH_Y * 3, G_CH_Y * 3),
            nn.Conv2d(G_CH_Y * 3, G_CH_Y * 2, 1),
        )

    def forward(self, x):
        return self.conv(x)
