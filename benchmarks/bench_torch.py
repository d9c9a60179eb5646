#!/usr/bin/python3
"""The char-LM of examples/torch three ways, same model and total samples:
  solo    one process, batch = accumulate x procs x --batch-size (the swarm's global batch)
  ddp     torch.distributed DDP, gloo backend, --procs processes, --batch-size each
  apiary  --procs apiary.torch processes (the first starts the swarm, the others
          join its address), --batch-size each, target batch = accumulate x procs x
          --batch-size (--accumulate: batches per peer per epoch, default 1)
So solo and Apiary take the same number of optimizer steps of the same global
batch (DDP too when --accumulate is 1). With --local-updates N the Apiary peers
step their own optimizer every batch and average parameters every N (DiLoCo).
Apiary's first peer keeps the model of every epoch it ends (--loss-curve), so
the result says when the swarm first reached DDP's final held-out loss
(`apiary_seconds_to_ddp_loss`, training seconds, against DDP's `ddp_train_s`).
Prints a table; --json prints one JSON object. --link-mbit M runs every DDP and
Apiary process in its own network namespace behind an M-Mbit/s link (tc tbf on
veth pairs; benchmarks/netns_links.py), after checking that the cap holds.

  /usr/bin/python3 benchmarks/bench_torch.py --samples 4096 --procs 4 --json
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CHARLM = os.path.join(ROOT, "examples", "torch", "charlm.py")
DDP = os.path.join(HERE, "ddp_charlm.py")
sys.path.insert(0, HERE)
import netns_links  # noqa: E402

children = []  # every process started, ended on the way out


def stop_children():
    for child in children:
        if child.poll() is None:
            child.kill()
    for child in children:
        child.wait()
    children.clear()


def start(command, env=None):
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    children.append(child)
    return child


def finish(child, what: str, timeout: float, log_dir=None) -> dict:
    """Waits for a run and returns its final JSON line (raises with its stderr,
    which is kept in log_dir/<what>.log when log_dir is given)."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        raise RuntimeError(f"{what}: still running after {timeout:.0f} s") from None
    finally:
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            with open(os.path.join(log_dir, what.replace(" ", "-") + ".log"), "w") as log:
                log.write(err or "")
    if child.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise RuntimeError(f"{what}: exit {child.returncode}: {tail}")
    return json.loads(out.strip().splitlines()[-1])


def model_flags(args):
    lr = ["--lr", str(args.lr)] if args.lr is not None else []
    return ["--json", "--threads", "1", "--seed", str(args.seed), "--log-every", "1000000",
            "--eval-windows", str(args.eval_windows)] + lr


def per_process_samples(args, total=None) -> int:
    return (total or args.samples) // args.procs


def run_solo(args) -> dict:
    batch = args.batch_size * args.procs * args.accumulate
    started = time.monotonic()
    child = start([sys.executable, CHARLM, "--optimizer", "torch", "--batch-size", str(batch),
                   "--samples", str(per_process_samples(args) * args.procs)] + model_flags(args))
    report = finish(child, "solo", args.timeout, args.logs)
    return {"val_loss": report["val_loss"], "samples": report["samples"],
            "samples_per_s": report["samples_per_s"], "wall_s": time.monotonic() - started}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def placement(links, rank: int):
    """(command prefix, this process's IP) for rank: its namespace, or loopback."""
    if links is None:
        return [], "127.0.0.1"
    return links.exec_prefix(rank), links.ip(rank)


def gather(ranks, what: str, args, started: float) -> dict:
    reports = [finish(child, f"{what} rank {r}", args.timeout, args.logs)
               for r, child in enumerate(ranks)]
    samples = sum(r["samples"] for r in reports)
    train_s = max(r["seconds"] for r in reports)
    # The run's model: the newest epoch's (what a coordinator checkpoints and a
    # late joiner downloads; peers of one epoch hold the same parameters). A peer
    # that ran out of data first left with an older one. DDP: rank 0 evaluates.
    evaluated = [r for r in range(len(reports)) if "val_loss" in reports[r]]
    newest = max(evaluated, key=lambda r: (reports[r].get("epoch") or 0, -r))
    # Evaluating the loss curve (after training) is not part of the run's time.
    curve_s = max(r.get("curve_eval_s", 0.0) for r in reports)
    curves = [r["curve"] for r in reports if "curve" in r]
    return {"val_loss": reports[newest]["val_loss"], "samples": samples,
            "val_losses": [reports[r]["val_loss"] for r in evaluated],
            "samples_per_s": samples / train_s, "train_s": train_s,
            "wall_s": time.monotonic() - started - curve_s,
            "epochs": [r.get("epoch") for r in reports], "curve": curves[0] if curves else None,
            "blocked_s": [r.get("blocked_s") for r in reports]}


