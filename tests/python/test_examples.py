"""Smoke test of examples/torch: each example trains a few steps solo with plain
torch.optim (--optimizer torch) and reports a finite held-out/test loss in its
final JSON line. Runs the scripts as a user would, in subprocesses."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "torch")


def run_example(script, *flags):
    command = [sys.executable, os.path.join(EXAMPLES, script), "--optimizer", "torch",
               "--threads", "1", "--json", *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report, done.stdout


def test_charlm_trains_a_few_steps():
    report, out = run_example("charlm.py", "--steps", "3", "--batch-size", "4",
                              "--eval-windows", "8", "--log-every", "1")
    assert math.isfinite(report["val_loss"]) and report["val_loss"] > 0
    assert report["samples"] == 12 and report["epoch"] == 3
    assert out.count("charlm: step") == 3


def test_cnn_trains_a_few_steps():
    report, _ = run_example("cnn_fashion_mnist.py", "--steps", "5", "--batch-size", "16",
                            "--test-limit", "500")
    assert math.isfinite(report["test_loss"]) and report["test_loss"] > 0
    assert 0.0 <= report["test_accuracy"] <= 1.0
    assert report["samples"] == 80


def test_threads_flag_reaches_openblas():
    """--threads sets OpenBLAS's thread count too: torch.set_num_threads() does
    not, and OpenBLAS's idle workers spin (a separate process: the setting is
    process-wide)."""
    code = "\n".join([
        "import argparse, ctypes, json, sys, torch",
        f"sys.path.insert(0, {EXAMPLES!r})",
        "import common",
        "torch.ones(64, 64) @ torch.ones(64, 64)",
        "paths = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libopenblas' in l})",
        "common.setup_torch(argparse.Namespace(threads=1, seed=0, device='cpu'))",
        "threads = [ctypes.CDLL(p).openblas_get_num_threads() for p in paths]",
        "print(json.dumps({'paths': paths, 'threads': threads,",
        "                  'matched': common.match_blas_threads(1)}))",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # Without an OpenBLAS loaded there is nothing to set, and it says so.
    assert report["matched"] is bool(report["paths"])
    assert report["threads"] == [1] * len(report["paths"])


def test_apiary_optimizer_without_the_package_says_why(tmp_path):
    # A stand-in `apiary` package that fails to import, ahead of any real one.
    (tmp_path / "apiary").mkdir()
    (tmp_path / "apiary" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "charlm.py"),
                           "--optimizer", "apiary", "--steps", "1"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode != 0
    assert "needs the apiary Python package" in done.stderr
    assert "hidden by the test" in done.stderr


def test_loss_curve_evaluates_each_kept_model_and_puts_the_last_back():
    sys.path.insert(0, EXAMPLES)
    import torch
    import common

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    progress = common.Progress("t", log_every=1000)
    curve = common.LossCurve(opt, progress)
    total = lambda: {"val_loss": float(sum(p.sum() for p in model.parameters()))}  # noqa: E731
    sums = []
    for samples in (4, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        progress.samples = samples
        sums.append(total()["val_loss"])
        curve.record(epoch=samples // 4)
    with torch.no_grad():
        model.weight.zero_()
    after = total()["val_loss"]
    points = curve.evaluate(total)
    assert [p["samples"] for p in points] == [4, 8] and [p["epoch"] for p in points] == [1, 2]
    assert [round(p["val_loss"], 5) for p in points] == [round(s, 5) for s in sums]
    assert points[0]["seconds"] <= points[1]["seconds"]
    assert total()["val_loss"] == after  # the live parameters are as they were
