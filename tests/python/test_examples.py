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
