"""One apiary.torch peer for the swarm tests: a small regression model trained
with AdamW through apiary.torch.Optimizer. Prints JSON lines:
  {"address": …}                                   once listening
  {"joined": epoch, "hash": …}                     after the constructor (state downloaded)
  {"epoch": e, "hash": …, "averaged": bool}        after each epoch boundary
  {"done": epoch}                                  at the end
`hash` covers the parameters and the optimizer's statistics."""

import argparse
import hashlib
import json
import sys
import time

import torch

import apiary.torch as at


def state_hash(model, opt) -> str:
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().contiguous().numpy().tobytes())
    for p in model.parameters():
        for key in sorted(opt.torch_optimizer.state[p]):
            value = opt.torch_optimizer.state[p][key]
            if torch.is_tensor(value) and value.shape == p.shape:
                digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def emit(**fields):
    print(json.dumps(fields), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--peers", default="")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60, help="give up after")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compression", default="none")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial model on every peer
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    opt = at.Optimizer(torch.optim.AdamW(model.parameters(), lr=1e-2), run=args.run,
                       peers=args.peers, target_batch_size=128, batch_size=16,
                       compression=args.compression, state_compression="none",
                       matchmaking_time=0.5, averaging_timeout=5.0)
    if opt.address:
        emit(address=opt.address)
    emit(joined=opt.epoch, hash=state_hash(model, opt))
    data = torch.Generator().manual_seed(1000 + args.seed)
    deadline = time.monotonic() + args.seconds
    start_epoch = opt.epoch
    while opt.epoch < start_epoch + args.epochs and time.monotonic() < deadline:
        x = torch.randn(16, 8, generator=data)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        loss.backward()
        if opt.step():
            emit(epoch=opt.epoch, hash=state_hash(model, opt), averaged=opt.last_epoch_averaged,
                 loss=loss.item())
        opt.zero_grad()
        time.sleep(0.01)  # a few steps a second per peer: epochs of ~1 s
    emit(done=opt.epoch)
    opt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
