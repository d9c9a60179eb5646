"""apiary.torch: collaborative training for any torch.optim optimizer.

    import torch, apiary.torch as at
    opt = at.Optimizer(torch.optim.AdamW(model.parameters(), lr=3e-4), run="my-run",
                       peers=["apiary://…@203.0.113.5:31337"], target_batch_size=4096,
                       batch_size=32)
    for x, y in loader:
        loss_fn(model(x), y).backward()
        opt.step(); opt.zero_grad()     # steps together with the swarm at each epoch
"""

from .optimizer import Optimizer

__all__ = ["Optimizer"]
