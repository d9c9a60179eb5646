"""apiary.torch.Optimizer: wraps any torch.optim optimizer so that it steps
together with an Apiary swarm.

Each step() adds this mini-batch's gradients to the epoch's accumulation (the
C++ CollaborativeOptimizer, weighted by batch size). When the swarm has
processed target_batch_size samples, the peers average their gradients
(butterfly all-reduce, optional fp16/8-bit compression) and the wrapped
optimizer steps with the average — so every peer takes the same step. Every
averaging.average_state_every epochs the parameters and the wrapped
optimizer's statistics (e.g. AdamW's exp_avg and exp_avg_sq) are averaged too;
a late joiner downloads them from its peers before its first step. With
local_updates=N the wrapped optimizer steps every call and the parameters are
averaged every N steps (DiLoCo, outer Nesterov step toward their mean; they
travel with state_compression's codec).

Learning-rate schedulers take this object as their optimizer (it is a
torch.optim.Optimizer whose param_groups are the wrapped one's), or the
wrapped optimizer itself: either way the wrapped step uses the current rate.

Errors are apiary.Error subclasses with the CLI's messages (an unknown option,
a bad run configuration: apiary.InvalidArgument, also a ValueError).
Not supported yet: averaging.overlap in target-batch mode (turned off with a
warning: the wrapped optimizer cannot be copied for the speculative step; with
local_updates it works), sparse gradients,
parameters of several devices or dtypes other than float32."""

import json
import time

import torch

from .. import _apiary
from .flat import FlatSet


def _trainable(optimizer):
    seen, params = set(), []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
    return params


# Keyword arguments that are run-configuration fields: name → (section, field).
_CONFIG_FIELDS = {
    "compression": ("compression", "gradients"),
    "state_compression": ("compression", "state"),
    "local_updates": ("averaging", "local_steps"),
    "outer_lr": ("averaging", "outer_lr"),
    "outer_momentum": ("averaging", "outer_momentum"),
    "average_state_every": ("averaging", "average_state_every"),
    "matchmaking_time": ("averaging", "matchmaking_time"),
    "averaging_timeout": ("averaging", "averaging_timeout"),
    "target_group_size": ("averaging", "target_group_size"),
    "min_group_size": ("averaging", "min_group_size"),
    "overlap": ("averaging", "overlap"),
}


def _run_config(options, target_batch_size, batch_size):
    """The run configuration JSON from the keyword arguments (the names of
    optimizer/run_config.hpp's fields); takes them out of `options`."""
    config = json.loads(json.dumps(options.pop("run_config", None) or {}))
    if options.get("local_updates") is not None:
        config.setdefault("averaging", {})["mode"] = "local_updates"
    for name, (section, field) in _CONFIG_FIELDS.items():
        value = options.pop(name, None)
        if value is not None:
            config.setdefault(section, {})[field] = value
    if batch_size and batch_size <= target_batch_size and "batch_size" not in config:
        config["batch_size"] = int(batch_size)
    return json.dumps(config)


