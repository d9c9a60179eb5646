"""The model's trainable tensors as one flat float32 buffer per kind
(parameters, gradients, each optimizer statistic), which the C++ engine reads
and writes through numpy views.

The tensors the model and the torch optimizer use become views into flat
device buffers (as DDP's gradient buckets are), so nothing is gathered per
step. On the CPU the device buffer is the host buffer the engine sees. On a
GPU each flat buffer has a pinned host twin, and `to_host` / `to_device`
stage the copies (non-blocking, then one synchronize). `stage=True` stages on
the CPU too (separate host twins): how the staging path is tested without a GPU."""

import torch


class FlatSet:
    """Flat buffers over `params` (all on one device, float32)."""

    def __init__(self, params, stage=False):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer has no trainable parameters")
        self.device = self.params[0].device
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"parameters on {self.device}: apiary.torch supports cpu and cuda")
        for p in self.params:
            if p.device != self.device:
                raise ValueError(f"parameters on several devices ({self.device}, {p.device}): "
                                 "apiary.torch needs them on one")
            if p.dtype != torch.float32:
                raise ValueError(f"parameters must be float32 (found {p.dtype})")
        self.offsets, total = [], 0
        for p in self.params:
            self.offsets.append((total, p.numel()))
            total += p.numel()
        self.numel = total
        self.on_gpu = self.device.type == "cuda"
        self.staged = self.on_gpu or stage

    def new_buffer(self):
        """(device buffer, host buffer): the same tensor on the CPU."""
        device = torch.zeros(self.numel, dtype=torch.float32, device=self.device)
        if not self.staged:
            return device, device
        return device, torch.zeros(self.numel, dtype=torch.float32, pin_memory=self.on_gpu)

    def views(self, flat):
        """One view of `flat` per parameter, shaped like it."""
        return [flat[o:o + n].view_as(p) for p, (o, n) in zip(self.params, self.offsets)]

    def gather(self, tensors, flat):
        """Copies per-parameter `tensors` (None: zeros) into `flat`."""
        for t, (o, n) in zip(tensors, self.offsets):
            if t is None:
                flat[o:o + n].zero_()
            else:
                flat[o:o + n].copy_(t.reshape(-1))

    def to_host(self, pairs):
        self._copy([(host, device) for device, host in pairs])

    def to_device(self, pairs):
        self._copy(pairs)

    def _copy(self, pairs):
        """(destination, source) pairs: queued without blocking, then one wait."""
        if not self.staged:
            return
        with torch.no_grad():
            for destination, source in pairs:
                destination.copy_(source, non_blocking=self.on_gpu)
        if self.on_gpu:
            torch.cuda.current_stream(self.device).synchronize()
