"""`train.py` on CPU ranks under DeepSpeed (DS_ACCELERATOR=cpu, gloo): one rank of a torchrun launch from
tests/test_deepspeed.py. Test-only; it runs the production strategy (`disco_train.train.zero`) with the DeepSpeed
config Lightning builds from the recipe, and lifts only the checks that demand CUDA:

1. `DeepSpeedStrategy.setup_environment` refuses every accelerator but `CUDAAccelerator`. What it protects is
   DeepSpeed's CUDA machinery (NCCL, fused CUDA optimizers); with DS_ACCELERATOR=cpu DeepSpeed uses its CPU
   accelerator and a gloo group, and the optimizer is our torch AdamW (`configure_optimizers`), so no CUDA kernel is
   ever asked for. We run the parent's (DDPStrategy) setup_environment, exactly what follows the check on GPUs.
2. Lightning identifies a rank's device by its index, as CUDA numbers GPUs: `setup_distributed` checks that the
   indices equal the local ranks (`_validate_device_index_selection`) and `deepspeed.initialize` gets the index as
   `device_rank`. CPU devices have none, so each rank's CPU gets its local rank as index (`cpu:1` is the CPU to
   torch; DeepSpeed's CPU accelerator maps every index to 'cpu'): both then work unchanged.
3. disco-train's own preflight (`build.check_devices`) refuses DeepSpeed without CUDA, for the reason of 1.
4. Not a check, a CPU-only shortcut: DeepSpeed's CPU accelerator compiles a shared-memory all-reduce kernel at
   start (minutes on 2 cores, the first time on a machine); without it collectives go through gloo. GPU runs use
   NCCL and never build it.

Everything else is what a GPU run executes: `deepspeed.initialize` with the recipe's config dict, ZeRO-2/3
partitioning, the engine's backward and step, its sharded checkpoint save and load, the completion mark.

Test hooks (environment): DISCO_TEST_REPORT=<folder> makes each rank write what DeepSpeed was configured with and
how its parameters are partitioned to <folder>/rank<r>.json; DISCO_TEST_KILL=<rank>:<checkpoint name> makes that
rank SIGKILL itself while writing its optimizer-state file into that checkpoint (the file left half written).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lightning.pytorch.strategies.ddp import DDPStrategy  # noqa: E402
import torch  # noqa: E402

from disco_train.train import build, zero  # noqa: E402


class CPUDeepSpeedStrategy(zero.DiscoDeepSpeedStrategy):
    def setup_environment(self) -> None:
        self.parallel_devices = [torch.device("cpu", i) for i in range(len(self.parallel_devices))]  # 2 above
        DDPStrategy.setup_environment(self)  # lifted: the CUDAAccelerator check (1 above)

    def init_deepspeed(self) -> None:
        super().init_deepspeed()
        if os.environ.get("DISCO_TEST_REPORT"):
            report(self, Path(os.environ["DISCO_TEST_REPORT"]))


def report(strategy, folder: Path) -> None:
    """The engine's config and, per parameter kind, the elements this rank holds against the full size."""
    engine, held = strategy.deepspeed_engine, {}
    for name, p in engine.module.named_parameters():
        kind = "lora" if "lora_" in name else "frozen"
        local = p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel()  # ZeRO-3: this rank's partition
        full = getattr(p, "ds_numel", p.numel())
        counts = held.setdefault(kind, {"local": 0, "full": 0, "trainable": 0})
        counts["local"], counts["full"] = counts["local"] + local, counts["full"] + full
        counts["trainable"] += int(p.requires_grad)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"config": strategy.config, "stage": engine.zero_optimization_stage(), "world": engine.world_size,
              "params": held}
    (folder / f"rank{strategy.global_rank}.json").write_text(json.dumps(record, indent=1, default=str))


def kill_mid_save(rank: int, checkpoint: str) -> None:
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    original = TorchCheckpointEngine.save

    def save(self, state_dict, path):
        original(self, state_dict, path)
        if int(os.environ["RANK"]) == rank and checkpoint in str(path) and "_optim_states" in str(path):
            os.truncate(path, os.path.getsize(path) // 2)  # the bytes written so far
            os.kill(os.getpid(), signal.SIGKILL)

    TorchCheckpointEngine.save = save


if __name__ == "__main__":
    import train

    import importlib

    build.check_devices = lambda cfg: None  # lifted (3 above)
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None  # 4 above
    zero.DiscoDeepSpeedStrategy = CPUDeepSpeedStrategy  # what build._strategy constructs
    if os.environ.get("DISCO_TEST_KILL"):
        who, name = os.environ["DISCO_TEST_KILL"].split(":")
        kill_mid_save(int(who), name)
    sys.exit(train.main(sys.argv[1:]))
