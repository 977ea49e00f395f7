import math

import pytest
import torch

from disco_train.config import OptimConfig
from disco_train.train.optim import configure_adamw, lr_factor


def test_lr_factor_shapes():
    assert lr_factor(0, 4, 100, "cosine", 0.0) == 0.25 and lr_factor(3, 4, 100, "cosine", 0.0) == 1.0
    assert lr_factor(4, 4, 100, "cosine", 0.0) == 1.0
    assert lr_factor(52, 4, 100, "cosine", 0.0) == pytest.approx(0.5)  # halfway through the decay
    assert lr_factor(100, 4, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(50, 0, 100, "linear", 0.0) == pytest.approx(0.5)
    assert lr_factor(99, 0, 100, "constant", 0.0) == 1.0
    assert lr_factor(25, 0, 100, "cosine", 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_configure_adamw_steps_the_schedule():
    param = torch.nn.Parameter(torch.zeros(2))
    oc = OptimConfig(lr=0.1, schedule="linear", warmup_steps=0)
    conf = configure_adamw([param], oc, total_steps=10)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step" and opt.param_groups[0]["lr"] == pytest.approx(0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
