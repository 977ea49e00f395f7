"""DCVC-RT inter (video P-frame) model `DMC`, key-compatible with the official `video_model.py`.

The decoded-picture buffer holds one reference: a pixel frame (after an I-frame or a reset) and/or
the previous decoder feature. P-frame QPs are base QP + [0, 8, 4][fa_idx], so the banks have
64 + 8 = 72 rows.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .entropy import BitEstimator, round_and_clamp
from .inter_nets import (G_CH_D, G_CH_RECON, G_CH_SRC_D, G_CH_Z, Decoder, Encoder, FeatureExtractor,
                         HyperDecoder, HyperEncoder, PriorFusion, ReconGeneration, SpatialPrior)
from .layers import DepthConvBlock, ResidualBlockWithStride2
from .padding import pad_for_y
from .prior import prior_2x

QP_SHIFT = (0, 8, 4)
EXTRA_QP = max(QP_SHIFT)
QP_NUM = 64 + EXTRA_QP
# Hierarchical QP offsets over poc % 8 -> fa_idx; effective offsets [0, 8, 0, 4, 0, 4, 0, 4].
INDEX_MAP = (0, 1, 0, 2, 0, 2, 0, 2)


class DMC(nn.Module):
    groups = 2

    def __init__(self):
        super().__init__()
        self.bit_estimator_z = BitEstimator(QP_NUM, G_CH_Z)
        self.feature_adaptor_i = DepthConvBlock(G_CH_SRC_D, G_CH_D)
        self.feature_adaptor_p = nn.Conv2d(G_CH_D, G_CH_D, 1)
        self.feature_extractor = FeatureExtractor()
        self.encoder = Encoder()
        self.hyper_encoder = HyperEncoder()
        self.hyper_decoder = HyperDecoder()
        self.temporal_prior_encoder = ResidualBlockWithStride2(G_CH_D, 128 * 2)
        self.y_prior_fusion = PriorFusion()
        self.y_spatial_prior = SpatialPrior()
        self.decoder = Decoder()
        self.recon_generation_net = ReconGeneration()
        self.q_encoder = nn.Parameter(torch.ones((QP_NUM, G_CH_D, 1, 1)))
        self.q_decoder = nn.Parameter(torch.ones((QP_NUM, G_CH_D, 1, 1)))
        self.q_feature = nn.Parameter(torch.ones((QP_NUM, G_CH_D, 1, 1)))
        self.q_recon = nn.Parameter(torch.ones((QP_NUM, G_CH_RECON, 1, 1)))
        self.ref_frame = None    # padded pixels in [0,1] or None
        self.ref_feature = None  # previous decoder feature or None

    # ---- QP schedule -------------------------------------------------------------------------
    @staticmethod
    def check_qp(qp: int):
        if not 0 <= int(qp) < QP_NUM:
            raise ValueError(f"inter qp must be in 0..{QP_NUM - 1}, got {qp}")

    @staticmethod
    def shift_qp(qp: int, fa_idx: int) -> int:
        return qp + QP_SHIFT[fa_idx]

    @staticmethod
    def frame_qp(qp_p: int, poc: int) -> int:
        """QP of P-frame `poc`: qp_p + [0,8,0,4,0,4,0,4][poc % 8] (frames 1,2,3 -> +8, +0, +4)."""
        return qp_p + QP_SHIFT[INDEX_MAP[poc % 8]]

    # ---- reference buffer --------------------------------------------------------------------
    def clear_dpb(self):
        self.ref_frame, self.ref_feature = None, None

    def add_ref_frame(self, feature=None, frame=None):
        self.ref_feature, self.ref_frame = feature, frame

    def reset_ref_feature(self):
        self.ref_feature = None

    def prepare_feature_adaptor_i(self, last_qp: int):
        """Encoder side of a reset: rebuild pixels from the stored feature, then drop the feature."""
        if self.ref_frame is None:
            self._require_reference()
            q_recon = self.q_recon[last_qp:last_qp + 1]
            self.ref_frame = self.recon_generation_net(self.ref_feature, q_recon)
        self.reset_ref_feature()

    def _require_reference(self):
        if self.ref_frame is None and self.ref_feature is None:
            raise RuntimeError("DMC has no reference: code an I-frame and call add_ref_frame first")

    def apply_feature_adaptor(self):
        self._require_reference()
        if self.ref_feature is None:
            return self.feature_adaptor_i(F.pixel_unshuffle(self.ref_frame, 8))
        return self.feature_adaptor_p(self.ref_feature)

    # ---- coding ------------------------------------------------------------------------------
    def res_prior_param_decoder(self, z_hat, ctx_t):
        temporal = self.temporal_prior_encoder(ctx_t)
        H, W = temporal.shape[-2:]
        hierarchical = self.hyper_decoder(z_hat)[:, :, :H, :W].contiguous()
        return self.y_prior_fusion(torch.cat((hierarchical, temporal), dim=1))

    def _context(self, qp, trace):
        ref_feature = self.apply_feature_adaptor()
        ctx, ctx_t = self.feature_extractor(ref_feature, self.q_feature[qp:qp + 1])
        if trace is not None:
            trace.update(ref_feature=ref_feature, ctx=ctx, ctx_t=ctx_t)
        return ctx, ctx_t

    def compress(self, x, qp, source, trace=None, with_recon=False):
        """Encode one padded P-frame; stores the new feature as the reference.

        Like the official encoder it builds no pixels (22 convolutions of recon_generation_net saved):
        the next P-frame only needs the feature, and a reset rebuilds pixels from it
        (prepare_feature_adaptor_i). with_recon=True also returns x_hat."""
        self.check_qp(qp)
        ctx, ctx_t = self._context(qp, trace)
        y = self.encoder(x, ctx, self.q_encoder[qp:qp + 1])
        z = self.hyper_encoder(pad_for_y(y))
        z_hat = round_and_clamp(z)
        params = self.res_prior_param_decoder(z_hat, ctx_t)
        if trace is not None:
            trace.update(y=y, z=z, z_hat=z_hat, params=params)
        y_hat = prior_2x(params, self.y_spatial_prior, source, y=y, trace=trace)
        feature = self.decoder(y_hat, ctx, self.q_decoder[qp:qp + 1])
        x_hat = self.recon_generation_net(feature, self.q_recon[qp:qp + 1]) if with_recon else None
        if trace is not None:
            trace.update(y_hat=y_hat, feature=feature)
        self.add_ref_frame(feature, x_hat)
        return {"z_hat": z_hat, "y_hat": y_hat, "feature": feature, "x_hat": x_hat}

    def decompress(self, z_hat, source, qp):
        """Decode one P-frame from its z_hat and a y step source; returns the padded x_hat."""
        self.check_qp(qp)
        ctx, ctx_t = self._context(qp, None)
        params = self.res_prior_param_decoder(z_hat, ctx_t)
        y_hat = prior_2x(params, self.y_spatial_prior, source)
        feature = self.decoder(y_hat, ctx, self.q_decoder[qp:qp + 1])
        x_hat = self.recon_generation_net(feature, self.q_recon[qp:qp + 1])
        self.add_ref_frame(feature, x_hat)
        return {"y_hat": y_hat, "feature": feature, "x_hat": x_hat}
