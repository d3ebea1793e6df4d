#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate with a small torch model through metricsd.hf.Streamer, the way Hugging Face
transformers' generate() drives a streamer: put(prompt ids), then put(next token) after
each step, then end(). The model is built here (random weights, a fixed seed): an
embedding, one transformer encoder layer with a causal mask, and a vocabulary head, so
nothing is downloaded. It prints one JSON line: the tokens, the prompt length and the
wall time.

    PYTHONPATH=bindings/python METRICSD_LIBRARY=build/client-lib/libmetricsd.so \
        python3 examples/python/torch_streamer.py --tokens 32
    build/ctl/metricsctl stats tiny-torch
"""
import argparse
import json
import time

import torch

import metricsd
from metricsd.hf import Streamer


class TinyLM(torch.nn.Module):
    def __init__(self, vocab: int = 256, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.layer = torch.nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0,
                                                      batch_first=True)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        mask = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
        return self.head(self.layer(self.embed(ids), src_mask=mask))


@torch.no_grad()
def generate(model: TinyLM, ids: torch.Tensor, max_new_tokens: int, streamer: Streamer) -> torch.Tensor:
    """Greedy decoding, with generate()'s streamer protocol."""
    streamer.put(ids)
    for _ in range(max_new_tokens):
        logits = model(ids)[:, -1, :]
        nxt = logits.argmax(dim=-1)                # shape (batch,)
        streamer.put(nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    streamer.end()
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=None, help="metricsd's socket (default: the usual)")
    ap.add_argument("--model", default="tiny-torch")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=12, help="prompt length in tokens")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = TinyLM().eval()
    prompt = torch.randint(0, 256, (1, args.prompt))
    with metricsd.Client(args.socket, "torch-example") as client:
        t0 = time.perf_counter()
        with Streamer(client, args.model, backend="cpu") as streamer:
            out = generate(model, prompt, args.tokens, streamer)
        wall = time.perf_counter() - t0
        client.flush(5)
    print(json.dumps({"model": args.model, "prompt_tokens": args.prompt,
                      "output_tokens": int(out.shape[1] - args.prompt),
                      "tokens": out[0, args.prompt:].tolist(), "wall_s": round(wall, 4)}))


if __name__ == "__main__":
    main()
