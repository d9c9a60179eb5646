#!/usr/bin/python3
"""One rank of the char-LM (examples/torch/charlm.py, same model, data and flags)
under torch.distributed DistributedDataParallel with the gloo backend: the
baseline that benchmarks/bench_torch.py compares Apiary with. Each rank trains
--samples of its own data (seeded by --seed + rank) at --batch-size; gradients
are averaged over all ranks every step. Rank 0 evaluates on the held-out split.
Every rank prints a final JSON line (--json).
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples", "torch"))
import charlm  # noqa: E402
import common  # noqa: E402


def main():
    parser = charlm.make_parser()
    ddp = parser.add_argument_group("torch.distributed")
    ddp.add_argument("--rank", type=int, required=True)
    ddp.add_argument("--world-size", type=int, required=True)
    ddp.add_argument("--init-method", required=True, help="e.g. tcp://127.0.0.1:29500")
    args = parser.parse_args()
    args.peer_index = args.rank
    dist.init_process_group("gloo", init_method=args.init_method, rank=args.rank,
                            world_size=args.world_size)
    try:
        corpus, model = charlm.build(args)
        wrapped = DistributedDataParallel(model)
        torch_opt = torch.optim.AdamW(wrapped.parameters(), lr=args.lr or 1e-3, weight_decay=0.01)
        opt = common.SoloOptimizer(torch_opt)
        generator = torch.Generator().manual_seed(common.data_seed(args))
        progress = common.Progress(f"ddp{args.rank}", args.log_every)

        def batch_loss():
            x, y = corpus.batch(args.context, args.batch_size, generator)
            return charlm.lm_loss(wrapped, x, y), x.shape[0]

        common.train(opt, common.total_steps(args), progress, batch_loss)
        metrics = {"rank": args.rank}
        if args.rank == 0:
            metrics["val_loss"] = round(charlm.evaluate(model, corpus, args.eval_windows,
                                                        args.batch_size), 5)
        progress.finish(args, metrics)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
