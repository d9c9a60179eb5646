#!/usr/bin/python3
"""Capped links for benchmarks: N network namespaces, each joined to one Linux
bridge in the root namespace by a veth pair whose two ends are shaped by
`tc tbf` to the same rate, so every process sees a RATE-Mbit/s link in each
direction (as if each ran on its own machine behind a RATE-Mbit/s port).

Only what this module creates is touched (names carry the creating process id),
and Links.close() removes it; use it as a context manager. Needs root, `ip`, `tc`.

  /usr/bin/python3 benchmarks/netns_links.py --mbit 100   # build 2 namespaces, measure, clean up
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

SUBNET = "10.231.0"


def sh(*command, check=True):
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done


class Links:
    """Namespaces ns[i] with address ip(i) on interface `eth0`, capped at `mbit`."""

    def __init__(self, count: int, mbit: float):
        if os.geteuid() != 0:
            raise RuntimeError("--link-mbit needs root (ip netns, tc)")
        if not 1 <= count <= 200:
            raise ValueError("1..200 namespaces")
        self.count, self.mbit = count, mbit
        tag = f"{os.getpid() % 100000}"
        self.bridge = f"apbr{tag}"
        self.namespaces = [f"apiary-bench-{tag}-{i}" for i in range(count)]
        self.host_ends = [f"apv{tag}h{i}" for i in range(count)]
        self._made_bridge = False
        self._made = []  # (namespace, host end) pairs created so far

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_):
        self.close()

    def ip(self, index: int) -> str:
        return f"{SUBNET}.{index + 1}"

    def exec_prefix(self, index: int):
        """The command prefix that runs a program inside namespace `index`."""
        return ["ip", "netns", "exec", self.namespaces[index]]

    def _shape(self, prefix, device):
        # burst: at least one timer tick's worth at the rate (and >= 64 KiB);
        # latency bounds the queue the way a switch port's buffer would.
        burst = max(64 * 1024, int(self.mbit * 1e6 / 8 / 250))
        sh(*prefix, "tc", "qdisc", "add", "dev", device, "root", "tbf",
           "rate", f"{self.mbit}mbit", "burst", str(burst), "latency", "50ms")

    def _build(self):
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        sh("ip", "link", "set", self.bridge, "up")
        for i, (ns, host) in enumerate(zip(self.namespaces, self.host_ends)):
            sh("ip", "netns", "add", ns)
            self._made.append((ns, None))
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._made[-1] = (ns, host)
            sh("ip", "link", "set", host, "master", self.bridge, "up")
            inside = ["ip", "netns", "exec", ns]
            sh(*inside, "ip", "link", "set", "lo", "up")
            sh(*inside, "ip", "addr", "add", f"{self.ip(i)}/24", "dev", "eth0")
            sh(*inside, "ip", "link", "set", "eth0", "up")
            self._shape(inside, "eth0")  # namespace -> bridge
            self._shape([], host)  # bridge -> namespace

    def close(self):
        for ns, host in reversed(self._made):
            if host:
                sh("ip", "link", "del", host, check=False)
            sh("ip", "netns", "del", ns, check=False)
        self._made = []
        if self._made_bridge:
            sh("ip", "link", "del", self.bridge, check=False)
            self._made_bridge = False


def serve(port: int):
    """Receives one connection to its end; prints the bytes and seconds as JSON."""
    with socket.create_server(("0.0.0.0", port)) as server:
        print("ready", flush=True)
        conn, _ = server.accept()
        with conn:
            total, start = 0, None
            while True:
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                if start is None:
                    start = time.monotonic()
                total += len(chunk)
            seconds = time.monotonic() - (start or time.monotonic())
    print(json.dumps({"bytes": total, "seconds": seconds}), flush=True)


def send(host: str, port: int, seconds: float):
    block = b"\0" * (1 << 16)
    with socket.create_connection((host, port), timeout=10) as conn:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(block)


def measure(links: Links, sender: int, receiver: int, seconds=2.0, port=5201) -> float:
    """Mbit/s of one TCP stream from namespace `sender` to `receiver`."""
    me = os.path.abspath(__file__)
    server = subprocess.Popen(links.exec_prefix(receiver) + [sys.executable, me, "--serve", str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        if server.stdout.readline().strip() != "ready":
            raise RuntimeError("link check: receiver did not start")
        subprocess.run(links.exec_prefix(sender) + [sys.executable, me, "--send",
                       links.ip(receiver), str(port), str(seconds)], check=True, timeout=seconds + 30)
        result = json.loads(server.stdout.readline())
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return result["bytes"] * 8 / result["seconds"] / 1e6


def check(links: Links, tolerance=0.2, seconds=2.0) -> dict:
    """Measures 0 -> 1 and 1 -> 0; the cap holds if both are within tolerance."""
    rates = [measure(links, 0, 1, seconds), measure(links, 1, 0, seconds)]
    ok = all(abs(r - links.mbit) <= tolerance * links.mbit for r in rates)
    return {"link_mbit": links.mbit, "measured_mbit": [round(r, 1) for r in rates], "within_20pct": ok}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mbit", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--send", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.send:
        return send(args.send[0], int(args.send[1]), float(args.send[2]))
    with Links(2, args.mbit) as links:
        report = check(links, seconds=args.seconds)
    print(json.dumps(report))
    return 0 if report["within_20pct"] else 1


if __name__ == "__main__":
    sys.exit(main())
