"""Peak live tensor bytes of a region on any device (the CPU too), op by op.

`torch.distributed._tools.mem_tracker.MemTracker` does this but hooks every parameter's gradient and refuses
frozen ones (the LoRA step's whole base is frozen), so this is the same idea without module hooks: a
`TorchDispatchMode` sees every op's outputs (backward and checkpoint recomputes included), adds each new
storage's bytes once, and a weakref callback subtracts them when the storage is freed. Tensors alive on entry
(weights, gradients, optimizer state, inputs) are passed in and counted from the start.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveBytes(TorchDispatchMode):
    def __init__(self, alive=()):
        super().__init__()
        self._refs: dict[int, weakref.ref] = {}
        self.now = self.peak = 0
        for t in alive:
            self._track(t)

    def _track(self, t) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._refs and self._refs[key]() is storage:
            return
        nbytes = storage.nbytes()
        self._refs[key] = weakref.ref(storage, lambda _, key=key, nbytes=nbytes: self._free(key, nbytes))
        self.now += nbytes
        self.peak = max(self.peak, self.now)

    def _free(self, key: int, nbytes: int) -> None:
        self._refs.pop(key, None)
        self.now -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            self._track(t)
        return out


def alive_tensors(module: torch.nn.Module, optimizer=None, extra=()) -> list[torch.Tensor]:
    """Weights, gradients and optimizer state of a training setup: what a step starts with."""
    tensors = [p for p in module.parameters()] + [p.grad for p in module.parameters() if p.grad is not None]
    tensors += list(module.buffers()) + list(extra)
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return tensors
