"""benchmarks/bench_torch.py end to end at a tiny size: solo and 2-process DDP
(gloo on loopback) train the char-LM on the same samples; the JSON has the
fields RESULTS.md quotes, and Apiary runs (ctest, with the package built) or is reported
unavailable (not importable)."""

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_bench_solo_and_ddp_tiny():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_torch.py"),
                           "--samples", "32", "--procs", "2", "--batch-size", "4",
                           "--eval-windows", "8", "--json", "--timeout", "90"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("solo_val_loss", "ddp_val_loss", "ddp_samples_per_s", "ddp_wall_s"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    for key in ("swarm_val_loss", "ratio", "apiary_samples_per_s", "apiary_wall_s", "ratios"):
        assert key in result
    if os.environ.get("APIARY_EXPECT_PACKAGE") == "1":  # ctest, with the package built
        assert math.isfinite(result["swarm_val_loss"]), result.get("apiary")
        assert result["apiary_samples_per_s"] > 0
        curve = result["apiary_loss_curve"]  # peer 0's model of each epoch it ended
        assert curve and all(math.isfinite(loss) for _, _, loss in curve)
        assert [s for _, s, _ in curve] == sorted(s for _, s, _ in curve)
    elif result["swarm_val_loss"] is None:
        assert result["apiary"].startswith("unavailable: "), result["apiary"]
    assert "solo" in done.stdout and "ddp" in done.stdout


def test_seconds_to_loss_is_the_first_epoch_at_or_below_it():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    import bench_torch

    curve = [{"seconds": 1.0, "val_loss": 3.0}, {"seconds": 2.0, "val_loss": 2.5},
             {"seconds": 3.0, "val_loss": 2.4}]
    assert bench_torch.seconds_to_loss(curve, 2.5) == 2.0
    assert bench_torch.seconds_to_loss(curve, 2.0) is None  # never reached
    assert bench_torch.seconds_to_loss(None, 2.5) is None
    assert bench_torch.seconds_to_loss(curve, None) is None
