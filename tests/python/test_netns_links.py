"""benchmarks/netns_links.py: the namespaces and capped veth links that
bench_torch.py --link-mbit builds hold their rate within 20 % both ways, and
everything they created is gone afterwards (also when the body raises).
Needs root (ip netns, tc), as CI has."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import netns_links  # noqa: E402


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def links():
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def test_cap_holds_and_cleanup():
    with netns_links.Links(2, 40) as made:
        names = list(made.namespaces)
        assert all(n in namespaces() for n in names)
        report = netns_links.check(made, seconds=1.5)
    assert report["within_20pct"], report
    assert not any(n in namespaces() for n in names)
    assert made.bridge not in links()


def test_cleanup_when_the_body_raises():
    made = None
    try:
        with netns_links.Links(3, 100) as made:
            raise KeyError("body failed")
    except KeyError:
        pass
    assert not any(n in namespaces() for n in made.namespaces)
    assert not any(h in links() for h in made.host_ends)
