"""Small Lightning callbacks."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class LossHistory(L.Callback):
    """Keeps every training loss so the run can end with first/last figures (and tests can read them)."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs  # None/{} when the step was skipped
        if loss is not None:
            self.losses.append(float(loss.detach()))

    def summary(self, window: int = 20, global_step: int | None = None) -> str:
        if not self.losses:
            return "no training step ran" + ("" if global_step is None else
                                             f": the run was already at step {global_step} (trainer.max_steps)")
        w = min(window, max(1, len(self.losses) // 2))
        first, last = self.losses[:w], self.losses[-w:]
        return (f"steps {len(self.losses)}: first loss {self.losses[0]:.4f}, last loss {self.losses[-1]:.4f}; "
                f"mean of first {w} {sum(first) / w:.4f} -> mean of last {w} {sum(last) / w:.4f}")


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar counting optimizer steps towards `trainer.max_steps` ("Epoch 0" counted batches of an epoch
    and lost its total and ETA on a resume mid-epoch: `21/?`). A resumed run starts at its step; the ETA uses only
    the steps of this process."""

    def on_train_epoch_start(self, trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._to_steps(trainer)

    def on_train_start(self, trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self._to_steps(trainer)

    def _to_steps(self, trainer) -> None:
        bar = self.train_progress_bar
        if trainer.max_steps > 0 and bar is not None:
            bar.reset(total=trainer.max_steps)
            bar.initial = bar.n = trainer.global_step
            bar.set_description(f"train, epoch {trainer.current_epoch}")
            bar.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.max_steps <= 0:
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar
        if bar is not None and self._should_update(trainer.global_step, bar.total):
            bar.n = trainer.global_step
            bar.set_postfix(self.get_metrics(trainer, pl_module))
