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

__version__ = _apiary.__version__
DHT = _apiary.DHT
dht_time = _apiary.dht_time

__all__ = ["DHT", "dht_time", "Error", "InvalidArgument", "NotFound", "PermissionDenied",
           "Unavailable", "DeadlineExceeded", "BadMessage", "__version__"]
