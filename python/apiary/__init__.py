"""Apiary: train one model together over the internet.

    import apiary
    dht = apiary.DHT(initial_peers=["apiary://…@203.0.113.5:31337"])
    import apiary.torch as at          # the collaborative optimizer for torch.optim

The C++ engine is the extension apiary._apiary; errors it raises are
apiary.Error subclasses (apiary.errors) with the messages the CLI prints.
"""

from . import _apiary
from .errors import (Error, InvalidArgument, NotFound, PermissionDenied, Unavailable,
                     DeadlineExceeded, BadMessage)

import json as _json

__version__ = _apiary.__version__
DHT = _apiary.DHT
dht_time = _apiary.dht_time


def fetch_run_config(run, peers, run_key=""):
    """The run's configuration (a dict) as the coordinator published it,
    accepted only with the run key's signature (run_key: its peer id; default:
    the peers named). For model.type "external", model.options carries the
    training script's own fields."""
    if isinstance(peers, str):
        peers = [p for p in peers.split(",") if p.strip()]
    return _json.loads(_apiary.fetch_run_config(run, list(peers), run_key))


def check_run_config(config):
    """Validates a run configuration (dict or JSON text) as the coordinator
    does; returns it canonical, as a dict. apiary.InvalidArgument names the field."""
    text = config if isinstance(config, str) else _json.dumps(config)
    return _json.loads(_apiary.check_run_config(text))

__all__ = ["DHT", "dht_time", "fetch_run_config", "check_run_config", "Error", "InvalidArgument", "NotFound", "PermissionDenied",
           "Unavailable", "DeadlineExceeded", "BadMessage", "__version__"]