def run_ddp(args, links) -> dict:
    _, master = placement(links, 0)
    port = 29500 if links else free_port()
    env = dict(os.environ, GLOO_SOCKET_IFNAME="eth0" if links else "lo")
    started = time.monotonic()
    ranks = []
    for rank in range(args.procs):
        prefix, _ = placement(links, rank)
        ranks.append(start(prefix + [sys.executable, DDP, "--rank", str(rank),
                                     "--world-size", str(args.procs),
                                     "--init-method", f"tcp://{master}:{port}",
                                     "--batch-size", str(args.batch_size),
                                     "--samples", str(per_process_samples(args))]
                           + model_flags(args), env=env))
    return gather(ranks, "ddp", args, started)


def apiary_env(args):
    env = dict(os.environ)
    if args.apiary_pythonpath:
        env["PYTHONPATH"] = args.apiary_pythonpath
    return env


def apiary_unavailable(args):
    """None when `import apiary.torch` works for the runs, else the reason."""
    done = subprocess.run([sys.executable, "-c", "import apiary.torch"], capture_output=True,
                          text=True, env=apiary_env(args))
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"import apiary.torch: exit {done.returncode}"


def read_address(child, timeout: float) -> str:
    """The first peer's `charlm: address apiary://…` line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        if line.startswith("charlm: address "):
            return line.split(" ", 2)[2].strip()
    raise RuntimeError("apiary peer 0 printed no address (" + child.stderr.read()[-400:] + ")")


def run_apiary(args, links) -> dict:
    env = apiary_env(args)
    common = ["--optimizer", "apiary", "--run", f"bench-torch-{os.getpid()}",
              "--batch-size", str(args.batch_size),
              "--target-batch-size", str(args.batch_size * args.procs * args.accumulate),
              "--samples", str(per_process_samples(args, args.apiary_samples)),
              # Clocks start when the swarm is complete, as DDP's do after its rendezvous.
              "--wait-peers", str(args.procs)] + model_flags(args)
    if args.compression:
        common += ["--compression", args.compression]
    if args.overlap:
        common += ["--overlap"]
    for flag in ("average_state_every", "matchmaking_time", "local_updates", "outer_lr",
                 "outer_momentum"):
        if getattr(args, flag) is not None:
            common += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    if args.apiary_lr is not None:
        common += ["--lr", str(args.apiary_lr)]
    started = time.monotonic()
    prefix, ip = placement(links, 0)
    first = start(prefix + [sys.executable, CHARLM, "--listen", f"{ip}:{free_port()}",
                            "--peer-index", "0", "--loss-curve"] + common, env=env)
    address = read_address(first, 60)
    ranks = [first]
    for rank in range(1, args.procs):
        prefix, ip = placement(links, rank)
        ranks.append(start(prefix + [sys.executable, CHARLM, "--peers", address,
                                     "--listen", f"{ip}:0", "--peer-index", str(rank)] + common,
                           env=env))
    return gather(ranks, "apiary", args, started)


def ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def seconds_to_loss(curve, loss):
    """Training seconds of the first epoch whose model's held-out loss is <= loss."""
    if not curve or loss is None:
        return None
    return next((point["seconds"] for point in curve if point["val_loss"] <= loss), None)


