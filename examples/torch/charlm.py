#!/usr/bin/python3
"""A small GPT-style character language model (4 layers, width 128, context 128)
trained on the text of Debian's `fortunes` package, solo (--optimizer torch) or
in an Apiary swarm (--optimizer apiary). The held-out split is the last 10 % of
the corpus; its loss (mean cross-entropy per character, nats) is the result.

  /usr/bin/python3 examples/torch/charlm.py --steps 200
"""

import argparse
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FORTUNES_DIR = "/usr/share/games/fortunes"


def read_corpus(path: str) -> bytes:
    """The corpus as bytes: one file, or every extension-less file of a folder
    (the fortune texts; .dat are indexes, .u8 duplicates) in name order."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    if not os.path.isdir(path):
        sys.exit(f"corpus {path} not found (Debian package `fortunes` installs {FORTUNES_DIR})")
    names = sorted(n for n in os.listdir(path)
                   if "." not in n and os.path.isfile(os.path.join(path, n)))
    if not names:
        sys.exit(f"corpus {path}: no extension-less text files")
    parts = []
    for name in names:
        with open(os.path.join(path, name), "rb") as f:
            parts.append(f.read())
    return b"".join(parts)


class CharCorpus:
    """Byte-level tokens; the vocabulary is the bytes the corpus uses. The split
    is deterministic: the last `held_out` fraction is the validation text."""

    def __init__(self, text: bytes, held_out: float):
        self.vocab = sorted(set(text))
        lookup = torch.zeros(256, dtype=torch.long)
        lookup[torch.tensor(self.vocab)] = torch.arange(len(self.vocab))
        tokens = lookup[torch.frombuffer(bytearray(text), dtype=torch.uint8).long()]
        split = int(len(tokens) * (1.0 - held_out))
        self.train, self.val = tokens[:split], tokens[split:]

    def batch(self, context: int, size: int, generator: torch.Generator):
        starts = torch.randint(0, len(self.train) - context - 1, (size,), generator=generator)
        return self._windows(self.train, starts, context)

    def val_batches(self, context: int, windows: int, size: int):
        """`windows` evenly spaced validation windows, the same on every run."""
        last = len(self.val) - context - 1
        starts = torch.linspace(0, last, windows).long()
        for i in range(0, windows, size):
            yield self._windows(self.val, starts[i:i + size], context)

    @staticmethod
    def _windows(tokens, starts, context):
        offsets = torch.arange(context + 1)
        chunk = tokens[starts[:, None] + offsets[None, :]]
        return chunk[:, :-1], chunk[:, 1:]


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, context: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        # Added to the scores: -inf above the diagonal. A float buffer, not bool,
        # because gloo (DDP's initial broadcast) has no bool tensors.
        mask = torch.full((context, context), float("-inf")).triu(diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, length, self.heads, width // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(width // self.heads)
        scores = scores + self.mask[:length, :length]
        y = F.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, context: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads, context)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, layers=4, width=128, heads=4, context=128):
        super().__init__()
        self.context = context
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*[Block(width, heads, context) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.token(tokens) + self.position(positions)[None]
        return self.head(self.norm(self.blocks(x)))


def lm_loss(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate(model, corpus: CharCorpus, windows: int, batch: int) -> float:
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for x, y in corpus.val_batches(model.context, windows, batch):
        x, y = x.to(device), y.to(device)
        total += lm_loss(model, x, y).item() * x.shape[0]
        count += x.shape[0]
    model.train()
    return total / count


def make_parser():
    """The flags (benchmarks/ddp_charlm.py adds its own to them)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common.add_common_args(parser, default_batch=32, default_steps=200)
    model = parser.add_argument_group("model and data")
    model.add_argument("--corpus", default=FORTUNES_DIR, help="text file or folder of texts")
    model.add_argument("--held-out", type=float, default=0.1, help="validation fraction (the end)")
    model.add_argument("--layers", type=int, default=4)
    model.add_argument("--width", type=int, default=128)
    model.add_argument("--heads", type=int, default=4)
    model.add_argument("--context", type=int, default=128)
    model.add_argument("--eval-windows", type=int, default=256,
                       help="held-out windows of --context characters to evaluate on")
    return parser


def parse_args(argv=None):
    return make_parser().parse_args(argv)


def build(args):
    """The corpus and the model (the model is the same for every --seed peer)."""
    common.setup_torch(args)
    corpus = CharCorpus(read_corpus(args.corpus), args.held_out)
    model = CharGPT(len(corpus.vocab), args.layers, args.width, args.heads, args.context)
    return corpus, model.to(args.device)


def main(argv=None):
    args = parse_args(argv)
    corpus, model = build(args)
    torch_opt = torch.optim.AdamW(model.parameters(), lr=args.lr or 1e-3, weight_decay=0.01)

    def batch_loss(generator):
        x, y = corpus.batch(args.context, args.batch_size, generator)
        return lm_loss(model, x.to(args.device), y.to(args.device)), x.shape[0]

    def held_out():
        return {"val_loss": round(evaluate(model, corpus, args.eval_windows, args.batch_size), 5)}

    return common.run(args, "charlm", torch_opt, batch_loss, held_out)


if __name__ == "__main__":
    main()
