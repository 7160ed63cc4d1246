"""Decoding with the encoder-decoder: greedy, sampled, and beam search, plus a traced decode for the app.

The encoder reads the source once; the decoder then writes the output one token at a time, starting
from ``<bos>`` and stopping at ``<eos>`` (or after ``max_len`` tokens). Each step runs the decoder over
the whole prefix written so far. (Outputs here are a dozen characters long, so a key/value cache for
the decoder would save little and is left out to keep the loop plain.)

* **greedy**: y_t = argmax_v P(v | y_<t, x).
* **sampled**: y_t drawn with temperature → top-k → top-p, exactly as the language models sample
  (:func:`scratchformer.inference.sampling.sample_step`), from a per-request generator.
* **beam search** (beam size B): keep the B most likely prefixes; extend each by every token; keep the
  B best of the B·V candidates; a candidate ending in ``<eos>`` is finished. Hypotheses are compared by

      score(Y) = log P(Y | X) / lp(Y),    lp(Y) = ((5 + |Y|) / 6) ** α

  (the length normalisation of Wu et al. 2016, "Google's NMT", which the Transformer paper used with
  B = 4 and α = 0.6). |Y| counts the output tokens including ``<eos>``. α = 0 compares raw
  log-probabilities, which favour short outputs; larger α favours longer ones.

``<pad>`` and ``<bos>`` are never valid outputs: their scores are set to −∞ before any choice.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.trace import Trace
from ..model.transformer import Seq2SeqTransformer
from ..tokenizers import Tokenizer
from .choices import MAX_BEAM_SIZE, METHODS
from .sampling import SamplingSettings, Step, make_generator, sample_step

DEFAULT_LENGTH_PENALTY = 0.6


def _special_ids(model: Seq2SeqTransformer) -> tuple[int, int, int]:
    cfg = model.config
    return cfg.pad_id, cfg.bos_id, cfg.eos_id


def _default_max_len(model: Seq2SeqTransformer, max_len: Optional[int]) -> int:
    """Decoder inputs hold <bos> + max_len − 1 tokens, so max_len ≤ block_size."""
    block = model.config.block_size
    if max_len is None:
        return block
    if not 1 <= max_len <= block:
        raise ValueError(f"max_len must be in [1, {block}] (the model's block_size), got {max_len}")
    return max_len


def _no_specials(model: Seq2SeqTransformer, logits: Tensor) -> Tensor:
    """A float copy of ``logits`` [..., V] with <pad> and <bos> set to −∞ (never valid outputs)."""
    pad, bos, _ = _special_ids(model)
    logits = logits.float().clone()
    logits[..., [pad, bos]] = float("-inf")
    return logits


def _next_logits(model: Seq2SeqTransformer, prefixes: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
    """Scores [N, V] for the token after each prefix [N, t] (each starting with <bos>).

    ``memory`` / ``src_mask`` hold either one source (broadcast to all N prefixes) or N sources.
    """
    n = prefixes.size(0)
    logits = model.decode(prefixes, memory.expand(n, -1, -1), src_mask.expand(n, -1, -1, -1))
    return _no_specials(model, logits[:, -1])


def encode_source(tokenizer: Tokenizer, text: str, block_size: int) -> Tensor:
    """The source text as ids [1, S]; ValueError if it is empty or longer than ``block_size``."""
    ids = tokenizer.encode(text)
    if not 1 <= len(ids) <= block_size:
        raise ValueError(f"source must be 1 to {block_size} characters long, got {len(ids)}")
    return torch.tensor([ids], dtype=torch.long)


# ------------------------------------------------------------------------------------------- greedy

@torch.no_grad()
def greedy_decode(model: Seq2SeqTransformer, src: Tensor, max_len: Optional[int] = None) -> list[list[int]]:
    """Greedy decoding of a batch ``src`` [B, S] (padded with <pad>) → one token list per row.

    Each list holds the output tokens up to and including the first <eos> (no <eos> if ``max_len``
    ran out first); <bos> is not included. Ties go to the lowest token id (``argmax``), as in
    ``sample_step`` at temperature 0.
    """
    max_len = _default_max_len(model, max_len)
    _, bos, eos = _special_ids(model)
    memory, src_mask = model.encode(src)
    out = torch.full((src.size(0), 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = _next_logits(model, out, memory, src_mask).argmax(dim=-1)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == eos
        if done.all():
            break
    result = []
    for row in out[:, 1:].tolist():
        result.append(row[: row.index(eos) + 1] if eos in row else row)
    return result


# ------------------------------------------------------------------------------------------ sampled

@torch.no_grad()
def sample_decode(model: Seq2SeqTransformer, src: Tensor, settings: SamplingSettings = SamplingSettings(),
                  generator: Optional[torch.Generator] = None,
                  max_len: Optional[int] = None) -> tuple[list[int], list[Step]]:
    """One source [1, S] → (output tokens, one :class:`Step` per token), sampled token by token.

    Temperature 0 gives the greedy output.
    """
    max_len = _default_max_len(model, max_len)
    _, bos, eos = _special_ids(model)
    generator = generator if generator is not None else make_generator(0)
    memory, src_mask = model.encode(src)
    prefix = [bos]
    steps: list[Step] = []
    for _ in range(max_len):
        logits = _next_logits(model, torch.tensor([prefix], device=src.device), memory, src_mask)[0]
        step = sample_step(logits, settings, generator)
        steps.append(step)
        prefix.append(step.token_id)
        if step.token_id == eos:
            break
    return prefix[1:], steps


# -------------------------------------------------------------------------------------- beam search

@dataclass
class Hypothesis:
    """One beam: output tokens (no <bos>; ends with <eos> when finished), log P(tokens | source)."""

    ids: list[int]
    logprob: float
    finished: bool = False
    score: float = 0.0   # logprob / lp(len(ids)), filled in by beam_search


def length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6) ** α  (Wu et al. 2016); 1 for α = 0."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: Seq2SeqTransformer, src: Tensor, beam_size: int = 4,
                alpha: float = DEFAULT_LENGTH_PENALTY, max_len: Optional[int] = None) -> list[Hypothesis]:
    """Beam search for one source [1, S] → hypotheses, best ``score`` first.

    At each step every live beam is extended by every token and the candidates are ranked by total
    log-probability. Going down that ranking: a candidate ending in <eos> is finished if its rank is
    below ``beam_size`` (so beam 1 is exactly greedy); other candidates become the next live beams
    until there are ``beam_size`` of them. The search stops when

    * α = 0: the best finished log-probability is ≥ every live one (a longer output can only have a
      lower log-probability, so nothing live can win: the result is then exact for that beam);
    * α > 0: ``beam_size`` hypotheses have finished (the common "early stopping" rule);
    * or after ``max_len`` tokens, when the live beams join the result unfinished.
    """
    if not isinstance(beam_size, int) or not 1 <= beam_size <= MAX_BEAM_SIZE:
        raise ValueError(f"beam_size must be an integer in [1, {MAX_BEAM_SIZE}], got {beam_size!r}")
    if not 0.0 <= alpha <= 2.0:
        raise ValueError(f"length penalty alpha must be in [0, 2], got {alpha}")
    max_len = _default_max_len(model, max_len)
    _, bos, eos = _special_ids(model)
    memory, src_mask = model.encode(src)
    live = [Hypothesis([], 0.0)]
    finished: list[Hypothesis] = []
    for _ in range(max_len):
        prefixes = torch.tensor([[bos] + h.ids for h in live], device=src.device)
        logp = F.log_softmax(_next_logits(model, prefixes, memory, src_mask), dim=-1)   # [N, V]
        total = torch.tensor([h.logprob for h in live], device=logp.device)[:, None] + logp
        V = total.size(1)
        order = torch.sort(total.flatten(), descending=True, stable=True)
        new_live: list[Hypothesis] = []
        for rank, (value, idx) in enumerate(zip(order.values.tolist(), order.indices.tolist())):
            if len(new_live) == beam_size or value == float("-inf"):
                break
            beam, token = divmod(idx, V)
            hyp = Hypothesis(live[beam].ids + [token], value)
            if token == eos:
                if rank < beam_size:
                    hyp.finished = True
                    finished.append(hyp)
            else:
                new_live.append(hyp)
        live = new_live
        if not live:
            break
        if alpha == 0 and finished and max(h.logprob for h in finished) >= max(h.logprob for h in live):
            live = []
            break
        if alpha > 0 and len(finished) >= beam_size:
            live = []
            break
    result = finished + live          # live beams that remain hit max_len unfinished
    for h in result:
        h.score = h.logprob / length_penalty(len(h.ids), alpha)
    return sorted(result, key=lambda h: h.score, reverse=True)


@torch.no_grad()
def sequence_logprob(model: Seq2SeqTransformer, src: Tensor, ids: list[int]) -> float:
    """log P(ids | src) = Σ_t log P(y_t | y_<t, x) under teacher forcing (pad/bos excluded as above)."""
    _, bos, _ = _special_ids(model)
    memory, src_mask = model.encode(src)
    tgt_in = torch.tensor([[bos] + ids[:-1]], device=src.device)
    logp = F.log_softmax(_no_specials(model, model.decode(tgt_in, memory, src_mask)[0]), dim=-1)
    return float(sum(logp[t, tok] for t, tok in enumerate(ids)))


# ---------------------------------------------------------------------------- a decode laid open

@dataclass
class DecodeStep:
    """Output position t: the token written, its probability under the model (softmax at T = 1), and
    the model's most likely candidates at that step as (text, probability)."""

    position: int
    token_id: int
    text: str
    prob: float
    top: list[tuple[str, float]]
    sampled: Optional[Step] = None   # the sampling record when the method was "sample"