def summary(args, solo, ddp, apiary, apiary_note, link) -> dict:
    get = lambda run, key: run[key] if run else None  # noqa: E731
    to_ddp_loss = seconds_to_loss(get(apiary, "curve"), get(ddp, "val_loss"))
    result = {
        "samples": args.samples, "apiary_samples": args.apiary_samples or args.samples,
        "procs": args.procs, "batch_size": args.batch_size,
        "accumulate": args.accumulate, "local_updates": args.local_updates,
        "outer_lr": args.outer_lr, "outer_momentum": args.outer_momentum,
        "lr": args.lr, "apiary_lr": args.apiary_lr,
        "compression": args.compression or "none", "link_mbit": args.link_mbit,
        "overlap": args.overlap, "average_state_every": args.average_state_every, "matchmaking_time": args.matchmaking_time,
        "solo_val_loss": get(solo, "val_loss"), "swarm_val_loss": get(apiary, "val_loss"),
        "ratio": ratio(get(apiary, "val_loss"), get(solo, "val_loss")),
        "solo_samples_per_s": get(solo, "samples_per_s"), "solo_wall_s": get(solo, "wall_s"),
        "ddp_val_loss": get(ddp, "val_loss"), "ddp_samples_per_s": get(ddp, "samples_per_s"),
        "ddp_wall_s": get(ddp, "wall_s"), "ddp_train_s": get(ddp, "train_s"),
        "apiary_val_loss": get(apiary, "val_loss"),
        "apiary_samples_per_s": get(apiary, "samples_per_s"), "apiary_wall_s": get(apiary, "wall_s"),
        "apiary_epochs": get(apiary, "epochs"), "apiary_blocked_s": get(apiary, "blocked_s"),
        "apiary_val_losses": get(apiary, "val_losses"), "apiary_train_s": get(apiary, "train_s"),
        "apiary_seconds_to_ddp_loss": to_ddp_loss,
        "apiary_loss_curve": [[p["seconds"], p["samples"], p["val_loss"]]
                              for p in get(apiary, "curve") or []],
        "ratios": {
            "ddp_over_solo_val_loss": ratio(get(ddp, "val_loss"), get(solo, "val_loss")),
            "apiary_over_ddp_samples_per_s": ratio(get(apiary, "samples_per_s"),
                                                   get(ddp, "samples_per_s")),
            "apiary_over_ddp_wall_s": ratio(get(apiary, "wall_s"), get(ddp, "wall_s")),
            # Issue 14's 100 Mbit/s target: <= 1/3.
            "apiary_to_ddp_loss_over_ddp_train_s": ratio(to_ddp_loss, get(ddp, "train_s")),
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if apiary_note:
        result["apiary"] = apiary_note
    if link:
        result["link_check"] = link
    for key, value in list(result.items()):
        if isinstance(value, float):
            result[key] = round(value, 4)
    return result


def print_table(modes, solo, ddp, apiary, apiary_note):
    print(f"{'mode':8} {'samples':>8} {'wall_s':>8} {'samples/s':>10} {'val_loss':>9}")
    for name, run in (("solo", solo), ("ddp", ddp), ("apiary", apiary)):
        if run:
            print(f"{name:8} {run['samples']:>8} {run['wall_s']:>8.1f} "
                  f"{run['samples_per_s']:>10.1f} {run['val_loss']:>9.4f}")
        elif name not in modes:
            print(f"{name:8} not run (--modes)")
        else:
            print(f"{name:8} {apiary_note}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=4096, help="total samples of each mode")
    parser.add_argument("--apiary-samples", type=int, default=None,
                        help="Apiary's total samples if not --samples (e.g. more, to see when "
                             "its loss curve reaches DDP's final loss)")
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="per process (DDP, Apiary)")
    parser.add_argument("--accumulate", type=int, default=1,
                        help="Apiary: batches per peer per epoch (target = accumulate x procs x "
                             "batch; solo steps with that batch; DDP steps every batch)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-windows", type=int, default=256)
    parser.add_argument("--compression", choices=["none", "fp16", "bf16", "8bit"], default=None)
    parser.add_argument("--average-state-every", type=int, default=None,
                        help="Apiary: epochs between state averaging rounds (default: the run's, 1)")
    parser.add_argument("--matchmaking-time", type=float, default=None,
                        help="Apiary: seconds a group gathers (default: the run's, 2)")
    parser.add_argument("--local-updates", type=int, default=None,
                        help="Apiary: DiLoCo, inner steps per parameter-averaging round")
    parser.add_argument("--overlap", action="store_true",
                        help="Apiary, local updates: the outer round travels while training goes on")
    parser.add_argument("--outer-lr", type=float, default=None,
                        help="Apiary, local updates: outer learning rate (run default 0.7)")
    parser.add_argument("--outer-momentum", type=float, default=None,
                        help="Apiary, local updates: outer momentum (run default 0.9)")
    parser.add_argument("--lr", type=float, default=None,
                        help="learning rate of every mode (default: the example's)")
    parser.add_argument("--apiary-lr", type=float, default=None,
                        help="Apiary: its (inner) optimizer's learning rate (default: the "
                             "example's, which DDP always uses)")
    parser.add_argument("--link-mbit", type=float, default=None,
                        help="run DDP and Apiary processes behind links of this rate (root)")
    parser.add_argument("--modes", default="solo,ddp,apiary", help="which of solo,ddp,apiary")
    parser.add_argument("--apiary-pythonpath", default=os.environ.get("PYTHONPATH") or
                        (os.path.join(ROOT, "build", "python")
                         if os.path.isdir(os.path.join(ROOT, "build", "python")) else None))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per mode")
    parser.add_argument("--logs", default=None,
                        help="keep each process's stderr in this folder (with APIARY_LOG=info: "
                             "the rounds each peer ran, failed or loaded)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def run_modes(args, links, link):
    modes = set(args.modes.split(","))
    solo = run_solo(args) if "solo" in modes else None
    ddp = run_ddp(args, links) if "ddp" in modes else None
    apiary, note = None, None
    if "apiary" in modes:
        reason = apiary_unavailable(args)
        if reason:
            note = f"unavailable: {reason}"
        else:
            try:
                apiary = run_apiary(args, links)
            except RuntimeError as error:
                note = f"failed: {error}"
            finally:
                stop_children()
    return summary(args, solo, ddp, apiary, note, link), (solo, ddp, apiary, note)


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the cleanup below runs
    links = None
    try:
        link = None
        if args.link_mbit:
            links = netns_links.Links(args.procs, args.link_mbit).__enter__()
            link = netns_links.check(links)
            if not link["within_20pct"]:
                raise RuntimeError(f"link cap does not hold: {link}")
        result, runs = run_modes(args, links, link)
    finally:
        stop_children()
        if links:
            links.close()
    print_table(args.modes.split(","), *runs)
    if args.json:
        print(json.dumps(result))
    return 1 if result.get("apiary", "").startswith("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
