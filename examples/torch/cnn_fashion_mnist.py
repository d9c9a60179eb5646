#!/usr/bin/python3
"""A small CNN on Fashion-MNIST, read from the IDX files of Debian's
`dataset-fashion-mnist` package (gzip or raw), solo (--optimizer torch) or in an
Apiary swarm (--optimizer apiary). Reports the test-set accuracy and loss.

  /usr/bin/python3 examples/torch/cnn_fashion_mnist.py --steps 500
"""

import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """One IDX file (magic 0x0000TTDD: type TT, DD dimensions, big-endian sizes)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * dims:]
    if len(body) != expected:
        raise ValueError(f"{path}: {len(body)} data bytes, header says {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def find_idx(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{stem}[.gz] not found in {folder} (Debian package dataset-fashion-mnist)")


def load_split(folder: str, prefix: str):
    images = read_idx(find_idx(folder, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(folder, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        sys.exit(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return (x - 0.2860) / 0.3530, torch.from_numpy(labels.astype(np.int64))


class SmallCNN(nn.Module):
    def __init__(self, channels=(16, 32), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.fc1 = nn.Linear(channels[1] * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        logits = model(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(x), loss / len(x)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser, default_batch=32, default_steps=500)
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=DATA_DIR, help="folder with the four IDX files")
    data.add_argument("--test-limit", type=int, default=None,
                      help="evaluate on the first N test images only (default: all 10000)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    common.setup_torch(args)
    train_x, train_y = load_split(args.data_dir, "train")
    test_x, test_y = load_split(args.data_dir, "t10k")
    if args.test_limit:
        test_x, test_y = test_x[:args.test_limit], test_y[:args.test_limit]
    model = SmallCNN()
    torch_opt = torch.optim.AdamW(model.parameters(), lr=args.lr or 1e-3)

    def batch_loss(generator):
        index = torch.randint(0, len(train_x), (args.batch_size,), generator=generator)
        return F.cross_entropy(model(train_x[index]), train_y[index]), len(index)

    def test_set():
        accuracy, loss = evaluate(model, test_x, test_y)
        return {"test_accuracy": round(accuracy, 4), "test_loss": round(loss, 5)}

    return common.run(args, "cnn", torch_opt, batch_loss, test_set)


if __name__ == "__main__":
    main()
