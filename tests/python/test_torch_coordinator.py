"""`apiary coordinator` serving a run whose model is the script's own
(model.type "external"): two apiary.torch processes fetch its signed
configuration (target batch, averaging, the script's model.options) and train
together; the coordinator's status table sees them."""

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

import apiary

HERE = os.path.dirname(os.path.abspath(__file__))
APIARY_BIN = os.environ.get("APIARY_BIN")

SCRIPT = r'''
import json, sys, torch, apiary, apiary.torch as at
run, peer = sys.argv[1], sys.argv[2]
config = apiary.fetch_run_config(run, [peer])
width = config["model"]["options"]["width"]
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Tanh(), torch.nn.Linear(width, 1))
opt = at.Optimizer(torch.optim.Adam(model.parameters(), lr=1e-2), run=run, peers=[peer],
                   batch_size=16)
averaged = 0
while opt.epoch < 4:
    x = torch.randn(16, 4)
    ((model(x) - x.sum(1, keepdim=True)) ** 2).mean().backward()
    if opt.step():
        averaged += opt.last_epoch_averaged
    opt.zero_grad()
print(json.dumps({"width": width, "target": opt.run_config["target_batch_size"],
                  "epoch": opt.epoch, "averaged": averaged}), flush=True)
opt.close()
'''


@pytest.mark.skipif(not APIARY_BIN, reason="APIARY_BIN names the CLI (set by ctest)")
def test_a_coordinator_serves_a_run_of_an_external_model():
    run = f"external-{os.getpid()}"
    config = {"run": run, "target_batch_size": 64, "batch_size": 16,
              "model": {"type": "external", "options": {"width": 24}},
              "dataset": {"name": "toy"},
              "averaging": {"matchmaking_time": 0.5, "averaging_timeout": 5.0}}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.json")
        with open(path, "w") as f:
            json.dump(config, f)
        coordinator = subprocess.Popen([APIARY_BIN, "coordinator", "--config", path, "--json",
                                        "--dashboard", "off", "--status-period", "1"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       text=True)
        peers = []
        try:
            info = None
            for line in coordinator.stdout:
                if line.startswith("{"):
                    info = json.loads(line)
                    break
            assert info and "apiary.torch.Optimizer" in info["join"], info
            for _ in range(2):
                peers.append(subprocess.Popen([sys.executable, "-c", SCRIPT, run, info["address"]],
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True))
            results = []
            for peer in peers:
                out, err = peer.communicate(timeout=120)
                assert peer.returncode == 0, err[-2000:]
                results.append(json.loads(out.strip().splitlines()[-1]))
            for result in results:
                assert result["width"] == 24 and result["target"] == 64
                assert result["epoch"] >= 4
            assert any(r["averaged"] > 0 for r in results), results
        finally:
            for p in peers + [coordinator]:
                if p.poll() is None:
                    p.kill()
                p.wait()


def test_check_run_config_names_the_field():
    canonical = apiary.check_run_config({"run": "x", "model": {"type": "external",
                                                               "options": {"b": 1, "a": 2}}})
    assert list(canonical["model"]["options"]) == ["a", "b"]
    with pytest.raises(apiary.InvalidArgument, match="config: model.type must be mlp"):
        apiary.check_run_config('{"run": "x", "model": {"type": "cnn"}}')
