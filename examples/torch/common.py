"""What the torch examples share: the command line, the one adapter between a
script and the optimizer (plain torch.optim or apiary.torch), progress lines
and the final JSON line.

The adapter, make_optimizer(), is the only place that names the Apiary bridge's
API, so a rename there is a one-line change."""

import argparse
import ctypes
import json
import math
import os
import sys
import time

import torch


def add_common_args(parser: argparse.ArgumentParser, default_batch: int, default_steps: int):
    group = parser.add_argument_group("training")
    group.add_argument("--steps", type=int, default=default_steps,
                       help="local optimizer-call steps (each of --batch-size samples)")
    group.add_argument("--samples", type=int, default=None,
                       help="samples this process trains on (overrides --steps)")
    group.add_argument("--batch-size", type=int, default=default_batch)
    group.add_argument("--lr", type=float, default=None, help="learning rate (default: per example)")
    group.add_argument("--seed", type=int, default=0,
                       help="model initialisation seed (the same on every peer)")
    group.add_argument("--data-seed", type=int, default=None,
                       help="order of this process's samples (default: --seed + --peer-index)")
    group.add_argument("--peer-index", type=int, default=0,
                       help="which peer this is; only changes the data order")
    group.add_argument("--threads", type=int, default=1,
                       help="CPU threads of torch and of the BLAS library under it")
    group.add_argument("--device", default="cpu",
                       help="cpu or cuda[:N] (asked for and missing: an error, never the CPU)")
    group.add_argument("--log-every", type=int, default=10, help="progress line every N steps")
    group.add_argument("--json", action="store_true", help="print a final JSON line")
    swarm = parser.add_argument_group("swarm (--optimizer apiary)")
    swarm.add_argument("--optimizer", choices=["torch", "apiary"], default="torch",
                       help="torch: plain torch.optim, solo; apiary: apiary.torch.Optimizer")
    swarm.add_argument("--run", default="apiary-torch-example", help="run name shared by the swarm")
    swarm.add_argument("--peers", default="",
                       help="comma-separated apiary:// addresses to join (empty: start a swarm)")
    swarm.add_argument("--listen", default=None, help="HOST:PORT this peer listens on")
    swarm.add_argument("--target-batch-size", type=int, default=None,
                       help="samples the swarm accumulates per epoch (default: --batch-size)")
    swarm.add_argument("--average-state-every", type=int, default=None,
                       help="epochs between state (parameters + statistics) averaging rounds")
    swarm.add_argument("--matchmaking-time", type=float, default=None,
                       help="seconds a group gathers (rounds are matched this long ahead)")
    swarm.add_argument("--solo", action="store_true",
                       help="apiary.torch without a swarm (what the wrapper itself costs)")
    swarm.add_argument("--compression", choices=["none", "fp16", "bf16", "8bit"], default=None,
                       help="gradient compression passed to the bridge")
    swarm.add_argument("--local-updates", type=int, default=None,
                       help="DiLoCo: inner steps per averaging round (default: target batch mode)")
    swarm.add_argument("--outer-lr", type=float, default=None,
                       help="local updates: outer Nesterov learning rate (run default 0.7)")
    swarm.add_argument("--outer-momentum", type=float, default=None,
                       help="local updates: outer Nesterov momentum (run default 0.9)")
    swarm.add_argument("--overlap", action="store_true",
                       help="local updates: the outer round travels while the next inner "
                            "phase trains")
    swarm.add_argument("--wait-peers", type=int, default=0, metavar="N",
                       help="before training, wait (up to 60 s) until the swarm has N peers, "
                            "this one included: peers started together start their clocks "
                            "together, as DDP's ranks do")
    swarm.add_argument("--loss-curve", action="store_true",
                       help="keep the model of every epoch this peer ends and report its "
                            "held-out metrics with the training seconds at which it was reached")


def total_steps(args) -> int:
    if args.samples is not None:
        return max(1, math.ceil(args.samples / args.batch_size))
    return args.steps


