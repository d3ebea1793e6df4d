# SPDX-License-Identifier: MIT
"""A Hugging Face transformers streamer that times generations with metricsd.

    from metricsd.hf import Streamer
    streamer = Streamer(client, "qwen2-0.5b", backend="cuda")
    model.generate(**inputs, max_new_tokens=128, streamer=streamer)

``generate`` calls ``put(input_ids)`` once with the prompt, then ``put(next_tokens)``
after each decoding step, then ``end()``. The prompt's ``put`` begins the generation
(its length is the prompt token count, not output); each later ``put`` counts the
tokens of its tensor (the first of them is the first token: TTFT); ``end()`` ends it.
Tokens are counted from shapes, so a step costs one ``metricsd_token`` call and no copy
from the GPU: anything with a ``shape`` (a torch tensor, a numpy array, a plain object)
will do, and neither torch nor transformers is imported here.

Batches: a prompt of shape (B, P) with B > 1 begins B generations, one per row (a
request each, ``request_ids`` may name them), every step counting one token for each.
A row that has finished still receives padding from ``generate``; pass
``eos_token_id`` (an int or a list) and a row stops counting after it emits one (that
reads the step's values, ``tolist()``, so only then is the tensor copied).

Used as a context manager around ``generate``, an exception records an error on every
row's generation (kind: the exception's type) and propagates. After ``end()`` the
streamer can be used again: the next ``put`` is the next generation's prompt.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Union

from .client import Client, Generation, Labels, Status

__all__ = ["Streamer"]


def _shape(value: Any) -> tuple:
    shape = getattr(value, "shape", None)
    if shape is None:  # a list of ids, or a list of lists
        if isinstance(value, (list, tuple)):
            if value and isinstance(value[0], (list, tuple)):
                return (len(value), len(value[0]))
            return (len(value),)
        return (1,)
    return tuple(int(d) for d in shape)


def _rows(value: Any) -> List[List[int]]:
    v = value.tolist() if hasattr(value, "tolist") else value
    if not isinstance(v, list):
        return [[int(v)]]
    if v and not isinstance(v[0], list):
        return [[int(x)] for x in v] if len(v) > 1 else [[int(v[0])]]
    return [[int(x) for x in r] for r in v]


class Streamer:
    """A ``streamer=`` for ``generate``: times each generation with metricsd.

    Keyword options go to ``client.generation`` (backend, request_id or request_ids
    for a batch, labels, engine, gpu_layers); ``eos_token_id`` stops a batch row's
    count at its end-of-sequence token.
    """

    def __init__(self, client: Client, model: str, *, backend: Optional[str] = None,
                 request_id: Optional[str] = None,
                 request_ids: Optional[Sequence[str]] = None, labels: Labels = None,
                 engine: Optional[str] = None, gpu_layers: int = 0,
                 eos_token_id: Union[int, Iterable[int], None] = None,
                 cached_prompt_tokens: int = 0) -> None:
        self.client = client
        self.model = model
        self.backend = backend
        self.request_id = request_id
        self.request_ids = list(request_ids) if request_ids is not None else None
        self.labels = labels
        self.engine = engine
        self.gpu_layers = gpu_layers
        self.cached_prompt_tokens = cached_prompt_tokens
        if eos_token_id is None:
            self.eos: Optional[frozenset] = None
        elif isinstance(eos_token_id, int):
            self.eos = frozenset((eos_token_id,))
        else:
            self.eos = frozenset(int(x) for x in eos_token_id)
        self._gens: List[Generation] = []
        self._done: List[bool] = []
        self.prompt_tokens = 0  # of the current (or last) generation, per row
        self.output_tokens = 0  # of row 0 of the current (or last) generation

    def _begin(self, value: Any) -> None:
        shape = _shape(value)
        rows = shape[0] if len(shape) >= 2 else 1
        self.prompt_tokens = shape[-1] if shape else 0
        self.output_tokens = 0
        self._gens, self._done = [], []
        for i in range(rows):
            rid = self.request_id if rows == 1 else None
            if self.request_ids is not None and i < len(self.request_ids):
                rid = self.request_ids[i]
            g = self.client.generation(self.model, self.backend, request_id=rid,
                                       labels=self.labels, engine=self.engine,
                                       gpu_layers=self.gpu_layers)
            g.prompt(self.prompt_tokens, min(self.cached_prompt_tokens, self.prompt_tokens))
            self._gens.append(g)
            self._done.append(False)

    def put(self, value: Any) -> None:
        """What ``generate`` calls: the prompt first, then each step's new tokens."""
        if not self._gens:
            self._begin(value)
            return
        gens = self._gens
        if len(gens) == 1:
            shape = _shape(value)
            n = 1
            for d in shape:
                n *= d
            if n:
                gens[0].token(n)
                self.output_tokens += n
            return
        if self.eos is None:
            shape = _shape(value)
            per_row = 1
            for d in shape[1:]:
                per_row *= d
            for g in gens:
                g.token(per_row)
            self.output_tokens += per_row
            return
        for i, row in enumerate(_rows(value)[:len(gens)]):
            if self._done[i]:
                continue
            n = 0
            for tok in row:
                n += 1
                if tok in self.eos:
                    self._done[i] = True
                    break
            gens[i].token(n)
            if i == 0:
                self.output_tokens += n

    def end(self, status: Union[Status, int, str, None] = None,
            error_kind: Optional[str] = None) -> None:
        """What ``generate`` calls at the end: ends the generation(s)."""
        gens, self._gens = self._gens, []
        for g in gens:
            g.end(status, error_kind)

    def __enter__(self) -> "Streamer":
        return self

    def __exit__(self, et: Optional[type], ev: Optional[BaseException], tb: Any) -> None:
        if et is None:
            self.end()
        elif issubclass(et, Exception):
            self.end(Status.ERROR, et.__name__)
        else:
            self.end(Status.CANCELLED, et.__name__)
