"""Small Lightning callbacks."""

from __future__ import annotations

import lightning as L


class LossHistory(L.Callback):
    """Keeps every training loss so the run can end with first/last figures (and tests can read them)."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs  # None/{} when the step was skipped
        if loss is not None:
            self.losses.append(float(loss.detach()))

    def summary(self, window: int = 20) -> str:
        if not self.losses:
            return "no training step ran"
        w = min(window, max(1, len(self.losses) // 2))
        first, last = self.losses[:w], self.losses[-w:]
        return (f"steps {len(self.losses)}: first loss {self.losses[0]:.4f}, last loss {self.losses[-1]:.4f}; "
                f"mean of first {w} {sum(first) / w:.4f} -> mean of last {w} {sum(last) / w:.4f}")