class Optimizer(torch.optim.Optimizer):
    """Collaborative wrapper of `optimizer` (any torch.optim optimizer).

    run: the run's name (peers of one run train together).
    peers: apiary:// addresses of any peers (a coordinator's); empty: start a
        new swarm others join through `.address` (or solo=True: train alone).
    target_batch_size: samples per collaborative step, swarm-wide; None: the
        run's configuration as its coordinator published it (fetched from
        `peers`, checked against the run key; see .run_config).
    batch_size: this peer's samples per step() (step(batch_size=…) overrides).
    listen: HOST:PORT to accept peers on (default 127.0.0.1:0).
    client_mode: accept no connections (behind a NAT).
    compression / state_compression: none | fp16 | bf16 | 8bit.
    local_updates: N inner steps per averaging round (DiLoCo; the parameters are
        averaged with state_compression); None: target batch.
    outer_lr, outer_momentum: local updates' outer Nesterov step (0.7, 0.9).
    average_state_every, matchmaking_time, averaging_timeout, target_group_size,
    min_group_size: the run configuration's averaging fields.
    run_config: any other run-configuration fields, as a dict.
    stage: copy through separate host buffers even on the CPU (as on a GPU;
        for tests of the staging path).
    """

    def __init__(self, optimizer, *, run, target_batch_size=None, batch_size=None, peers=(),
                 listen=None, client_mode=False, solo=False, run_key="", **options):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("apiary.torch.Optimizer wraps a torch.optim.Optimizer")
        if isinstance(peers, str):
            peers = [p for p in peers.split(",") if p.strip()]
        self.run_config = None
        if target_batch_size is None:
            target_batch_size = self._fetched_config(run, peers, run_key, options)
        self.torch_optimizer = optimizer
        self.batch_size = batch_size
        self._native = None
        self._flat = FlatSet(_trainable(optimizer), stage=bool(options.pop("stage", False)))
        self._params = self._flat_params()
        self._grads = self._flat.new_buffer()
        self._grad_views = self._flat.views(self._grads[0])
        self._point_grads()
        self._state_keys, self._state = self._flat_state()
        native_options = {"run": run, "target_batch_size": int(target_batch_size),
                          "peers": list(peers), "client_mode": bool(client_mode),
                          "start_swarm": not peers and not solo,
                          "run_config_json": _run_config(options, target_batch_size, batch_size)}
        if listen:
            native_options["listen"] = listen
        native_options.update(options)  # unknown names: the engine's error names them
        self._native = _apiary.Optimizer(
            self._params[1].numpy(), self._grads[1].numpy(), self._apply,
            [host.numpy() for _, host in self._state], self._state_replaced, native_options)
        self._state_replaced()  # a state downloaded in the constructor: counters too

    def _fetched_config(self, run, peers, run_key, options):
        """The coordinator's configuration becomes this peer's: returns its
        target batch size and puts the rest in options["run_config"]."""
        if not peers:
            raise ValueError("target_batch_size: give it, or peers to fetch the run's from")
        given = [k for k in options if k not in ("stage",)]
        if given:
            raise ValueError(f"{', '.join(sorted(given))}: the run's configuration decides "
                             "(fetched from its coordinator); pass target_batch_size to set them")
        from .. import fetch_run_config
        self.run_config = fetch_run_config(run, peers, run_key)
        options["run_config"] = self.run_config
        return int(self.run_config["target_batch_size"])

    # torch.optim.Optimizer's surface, for schedulers and user code.
    @property
    def param_groups(self):
        return self.torch_optimizer.param_groups

    @property
    def state(self):
        return self.torch_optimizer.state

    @property
    def defaults(self):
        return self.torch_optimizer.defaults

    def __repr__(self):
        return f"apiary.torch.Optimizer({self.torch_optimizer!r})"

    # Flat buffers (see flat.py).
    def _flat_params(self):
        device, host = self._flat.new_buffer()
        with torch.no_grad():
            self._flat.gather([p.data for p in self._flat.params], device)
            for p, view in zip(self._flat.params, self._flat.views(device)):
                p.data = view
        self._flat.to_host([(device, host)])
        return device, host

    def _point_grads(self):
        """Every parameter's .grad is its view of the flat gradient buffer
        (re-pointed when user code replaced or dropped it)."""
        for i, (p, view) in enumerate(zip(self._flat.params, self._grad_views)):
            grad = p.grad
            if grad is not None and grad.data_ptr() == view.data_ptr():
                continue
            o, n = self._flat.offsets[i]
            with torch.no_grad():
                if grad is None:
                    view.zero_()
                else:
                    self._grads[0][o:o + n].copy_(grad.reshape(-1))
            p.grad = view

    def _materialize_state(self):
        """torch optimizers create their statistics at the first step: take one
        with zero gradients and learning rate 0, then restore the parameters
        and set the step counters back to 0."""
        opt, params = self.torch_optimizer, self._flat.params
        if all(opt.state.get(p) for p in params):
            return
        saved = self._params[0].clone()
        rates = [group.get("lr") for group in opt.param_groups]
        for group in opt.param_groups:
            if "lr" in group:
                group["lr"] = 0.0
        with torch.no_grad():
            self._grads[0].zero_()
        opt.step()
        for group, rate in zip(opt.param_groups, rates):
            if rate is not None:
                group["lr"] = rate
        with torch.no_grad():
            self._params[0].copy_(saved)
        self._set_step_counters(0)

    def _flat_state(self):
        """Each per-parameter statistic (a float32 tensor shaped like its
        parameter, the same keys for all) as one flat buffer."""
        self._materialize_state()
        opt, params = self.torch_optimizer, self._flat.params
        first = opt.state[params[0]]
        keys = sorted(k for k, v in first.items()
                      if torch.is_tensor(v) and v.dtype == torch.float32
                      and v.shape == params[0].shape)
        for p in params:
            st = opt.state[p]
            for k in keys:
                if not (torch.is_tensor(st.get(k)) and st[k].shape == p.shape):
                    raise ValueError(f"optimizer state '{k}' is not shaped like every parameter")
        buffers = []
        for k in keys:
            device, host = self._flat.new_buffer()
            self._adopt_state(k, device)
            buffers.append((device, host))
        self._flat.to_host(buffers)
        return keys, buffers

    def _adopt_state(self, key, flat):
        """Copies statistic `key` of every parameter into `flat` and makes the
        wrapped optimizer use views of it from now on."""
        opt, params = self.torch_optimizer, self._flat.params
        with torch.no_grad():
            self._flat.gather([opt.state[p][key] for p in params], flat)
        for p, view in zip(params, self._flat.views(flat)):
            opt.state[p][key] = view

    def _set_step_counters(self, steps):
        for p in self._flat.params:
            st = self.torch_optimizer.state.get(p)
            if not st or "step" not in st:
                continue
            if torch.is_tensor(st["step"]):
                st["step"].fill_(steps)
            else:
                st["step"] = steps

    # Called by the engine (on this thread, inside step() or the constructor).
    def _apply(self, grads, epoch):
        """One wrapped-optimizer step with `grads` (a host view, valid during
        the call): the swarm's average at a boundary, or this peer's own
        gradients for an inner step of local updates."""
        host_grads = torch.from_numpy(grads)
        with torch.no_grad():
            # Local updates hand back this peer's own gradients: already on the device.
            if host_grads.data_ptr() != self._grads[1].data_ptr():
                self._grads[0].copy_(host_grads)
        self.torch_optimizer.step()
        self._flat.to_host([self._params] + self._state)

    def _state_replaced(self):
        """The engine wrote parameters or statistics (state averaging, a state
        downloaded from peers): copy them to the device, set the counters."""
        self._flat.to_device([self._params] + self._state)
        if self._native is not None:
            self._set_step_counters(self._native.optimizer_steps)

    # The training loop's API.
    def step(self, closure=None, batch_size=None):
        """After backward: adds this mini-batch (batch_size samples, default the
        constructor's) and, when the swarm reached the target, steps together.
        Returns True when this call ended an epoch."""
        if closure is not None:
            with torch.enable_grad():
                closure()
        batch = batch_size or self.batch_size
        if not batch:
            raise ValueError("step(): give batch_size here or to the constructor")
        self._point_grads()
        self._flat.to_host([self._grads])
        return self._native.step(int(batch))

    def finish(self, timeout=30.0, quiet=None):
        """At the end of this peer's data, before close(): the samples it
        accumulated since the swarm's last step go into the epoch's round
        instead of being dropped. Waits (at most `timeout` seconds) for the
        swarm's epoch to complete with them, or for every peer to stop adding
        samples for `quiet` seconds (default: 3 of this peer's batches, at
        least 2 s), then steps with the swarm. Returns True when it stepped."""
        return self._native.finish_epoch(float(timeout), 0.0 if quiet is None else float(quiet))

    def zero_grad(self, set_to_none=False):
        """Zeroes the gradients in place (they stay views of the flat buffer,
        whatever set_to_none says)."""
        with torch.no_grad():
            self._grads[0].zero_()
        self._point_grads()

    def set_training_metrics(self, loss=None, test_accuracy=None):
        """Loss and accuracy for the swarm's progress reports (dashboard, status)."""
        self._native.set_training_metrics(-1.0 if loss is None else float(loss),
                                          -1.0 if test_accuracy is None else float(test_accuracy))

    def wait_for_peers(self, count, timeout=60.0):
        """Blocks until the swarm shows `count` peers (this one included) or
        `timeout` seconds pass; returns how many it saw. Call it before the
        first step when the peers start together (a benchmark, a DDP-style
        launch), so that none trains alone while the others are starting."""
        deadline = time.monotonic() + float(timeout)
        while True:  # in slices, so that Ctrl-C is seen
            left = deadline - time.monotonic()
            seen = self._native.wait_for_peers(int(count), max(0.0, min(0.5, left)))
            if seen >= count or left <= 0.5:
                return seen

    def load_state_from_peers(self, min_epoch=0):
        return self._native.load_state_from_peers(int(min_epoch))

    def state_dict(self):
        return {"epoch": self.epoch, "optimizer_steps": self._native.optimizer_steps,
                "optimizer": self.torch_optimizer.state_dict()}

    def load_state_dict(self, state_dict):
        """Restores a state_dict() (with the model's own parameters loaded by
        the caller): the wrapped optimizer's statistics, the epoch, the steps."""
        self.torch_optimizer.load_state_dict(state_dict["optimizer"])
        for key, (device, _) in zip(self._state_keys, self._state):
            self._adopt_state(key, device)
        self._flat.to_host([self._params] + self._state)
        self._native.restore(int(state_dict["epoch"]), int(state_dict["optimizer_steps"]))

    @property
    def epoch(self):
        return self._native.epoch

    @property
    def address(self):
        return self._native.address

    @property
    def last_epoch_averaged(self):
        return self._native.last_epoch_averaged

    @property
    def samples_per_second(self):
        return self._native.samples_per_second

    @property
    def local_samples(self):
        return self._native.local_samples

    @property
    def failed_rounds(self):
        return self._native.failed_rounds

    @property
    def communication_blocked_seconds(self):
        """Total seconds step() (and state downloads) waited on the network."""
        return self._native.communication_blocked_seconds

    def close(self):
        """Leaves the swarm (also at exit of a `with` block)."""
        if self._native is not None:
            self._native.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