def data_seed(args) -> int:
    return args.data_seed if args.data_seed is not None else args.seed + args.peer_index


class SoloOptimizer:
    """A plain torch.optim optimizer with the few members the examples read from
    apiary.torch.Optimizer, so the training loop is the same for both."""

    def __init__(self, torch_optimizer: torch.optim.Optimizer):
        self.torch_optimizer = torch_optimizer
        self.epoch = 0
        self.address = ""

    def step(self):
        self.torch_optimizer.step()
        self.epoch += 1

    def zero_grad(self):
        self.torch_optimizer.zero_grad(set_to_none=True)

    def state_dict(self):
        return {"epoch": self.epoch, "optimizer": self.torch_optimizer.state_dict()}

    def finish(self):
        return False  # every step was already taken

    def close(self):
        pass


def make_optimizer(args, torch_optimizer: torch.optim.Optimizer):
    """The adapter: plain torch.optim when --optimizer torch, else the Apiary bridge."""
    if args.optimizer == "torch":
        return SoloOptimizer(torch_optimizer)
    try:
        import apiary.torch as at
    except ImportError as error:
        sys.exit("--optimizer apiary needs the apiary Python package (build Apiary, then "
                 f"PYTHONPATH=<build>/python or make install): import failed: {error}")
    options = {}
    if args.listen:
        options["listen"] = args.listen
    if args.compression:
        options["compression"] = args.compression
    if args.solo:
        options["solo"] = True
    if args.overlap:
        options["overlap"] = True
    for name in ("average_state_every", "matchmaking_time", "local_updates", "outer_lr",
                 "outer_momentum"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    peers = [p for p in args.peers.split(",") if p]
    return at.Optimizer(torch_optimizer, run=args.run, peers=peers,
                        target_batch_size=args.target_batch_size or args.batch_size,
                        batch_size=args.batch_size, **options)


def match_blas_threads(threads: int) -> bool:
    """torch.set_num_threads() does not reach OpenBLAS (the BLAS of Debian's
    torch): its own worker threads stay and spin between calls. With four
    processes on two cores they took ~40 % of the CPU (4 plain char-LM
    processes at batch 2: 84 samples/s together, 149 with OpenBLAS at one
    thread). Returns True when an OpenBLAS was loaded and set."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libopenblas" in line}
    except OSError:  # not Linux: nothing to match
        return False
    for path in sorted(paths):
        ctypes.CDLL(path).openblas_set_num_threads(threads)
    return bool(paths)


def setup_torch(args):
    torch.set_num_threads(args.threads)
    match_blas_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: this torch sees no CUDA device "
                 f"(torch {torch.__version__}, CUDA build: {torch.version.cuda})")


def announce(opt, name: str):
    address = getattr(opt, "address", "")
    if address:
        # One line a script (or the benchmark) can read to find this peer.
        print(f"{name}: address {address}", flush=True)


def wait_for_peers(args, opt, name: str):
    if args.wait_peers <= 1 or args.optimizer != "apiary":
        return
    seen = opt.wait_for_peers(args.wait_peers, timeout=60.0)
    if seen < args.wait_peers:
        print(f"{name}: {seen} of {args.wait_peers} peers after 60 s; training on", flush=True)


class Progress:
    """Progress lines and the final report (samples counted locally)."""

    def __init__(self, name: str, log_every: int):
        self.name, self.log_every = name, log_every
        self.start = time.monotonic()
        self.end = None
        self.samples = 0

    def stop(self):
        """Ends the training clock (evaluation is not counted in samples/s)."""
        self.end = time.monotonic()

    def step(self, step: int, steps: int, batch: int, loss: float, epoch: int):
        self.samples += batch
        if step % self.log_every == 0 or step == steps:
            elapsed = time.monotonic() - self.start
            print(f"{self.name}: step {step}/{steps} epoch {epoch} loss {loss:.4f} "
                  f"samples {self.samples} {self.samples / max(elapsed, 1e-9):.1f} samples/s",
                  flush=True)

    def finish(self, args, metrics: dict):
        seconds = (self.end or time.monotonic()) - self.start
        report = {"samples": self.samples, "seconds": round(seconds, 3),
                  "samples_per_s": round(self.samples / max(seconds, 1e-9), 3)}
        report.update(metrics)
        text = " ".join(f"{k} {v}" for k, v in metrics.items() if not isinstance(v, list))
        print(f"{self.name}: done {text} samples {self.samples} in {seconds:.1f} s", flush=True)
        if args.json:
            print(json.dumps(report), flush=True)
        return report


def train(opt, steps: int, progress: Progress, batch_loss, on_epoch=None):
    """The loop: batch_loss() returns (loss tensor, batch size); on_epoch() is
    called after each step() that ended an epoch of the swarm."""
    for step in range(1, steps + 1):
        loss, batch = batch_loss()
        loss.backward()
        ended = opt.step()
        opt.zero_grad()
        progress.step(step, steps, batch, loss.item(), opt.epoch)
        if ended and on_epoch:
            on_epoch()
    progress.stop()


class LossCurve:
    """The model after each epoch, with the training seconds and samples at
    which it was reached; evaluated after training, so the run is not slowed
    by it (a copy of the parameters costs ~1 ms)."""

    def __init__(self, torch_optimizer, progress: Progress):
        self.params = [p for g in torch_optimizer.param_groups for p in g["params"]]
        self.progress = progress
        self.points = []  # (seconds, samples, epoch, parameter copies)

    def record(self, epoch: int):
        seconds = time.monotonic() - self.progress.start
        copies = [p.detach().clone() for p in self.params]
        self.points.append((seconds, self.progress.samples, epoch, copies))

    @torch.no_grad()
    def evaluate(self, evaluate) -> list:
        """[{seconds, samples, epoch, metric: value}] in order; the parameters
        are put back as they were."""
        final = [p.detach().clone() for p in self.params]
        curve = []
        for seconds, samples, epoch, copies in self.points:
            for p, c in zip(self.params, copies):
                p.copy_(c)
            curve.append({"seconds": round(seconds, 3), "samples": samples, "epoch": epoch,
                          **evaluate()})
        for p, c in zip(self.params, final):
            p.copy_(c)
        return curve


def run(args, name: str, torch_optimizer, batch_loss, evaluate) -> dict:
    """What both examples do after building their model: wrap the optimizer,
    train, evaluate, report. batch_loss(generator) -> (loss, batch size) draws
    this process's next batch; evaluate() -> {metric: value}."""
    opt = make_optimizer(args, torch_optimizer)
    announce(opt, name)
    wait_for_peers(args, opt, name)
    generator = torch.Generator().manual_seed(data_seed(args))
    progress = Progress(name, args.log_every)
    curve = LossCurve(torch_optimizer, progress) if args.loss_curve else None
    on_epoch = (lambda: curve.record(opt.epoch)) if curve else None
    try:
        train(opt, total_steps(args), progress, lambda: batch_loss(generator), on_epoch)
        if opt.finish() and curve:  # the samples since the swarm's last step join its final round
            curve.record(opt.epoch)
        metrics = evaluate()
        for key, value in metrics.items():
            if not math.isfinite(value):
                sys.exit(f"{name}: {key} is not finite ({value})")
        metrics["epoch"] = opt.epoch
        if hasattr(opt, "communication_blocked_seconds"):  # the time step() waited on the network
            metrics["blocked_s"] = round(opt.communication_blocked_seconds, 3)
        if curve:
            evaluating = time.monotonic()
            metrics["curve"] = curve.evaluate(evaluate)
            metrics["curve_eval_s"] = round(time.monotonic() - evaluating, 3)
        return progress.finish(args, metrics)
    finally:
        opt.close()


def here() -> str:
    return os.path.dirname(os.path.abspath(__file__))
