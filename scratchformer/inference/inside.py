"""Inside one forward pass of the GPT: every stage for one character, and the logit lens.

:func:`walkthrough` runs ``model(ids, probe=Probe(full=True))`` once and reads, for one position t, what each
stage computed — the numbers are the model's own (the final logits are the forward pass's; a test
recomputes every stage with PyTorch's modules). Its result is plain JSON-ready data (lists and
floats) plus the sampling :class:`~scratchformer.inference.sampling.Step` for the last stage.

A pre-norm block (ours, GPT-2's) computes, for the residual stream x of position t:

    LayerNorm(x) = γ ⊙ (x − μ) / √(σ² + ε) + β,   μ, σ² the mean and variance of x's d_model numbers
    q = LN(x)·W^Q,  k = LN(x)·W^K,  v = LN(x)·W^V            (per head: d_head columns each)
    score_j = q·k_j / √d_k  for every visible j (j ≤ t under the causal mask)
    α = softmax(score),  head = Σ_j α_j v_j
    x ← x + Concat(head_1 … head_h)·W^O + b^O
    x ← x + FFN(LN(x)),  FFN(y) = act(y·W₁ + b₁)·W₂ + b₂
    logits = LN_f(x)·W_outᵀ,  p = softmax(logits / T) → top-k → top-p

The model is only read, under ``torch.inference_mode``.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ..model.probe import Probe
from .sampling import SamplingSettings, Step, sample_step


def _list(x: Tensor) -> list[float]:
    return x.detach().float().cpu().reshape(-1).tolist()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def check_position(position, n: int) -> int:
    """A 0-based token position in 0…n−1; ValueError naming the range otherwise."""
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < n:
        raise ValueError(f"position must be a whole number in 0…{n - 1} (the text has {n} tokens), "
                         f"got {position!r}")
    return position


def check_ids(ids: Sequence[int], model: nn.Module) -> list[int]:
    """The ids as a list; ValueError for an empty text or one longer than the model's context."""
    ids = list(ids)
    if not ids:
        raise ValueError("the text is empty: type at least one character")
    limit = getattr(model, "context_length", None)
    if limit is not None and len(ids) > limit:
        raise ValueError(f"the text has {len(ids)} tokens; this model reads at most {limit}")
    return ids


def full_trace(model: nn.Module, ids: Sequence[int]):
    """``model(ids, probe=Probe(full=True))`` for one text, under inference mode; the Trace (on the
    model's device)."""
    x = torch.tensor([list(ids)], dtype=torch.long, device=_device(model))
    with torch.inference_mode():
        return model(x, probe=Probe(full=True)).trace


def layer_norm_stage(x: Tensor, out: Tensor, eps: float) -> dict:
    """One LayerNorm of one position: its input x [D], mean μ, spread √(σ² + ε) (σ² the *biased*
    variance, as in the paper and PyTorch), the normalised vector (x − μ)/√(σ² + ε), and the output
    γ ⊙ x̂ + β as the model computed it."""
    x = x.double()
    mu = x.mean()
    spread = torch.sqrt(x.var(unbiased=False) + eps)
    return {"input": _list(x), "mean": float(mu), "spread": float(spread),
            "normalised": _list((x - mu) / spread), "output": _list(out)}


class Walkthrough(NamedTuple):
    """What :func:`walkthrough` returns: the JSON-ready numbers and the last stage's sampling step."""

    numbers: dict
    step: Step


