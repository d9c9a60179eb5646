"""apiary.torch.Optimizer in a swarm of real processes on loopback: peers that
average hold identical parameters and optimizer statistics, a peer killed
mid-run does not stop the others, and a late joiner's first step starts from
the state it downloaded (hashes compared with the donors')."""

import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "torch_peer.py")


class Peer:
    def __init__(self, run, peers="", epochs=6, seed=0, seconds=90):
        self.lines = []
        self.proc = subprocess.Popen(
            [sys.executable, PEER, "--run", run, "--peers", peers, "--epochs", str(epochs),
             "--seed", str(seed), "--seconds", str(seconds)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def wait_for(self, key, timeout=60, predicate=lambda line: True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if key in line and predicate(line):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no '{key}' line; got {self.lines[-5:]}")

    def epochs(self):
        return {line["epoch"]: line for line in self.lines if "epoch" in line}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=5)


def test_peers_average_survive_a_kill_and_a_late_joiner_starts_from_their_state():
    run = f"torch-swarm-{os.getpid()}"
    first = Peer(run, epochs=1000, seed=1)  # until stopped
    peers = []
    try:
        address = first.wait_for("address")["address"]
        second = Peer(run, peers=address, epochs=1000, seed=2)
        doomed = Peer(run, peers=address, epochs=1000, seed=3)
        peers = [second, doomed]
        # Averaged epochs: every peer holds the same parameters and statistics.
        first.wait_for("epoch", timeout=90, predicate=lambda l: l["averaged"] and l["epoch"] >= 3)
        doomed.wait_for("epoch", timeout=30, predicate=lambda l: l["averaged"])
        doomed.stop()  # killed mid-run
        killed_at = max(first.epochs())
        # The others go on and still average with each other.
        first.wait_for("epoch", timeout=60, predicate=lambda l: l["epoch"] >= killed_at + 2)
        # Until stopped: under load (CI at load 7) a joiner whose batches are
        # slower than the swarm's epochs is behind at each boundary and loads
        # the state again (not averaged) until one of its rounds finds the group.
        late = Peer(run, peers=address, epochs=1000, seed=4)
        peers.append(late)
        joined = late.wait_for("joined", timeout=60)
        assert joined["joined"] > 0, "the late joiner did not download the swarm's state"
        epoch = joined["joined"]
        first.wait_for("epoch", timeout=30, predicate=lambda l: l["epoch"] >= epoch)
        second.wait_for("epoch", timeout=30, predicate=lambda l: l["epoch"] >= epoch)
        donors = [first.epochs().get(epoch), second.epochs().get(epoch)]
        donor_hashes = {d["hash"] for d in donors if d}
        assert donor_hashes, f"no donor reported epoch {joined['joined']}"
        assert joined["hash"] in donor_hashes, (joined, donors)
        # The late joiner averages with the others after it joined.
        late.wait_for("epoch", timeout=60, predicate=lambda l: l["averaged"])
        # Where both averaged the same epoch, they hold the same state.
        same = [e for e, line in first.epochs().items()
                if line["averaged"] and e in second.epochs() and second.epochs()[e]["averaged"]]
        assert len(same) >= 3, (first.epochs(), second.epochs())
        for e in same:
            assert first.epochs()[e]["hash"] == second.epochs()[e]["hash"], e
    finally:
        for peer in [first] + peers:
            peer.stop()