@dataclass
class DecodeResult:
    """What :func:`decode_with_trace` returns.

    ``trace`` is one teacher-forced pass over the source and <bos> + the output: because the decoder is
    causal, row t of its self- and cross-attention is exactly what decoding step t computed.
    ``trace.cross_attn[layer][0, head, t, s]`` is how much output step t looked at source character s.
    """

    source: str
    output: str
    method: str
    src_tokens: list[str]
    out_tokens: list[str]            # one per decoding step, "<eos>" included when reached
    steps: list[DecodeStep]
    trace: Trace
    logprob: float
    beams: list[Hypothesis] = field(default_factory=list)


@torch.no_grad()
def decode_with_trace(model: Seq2SeqTransformer, tokenizer: Tokenizer, source: str,
                      method: str = "greedy", *, beam_size: int = 4, alpha: float = DEFAULT_LENGTH_PENALTY,
                      settings: SamplingSettings = SamplingSettings(), seed: int = 0,
                      max_len: Optional[int] = None, n_top: int = 5) -> DecodeResult:
    """Decode ``source`` with ``method`` ("greedy", "sample" or "beam") and lay the decode open.

    The model should be in eval mode (as ``load_checkpoint`` returns it); it is only read, never
    changed, so one loaded model can serve many requests. Whitespace is tidied first, as typed text
    needs (no training source starts or ends with a space or has two in a row):
    ``"  3  March 1999 "`` is read as ``"3 March 1999"``.
    """
    source = " ".join(str(source).split())
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    device = next(model.parameters()).device
    src = encode_source(tokenizer, source, model.config.block_size).to(device)
    sampled: list[Optional[Step]] = []
    beams: list[Hypothesis] = []
    if method == "greedy":
        ids = greedy_decode(model, src, max_len)[0]
    elif method == "sample":
        ids, steps = sample_decode(model, src, settings, make_generator(seed), max_len)
        sampled = list(steps)
    else:
        beams = beam_search(model, src, beam_size, alpha, max_len)
        ids = beams[0].ids
    _, bos, eos = _special_ids(model)
    tgt_in = torch.tensor([[bos] + ids[:-1]] if ids else [[bos]], device=device)
    out = model(src, tgt_in, trace=True)
    probs = torch.softmax(_no_specials(model, out.logits[0]), dim=-1)
    steps: list[DecodeStep] = []
    for t, tok in enumerate(ids):
        p_top, i_top = probs[t].topk(min(n_top, probs.size(-1)))
        steps.append(DecodeStep(t, tok, tokenizer.token_text(tok), float(probs[t, tok]),
                                [(tokenizer.token_text(i), float(p)) for p, i in zip(p_top.tolist(), i_top.tolist())],
                                sampled[t] if sampled else None))
    logprob = float(sum(math.log(max(s.prob, 1e-45)) for s in steps))
    return DecodeResult(source=source, output=tokenizer.decode([i for i in ids if i != eos]), method=method,
                        src_tokens=[tokenizer.token_text(i) for i in src[0].tolist()],
                        out_tokens=[tokenizer.token_text(i) for i in ids], steps=steps,
                        trace=out.trace.to("cpu"), logprob=logprob, beams=beams)