def walkthrough(model: nn.Module, ids: Sequence[int], position: int, tokenizer,
                settings: SamplingSettings = SamplingSettings()) -> Walkthrough:
    """Every stage of the forward pass for the character at ``position`` of ``ids`` (see the module
    docstring for the formulas). ``numbers`` holds, as lists and floats:

    embedding   token, position, x0 = token + position                       [d_model] each
    layers[l]   ln1 (layer_norm_stage), heads[h] (q, k, v of this position [d_head]; keys: the visible
                positions j; scores q·k_j/√d_k; weights α_j; output Σ α_j v_j), concat, attn_out,
                resid_mid, ln2, ff_pre, ff_act [d_ff], firing (units with act > 0), ff_out, resid_post
    final       ln (layer_norm_stage), logits [V], probs = softmax(logits) [V], loss −ln p(next char)
                when there is a next character, sampling (after temperature, after top-k / top-p)
    shapes      the size of every tensor of the whole pass, for the model diagram
    """
    ids = check_ids(ids, model)
    t = check_position(position, len(ids))
    cfg = model.config
    if not cfg.norm_first:
        raise ValueError("the walkthrough follows a pre-norm model (LayerNorm before each sublayer)")
    tr = full_trace(model, ids)
    T, H, D = len(ids), cfg.n_head, cfg.n_embd
    d_head = D // H
    causal = bool(tr.causal)
    visible = list(range(t + 1)) if causal else list(range(T))
    layers = []
    for l, rec in enumerate(tr.layers):
        block = model.layers[l]
        heads = []
        for h in range(H):
            q, k, v = rec["q"][0, h], rec["k"][0, h], rec["v"][0, h]          # [T, d_head]
            scores = (k[visible].double() @ q[t].double()) / math.sqrt(d_head)
            heads.append({"q": _list(q[t]), "k": _list(k[t]), "v": _list(v[t]), "keys": visible,
                          "scores": _list(scores), "weights": _list(tr.self_attn[l][0, h, t, visible]),
                          "output": _list(rec["heads"][0, h, t])})
        act = rec.get("ff_act")
        layers.append({
            "ln1": layer_norm_stage(tr.hidden_states[l][0, t], rec["ln1"][0, t], block.norm1.eps),
            "heads": heads, "concat": _list(rec["concat"][0, t]), "attn_out": _list(rec["attn_out"][0, t]),
            "resid_mid": _list(rec["resid_mid"][0, t]),
            "ln2": layer_norm_stage(rec["resid_mid"][0, t], rec["ln2"][0, t], block.norm2.eps),
            "ff_pre": _list(rec["ff_pre"][0, t]) if act is not None else [],
            "ff_act": _list(act[0, t]) if act is not None else [],
            "firing": int((act[0, t] > 0).sum()) if act is not None else 0,
            "ff_out": _list(rec["ff_out"][0, t]), "resid_post": _list(tr.hidden_states[l + 1][0, t])})
    logits = tr.logits[0, t].float().cpu()
    probs = torch.softmax(logits.double(), -1)
    step = sample_step(logits, settings)          # greedy, or a draw seeded with 0 (reproducible)
    nxt = ids[t + 1] if t + 1 < T and causal else None
    top = torch.argsort(probs, descending=True)[:5].tolist()
    numbers = {
        "text": tokenizer.pieces(ids), "position": t, "char": tokenizer.token_text(ids[t]), "unit": tokenizer.unit,
        "next_char": tokenizer.token_text(nxt) if nxt is not None else None, "causal": causal,
        "config": {"n_layer": cfg.n_layer, "n_head": H, "d_model": D, "d_head": d_head, "d_ff": cfg.d_ff,
                   "vocab_size": cfg.vocab_size, "activation": cfg.activation, "length": T},
        "embedding": {"token": _list(tr.token_embeddings[0, t]), "position": _list(tr.positional_embeddings[t]),
                      "x0": _list(tr.hidden_states[0][0, t])},
        "layers": layers,
        "final": {"ln": layer_norm_stage(tr.hidden_states[-1][0, t], tr.final_norm[0, t], model.ln_f.eps),
                  "logits": _list(logits), "probs": _list(probs),
                  "top": [[tokenizer.token_text(i), float(probs[i])] for i in top],
                  "loss": float(-torch.log(probs[nxt])) if nxt is not None else None,
                  "sampling": {"temperature": settings.temperature,
                               "top_k": min(settings.top_k, tokenizer.vocab_size),   # k ≥ V keeps every token, as V does
                               "top_p": settings.top_p, "chosen": tokenizer.token_text(step.token_id),
                               "after_temperature": _list(step.probs_temperature),
                               "after_filters": _list(step.probs_filtered),
                               "kept": int((step.probs_filtered > 0).sum())}},
        "shapes": model_shapes(cfg, T),
    }
    return Walkthrough(numbers, step)


def model_shapes(cfg, T: int) -> list[dict]:
    """The stages of the whole pass with the shape of what each outputs, for the diagram."""
    D, H = cfg.n_embd, cfg.n_head
    out = [{"stage": "embedding", "label": "token + position", "shape": [T, D]}]
    for l in range(cfg.n_layer):
        out += [{"stage": f"layer {l + 1} attention", "label": f"LN → {H} heads → W^O, +x",
                 "shape": [T, D], "inner": [H, T, D // H]},
                {"stage": f"layer {l + 1} feed-forward", "label": "LN → W₁, act, W₂, +x",
                 "shape": [T, D], "inner": [T, cfg.d_ff]}]
    out.append({"stage": "output", "label": "LN_f → W_out → softmax", "shape": [T, cfg.vocab_size]})
    return out


# ------------------------------------------------------------------------------------------ logit lens

def logit_lens(model: nn.Module, ids: Sequence[int], tokenizer) -> dict:
    """The output head read off the residual stream after the embedding and after every layer.

    For stream x_l (l = 0: token + position; l: after layer l):  p_l = softmax(LN_f(x_l)·W_outᵀ),
    with the **final LayerNorm applied** (it is part of the output head; skipping it reads a stream
    at the wrong scale). The last row is the model's own output. Returns per row and position: the
    top prediction, its probability, and the probability of the true next character (None at the
    last position, which has no next character).
    """
    ids = check_ids(ids, model)
    x = torch.tensor([ids], dtype=torch.long, device=_device(model))
    with torch.inference_mode():
        tr = model(x, trace=True).trace
        streams = torch.stack([h[0] for h in tr.hidden_states])          # [L+1, T, D]
        probs = torch.softmax(model.unembed(streams).double(), -1).cpu()  # [L+1, T, V]
    top_p, top = probs.max(-1)
    nxt = torch.tensor(ids[1:] + [0])
    p_next = probs.gather(-1, nxt.expand(probs.size(0), -1)[..., None])[..., 0]
    rows = ["embedding"] + [f"after layer {l + 1}" for l in range(len(tr.hidden_states) - 1)]
    return {"text": tokenizer.pieces(ids), "rows": rows,
            "top": [tokenizer.pieces(r) for r in top.tolist()], "top_prob": top_p.tolist(),
            "p_next": [r[:-1] + [None] for r in p_next.tolist()],
            "final_layernorm_applied": True}
