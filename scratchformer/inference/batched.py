"""The batched decoding passes: one token for each of many sequences of one model, in one pass.

These are the maths of continuous batching (:mod:`.batching` schedules them). Each function is tested
equal, row by row, to the model's own forward pass on that row alone (tests/test_batching.py).

Rows of different lengths in one GPT pass. Row r has cached p_r positions (its window's tokens
0 … p_r − 1) and feeds its newest token at position p_r. :func:`batched_gpt_step` gives every row its
own position vector P[p_r], writes its key and value into slot p_r of its own cache rows
(:class:`BatchedKVCache`), and lets the one query of row r attend over the slots j = 0 … S − 1,
S = max_r p_r + 1, through the key mask M[r, j] = (j ≤ p_r): the slots past a row's own length are
padding and get weight 0. The model's own forward cannot do this (one ``start`` position for the
whole batch), so the pass is written with ``torch.nn.functional`` on the model's weights, as
model/fast/decode.py does.

The LSTM needs no mask: its step reads one token and the row's (h, c), whatever the row has read
before (:func:`batched_lstm_step`).

:class:`GPTBatch` and :class:`LSTMBatch` hold one model's batched state and give the scheduler four
verbs: ``prefill`` new rows, ``step`` every row at once, ``refill`` rows whose cache is full, ``move``
a row into a leaving row's place. The window policy is generation.py's. Rows prefilled (or refilled)
in the same step whose windows have the same length are read together, in one pass
(:func:`same_length`): each row's numbers are the ones its own pass would give, up to float rounding
(tests/test_batching.py), and 32 visitors who arrive together cost one prompt pass, not 32.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..model.attention import KVCache
from ..model.fast import FastGPTDecoder, fast_decoder
from ..model.lstm import LSTMLM
from .generation import refill_keep


class Row(Protocol):
    """What a batch needs of a row (:class:`~scratchformer.inference.batch_streams.Row` is one)."""

    seq: list[int]              # prompt ids + the ids generated so far
    start: int                  # index in seq of the first token the model's window holds (GPT)
    length: int                 # positions in the row's cache (GPT); tokens read (LSTM)


def same_length(rows: list, length) -> list[list[int]]:
    """The positions in ``rows`` grouped by ``length(row)`` (groups in order of first appearance):
    each group is read in one pass."""
    groups: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(length(row), []).append(i)
    return list(groups.values())


# --------------------------------------------------------------- the batched GPT pass and its cache

class BatchedKVCache:
    """The keys and values of up to ``max_rows`` sequences of one GPT, each of its own length.

    Per layer ``k[layer]`` and ``v[layer]`` are ``[rows, h, block_size + 1, d_head]``: row r's cached
    positions 0 … p_r − 1 sit in slots 0 … p_r − 1, the slots after them are padding (masked out by
    :func:`batched_gpt_step`). The last slot (index ``block_size``, :attr:`scratch`) is never
    attended to: a row that must not move this step writes its key and value there.

    The storage starts at zeros (padding must be finite: a masked weight of 0 times a NaN would still
    be NaN) and grows by doubling, up to ``max_rows`` rows, as rows are asked for.
    """

    def __init__(self, model: nn.Module, max_rows: int):
        cfg = model.config
        self.n_layer, self.block_size, self.max_rows = cfg.n_layer, cfg.block_size, max_rows
        self.n_head, self.d_head = cfg.n_head, cfg.n_embd // cfg.n_head
        w = model.embed.tok.weight
        self.device, self.dtype = w.device, w.dtype
        self.scratch = self.block_size
        self.rows = 0
        self.k: list[Tensor] = []
        self.v: list[Tensor] = []
        self.ensure_rows(min(max_rows, 4))

    def ensure_rows(self, n: int) -> None:
        """Make room for at least ``n`` rows (the stored rows are kept)."""
        if n <= self.rows:
            return
        if n > self.max_rows:
            raise ValueError(f"the batch holds at most {self.max_rows} rows; {n} were asked for")
        rows = min(self.max_rows, max(n, 2 * self.rows))
        shape = (rows, self.n_head, self.block_size + 1, self.d_head)
        new_k = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in range(self.n_layer)]
        new_v = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in range(self.n_layer)]
        for old, new in zip(self.k + self.v, new_k + new_v):
            new[:self.rows] = old
        self.k, self.v, self.rows = new_k, new_v, rows

    def store(self, row: int, cache: KVCache, b: int = 0) -> None:
        """Copy sequence ``b`` of a :class:`KVCache` (a prefill's) into ``row``'s slots 0 … length − 1."""
        n = cache.length
        for layer, layer_cache in enumerate(cache.layers):
            self.k[layer][row, :, :n] = layer_cache.k[b]
            self.v[layer][row, :, :n] = layer_cache.v[b]

    def move(self, src: int, dst: int, length: int) -> None:
        """Copy row ``src``'s first ``length`` slots into row ``dst`` (a leaving row's place is taken)."""
        for store in self.k + self.v:
            store[dst, :, :length] = store[src, :, :length]


def batched_gpt_step(decoder: FastGPTDecoder, cache: BatchedKVCache, tokens: list[int],
                     positions: list[int], moving: list[bool]) -> Tensor:
    """One decoding step of rows 0 … n−1 of ``cache``, each at its own position: logits [n, V].

    Row r feeds token t_r = ``tokens[r]`` at position p_r = ``positions[r]`` (= the row's cached
    length, ≤ block_size − 1), and for every layer, with the one query q_r of the row:

        x_r     = E[t_r] · s + P[p_r]                        (s = √d_model when the model scales)
        K_r[p_r], V_r[p_r] = k_r, v_r                        (the row's new key and value, in slot p_r)
        M[r, j] = (j ≤ p_r)          for j = 0 … S − 1,  S = max over moving rows of p_r + 1
        a_r     = softmax(q_r · K_rᵀ / √d_head + (0 where M, −∞ elsewhere)) · V_r

    so row r attends over exactly its own p_r + 1 keys, as the model's own pass on that row alone
    would, and the padded slots j > p_r get weight 0. The rest of the layer (W^O, residuals,
    LayerNorms, feed-forward) works on each row separately, as in
    :class:`~scratchformer.model.fast.decode.FastGPTDecoder` whose gathered weights it uses.

    A row with ``moving[r]`` False rides along (taking it out of the batch would copy every other
    row's cache): it is computed at position 0 with M[r, j] = (j = 0), writes into the scratch slot
    instead of slot p_r, and its logits are to be ignored. Its cache is left as it was.
    """
    d = decoder
    n = len(tokens)
    dev = cache.device
    pos_list = [p if m else 0 for p, m in zip(positions, moving)]
    slot_list = [p if m else cache.scratch for p, m in zip(positions, moving)]
    S = max([p for p, m in zip(positions, moving) if m], default=0) + 1
    rows = torch.arange(n, device=dev)
    pos = torch.tensor(pos_list, device=dev)
    slots = torch.tensor(slot_list, device=dev)
    mask = (torch.arange(S, device=dev)[None, :] <= pos[:, None])[:, None, None, :]  # M [n, 1, 1, S]

    x = F.embedding(torch.tensor(tokens, device=dev), d.w_tok)
    if d.scale != 1.0:
        x = x * d.scale
    x = (x + d.pos_table[pos])[:, None, :]                                             # [n, 1, d]
    width, h = d.d_model, d.n_head
    for layer, (n1, w_qkv, b_qkv, w_o, b_o, n2, w1, b1, act, w2, b2) in enumerate(d.layers):
        y = F.layer_norm(x, (width,), *n1) if d.norm_first else x
        q, k, v = F.linear(y, w_qkv, b_qkv).view(n, 1, 3, h, width // h).permute(2, 0, 3, 1, 4)
        keys, values = cache.k[layer], cache.v[layer]
        keys[rows, :, slots] = k[:, :, 0]          # K_r[p_r] = k_r   ([n, h, d_head] each side)
        values[rows, :, slots] = v[:, :, 0]
        att = F.scaled_dot_product_attention(q, keys[:n, :, :S], values[:n, :, :S], attn_mask=mask)
        att = F.linear(att.transpose(1, 2).reshape(n, 1, width), w_o, b_o)
        if d.norm_first:
            x = x + att
            x = x + F.linear(act(F.linear(F.layer_norm(x, (width,), *n2), w1, b1)), w2, b2)
        else:
            x = F.layer_norm(x + att, (width,), *n1)
            x = F.layer_norm(x + F.linear(act(F.linear(x, w1, b1)), w2, b2), (width,), *n2)
    x = x[:, -1]
    if d.ln_f is not None:
        x = F.layer_norm(x, (width,), *d.ln_f)
    return F.linear(x, d.w_head)



# --------------------------------------------------------------------------- the batched LSTM step

def batched_lstm_step(model: LSTMLM, tokens: list[int], h: Tensor, c: Tensor, moving: list[bool]) -> Tensor:
    """One step of n rows of an LSTM: row r reads token ``tokens[r]`` with its state ``h[:, r], c[:, r]``
    (each [layers, n, hidden]); returns logits [n, V] and updates the state of the moving rows in place.

    For every layer l, x being the layer's input (E[t_r] for layer 0, the new h of layer l − 1 above it):

        z = x·W_ihᵀ + b_ih + h_l·W_hhᵀ + b_hh;   i, f, g, o = σ(z_i), σ(z_f), tanh(z_g), σ(z_o)
        c_l ← f ⊙ c_l + i ⊙ g;                   h_l ← o ⊙ tanh(c_l)

    and logits = h_top·W_outᵀ + b_out: :meth:`~scratchformer.model.lstm.LSTMCell.step`, written with
    ``torch.nn.functional`` on the model's weights (fewer calls than the model's own forward pass,
    which tests/test_batching.py checks it against). Nothing mixes the rows, so no mask is needed; a
    row with ``moving[r]`` False keeps its state (its logits are to be ignored).
    """
    n = len(tokens)
    x = F.embedding(torch.tensor(tokens, device=h.device), model.embed.weight)
    go = None if all(moving) else torch.tensor(moving, device=h.device)[:, None]
    for layer, cell in enumerate(model.lstm.cells):
        z = F.linear(x, cell.ih.weight, cell.ih.bias) + F.linear(h[layer, :n], cell.hh.weight, cell.hh.bias)
        zi, zf, zg, zo = z.chunk(4, dim=-1)
        c_new = torch.sigmoid(zf) * c[layer, :n] + torch.sigmoid(zi) * torch.tanh(zg)
        x = torch.sigmoid(zo) * torch.tanh(c_new)
        if go is None:
            h[layer, :n], c[layer, :n] = x, c_new
        else:
            h[layer, :n] = torch.where(go, x, h[layer, :n])
            c[layer, :n] = torch.where(go, c_new, c[layer, :n])
    return F.linear(x, model.lm_head.weight, model.lm_head.bias)



# ------------------------------------------------------------ one model's rows: the scheduler's verbs

class GPTBatch:
    """Rows of a GPT: a prefill alone (the cache of one sequence, copied into the row), then
    :func:`batched_gpt_step`. The window policy is generation.py's: the prompt cropped to its last
    ``block_size`` tokens; a full cache is rebuilt by a prefill of the last ``refill_keep(block_size)``
    tokens."""

    def __init__(self, model: nn.Module, max_rows: int):
        self.model = model
        self.decoder = fast_decoder(model)
        if self.decoder is None:
            raise ValueError("batched decoding needs a plain GPT (TransformerLM) in eval mode; "
                             "use generate_stream for this model")
        self.block_size = model.config.block_size
        self.n_layer = model.config.n_layer
        self.cache = BatchedKVCache(model, max_rows)
        self.device = self.cache.device

    def _prefill(self, rows: list[Row], indices: list[int], keep: int) -> Tensor:
        """Read the last ``keep`` tokens of each row (the same number for every row) into its cache
        row ``indices[r]``, in one pass: logits [len(rows), V]."""
        for row in rows:
            row.start = max(0, len(row.seq) - keep)
        cache = KVCache(self.n_layer, capacity=self.block_size)
        ids = torch.tensor([r.seq[r.start:] for r in rows], device=self.device)   # one length, or torch refuses
        logits = self.decoder(ids, cache)                  # the same FastGPTDecoder call as generate_stream's
        self.cache.ensure_rows(max(indices) + 1)
        for b, (row, index) in enumerate(zip(rows, indices)):
            self.cache.store(index, cache, b)
            row.length = cache.length
        return logits

    def window(self, row: Row) -> int:
        """How many tokens a prefill of ``row`` reads: its prompt's last ``block_size``."""
        return min(len(row.seq), self.block_size)

    def prefill(self, rows: list[Row], indices: list[int]) -> Tensor:
        """New rows of the same :meth:`window`, each prompt cropped to its last ``block_size`` tokens,
        read in one pass: logits [len(rows), V]."""
        return self._prefill(rows, indices, self.block_size)

    def needs_refill(self, row: Row) -> bool:
        return row.length >= self.block_size          # no position left for the newest token

    def refill(self, rows: list[Row], indices: list[int]) -> Tensor:
        """Full caches, rebuilt from each row's last ``refill_keep(block_size)`` tokens (generation.py's
        policy; a full row holds more than that, so every window has that length): logits [len(rows), V]."""
        return self._prefill(rows, indices, refill_keep(self.block_size))

    def step(self, rows: list[Row], moving: list[bool]) -> Tensor:
        """Every row's newest token in one pass (:func:`batched_gpt_step`): logits [rows, V]."""
        logits = batched_gpt_step(self.decoder, self.cache, [r.seq[-1] for r in rows],
                                  [r.length for r in rows], moving)
        for r, m in zip(rows, moving):
            if m:
                r.length += 1
        return logits

    def move(self, src: int, dst: int, row: Row) -> None:
        """Row ``src`` (``row``) takes row ``dst``'s place in the cache (a leaving row's)."""
        self.cache.move(src, dst, row.length)


class LSTMBatch:
    """Rows of an LSTM: (h, c) of every row in ``h, c [layers, rows, hidden]``; the prompt is read alone
    by the model's own forward pass, then each step is :func:`batched_lstm_step` over all rows."""

    def __init__(self, model: LSTMLM, max_rows: int):
        if not isinstance(model, LSTMLM):
            raise ValueError(f"batched decoding of a recurrent model needs an LSTMLM, got {type(model).__name__}")
        self.model = model
        cfg = model.config
        w = model.lm_head.weight
        self.device = w.device
        self.h = torch.zeros(cfg.n_layer, max_rows, cfg.hidden, device=w.device, dtype=w.dtype)
        self.c = torch.zeros_like(self.h)

    def window(self, row: Row) -> int:
        """How many tokens a prefill of ``row`` reads: its whole prompt ((h, c) carries all of it)."""
        return len(row.seq)

    def prefill(self, rows: list[Row], indices: list[int]) -> Tensor:
        """New rows of the same :meth:`window`, their prompts read by the model's own forward pass in
        one batch: logits [len(rows), V]."""
        out = self.model(torch.tensor([r.seq for r in rows], device=self.device))
        h, c = out.state
        for b, (row, index) in enumerate(zip(rows, indices)):
            self.h[:, index], self.c[:, index] = h[:, b], c[:, b]
            row.length = len(row.seq)
        return out.logits[:, -1]

    def needs_refill(self, row: Row) -> bool:
        return False                                   # (h, c) carries the whole text: no window

    def refill(self, rows: list[Row], indices: list[int]) -> Tensor:
        raise AssertionError("an LSTM row is never refilled")

    def step(self, rows: list[Row], moving: list[bool]) -> Tensor:
        logits = batched_lstm_step(self.model, [r.seq[-1] for r in rows], self.h, self.c, moving)
        for r, m in zip(rows, moving):
            if m:
                r.length += 1
        return logits

    def move(self, src: int, dst: int, row: Row) -> None:
        self.h[:, dst], self.c[:, dst] = self.h[:, src], self.c[:, src]

