"""The three Transformer shapes: decoder-only (GPT), bidirectional encoder (BERT), encoder-decoder.

All three share embeddings + positions → a stack of layers → a linear head over the vocabulary.
Whether attention is causal is an argument of ``forward``, never a setting stored on the model, so
one loaded model can serve requests with the mask on and off at the same time.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .attention import KVCache, padding_mask
from .basics import lm_loss, num_params
from .config import TransformerConfig
from .layers import DecoderLayer, EncoderLayer
from .positional import LearnedPositionalEmbedding, make_positional
from .probe import Probe
from .trace import ModelOutput, Trace


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


class _Embedding(nn.Module):
    """token embedding (× √d_model if asked) + positional encoding, then dropout."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = make_positional(cfg.pos, cfg.block_size, cfg.n_embd)
        self.scale = math.sqrt(cfg.n_embd) if cfg.scale_embeddings else 1.0
        self.drop = nn.Dropout(cfg.dropout)
        self.block_size = cfg.block_size

    def forward(self, ids: Tensor, start: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """ids [B, T] at positions start … start+T-1 → (x, token part, position part)."""
        T = ids.size(1)
        if start + T > self.block_size:
            raise ValueError(f"sequence of {start + T} positions is longer than block_size "
                             f"{self.block_size}; crop the context to its last {self.block_size} tokens")
        tok = self.tok(ids)
        if self.scale != 1.0:
            tok = tok * self.scale
        pos = self.pos(torch.arange(start, start + T, device=ids.device))
        return self.drop(tok + pos), tok, pos


class TransformerBase(nn.Module):
    """What the three shapes share: the config, token embeddings + positions (``embed``), GPT-2's
    initialisation, an output head (``lm_head``, made by each shape after its layers) tied to the
    embedding when asked, and small accessors, so that code outside the model need not know its
    attribute names."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.embed = _Embedding(cfg)

    def init_weights(self) -> None:
        """N(0, 0.02) weights and zero biases everywhere, then tie the head to the embedding (§3.4)."""
        self.apply(_init_weights)
        if self.config.tie_weights:
            self.lm_head.weight = self.embed.tok.weight

    def num_params(self) -> int:
        return num_params(self)

    def token_embedding_table(self) -> Tensor:
        """The token-embedding matrix [V, d_model] (row i: the vector of token i, before any √d scaling)."""
        return self.embed.tok.weight

    def position_table(self) -> Optional[Tensor]:
        """The learned position vectors [block_size, d_model]; None for fixed sinusoidal encodings."""
        pos = self.embed.pos
        return pos.emb.weight if isinstance(pos, LearnedPositionalEmbedding) else None

    @property
    def context_length(self) -> int:
        """The most positions one pass can read (block_size)."""
        return self.config.block_size


class TransformerLM(TransformerBase):
    """A stack of self-attention layers over one sequence with a language-model head.

    GPT-style (``causal=True``): predicts token t+1 from tokens ≤ t.
    BERT-style (``causal=False``): every position sees the whole text and predicts what was masked.
    """

    default_causal = True

    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.n_embd, cfg.n_head, cfg.d_ff, cfg.dropout, cfg.activation,
                         cfg.norm_first, cfg.bias) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm_first else nn.Identity()
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.init_weights()

    def unembed(self, x: Tensor) -> Tensor:
        """The output head on any residual stream x [..., d_model]: logits = LayerNorm_f(x)·W_outᵀ
        (the "logit lens" reads the stream after every layer this way)."""
        return self.lm_head(self.ln_f(x))

    def forward(self, ids: Tensor, targets: Optional[Tensor] = None, *, causal: Optional[bool] = None,
                cache: Optional[KVCache] = None, probe: Optional[Probe] = None,
                trace: bool = False) -> ModelOutput:
        """ids [B, T] → ModelOutput(logits [B, T, V], loss, trace).

        loss = mean over positions of −log softmax(logits)[target] (targets −100 are ignored).
        ``causal`` defaults to the shape's own (GPT True, BERT False). ``cache``: a KVCache holding
        earlier positions; ``ids`` are then the new tokens only. ``probe``: what this pass records
        (a Trace of attention and hidden states; with ``full`` every layer's intermediates, in
        ``Trace.layers``) and switches off (:class:`~scratchformer.model.probe.Probe`).
        ``trace=True`` is short for ``probe=Probe(weights=True)`` (a probe given wins).
        """
        causal = self.default_causal if causal is None else causal
        probe = probe or Probe(weights=bool(trace))
        probe.ablation.check(len(self.layers), self.config.n_head)
        start = cache.length if cache is not None else 0
        x, tok, pos = self.embed(ids, start)
        tr = Trace(tokens=ids, causal=causal, token_embeddings=tok.detach(),
                   positional_embeddings=pos.detach(), hidden_states=[x.detach()]) if probe.records else None
        for i, layer in enumerate(self.layers):
            p = probe.layer(i, cache.layers[i] if cache is not None else None)
            x = layer(x, causal=causal, probe=p)
            if tr is not None:
                tr.self_attn.append(p.self_attn.detach())
                tr.hidden_states.append(x.detach())
                if probe.full:
                    tr.layers.append(p.record)
        h = self.ln_f(x)
        logits = self.lm_head(h)
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets)
        if tr is not None:
            tr.logits = logits.detach()
            if probe.full:
                tr.final_norm = h.detach()
        return ModelOutput(logits, loss, tr)


class GPT(TransformerLM):
    """Decoder-only, causal language model (GPT-style)."""

    default_causal = True


class BertLM(TransformerLM):
    """Bidirectional encoder with a masked-token head (BERT-style)."""

    default_causal = False


def shift_right(tgt: Tensor, bos_id: int) -> Tensor:
    """Decoder input: [bos, y₁, …, y_{n-1}] for target [y₁, …, y_n] (teacher forcing)."""
    bos = torch.full_like(tgt[:, :1], bos_id)
    return torch.cat([bos, tgt[:, :-1]], dim=1)


class Seq2SeqTransformer(TransformerBase):
    """The paper's encoder-decoder: an encoder reads the source, a decoder writes the target one token
    at a time, attending to its own past (masked self-attention) and to the source (cross-attention).
    Source and target share one vocabulary and one embedding matrix.
    """

    def __init__(self, cfg: TransformerConfig):
        if cfg.pad_id is None or cfg.bos_id is None or cfg.eos_id is None:
            raise ValueError("seq2seq config needs pad_id, bos_id and eos_id")
        super().__init__(cfg)
        n_dec = cfg.n_dec_layer or cfg.n_layer
        args = (cfg.n_embd, cfg.n_head, cfg.d_ff, cfg.dropout, cfg.activation, cfg.norm_first, cfg.bias)
        self.encoder = nn.ModuleList(EncoderLayer(*args) for _ in range(cfg.n_layer))
        self.decoder = nn.ModuleList(DecoderLayer(*args) for _ in range(n_dec))
        self.enc_norm = nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm_first else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm_first else nn.Identity()
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.init_weights()

    def encode(self, src: Tensor, trace: Optional[Trace] = None) -> tuple[Tensor, Tensor]:
        """src [B, S] → (memory [B, S, d], source padding mask [B, 1, 1, S]). A ``trace`` given
        receives the encoder's self-attention weights and hidden states."""
        src_mask = padding_mask(src, self.config.pad_id)
        x, _, _ = self.embed(src)
        probe = Probe(weights=trace is not None)
        for i, layer in enumerate(self.encoder):
            p = probe.layer(i)
            x = layer(x, mask=src_mask, probe=p)
            if trace is not None:
                trace.encoder_self_attn.append(p.self_attn.detach())
                trace.encoder_hidden_states.append(x.detach())
        return self.enc_norm(x), src_mask

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor, *, causal: bool = True,
               trace: Optional[Trace] = None) -> Tensor:
        """tgt_in [B, T] (starting with bos) → logits [B, T, V] for the next target token. A ``trace``
        given receives the decoder's embeddings, self- and cross-attention weights, hidden states."""
        x, tok, pos = self.embed(tgt_in)
        tgt_pad = padding_mask(tgt_in, self.config.pad_id)
        if trace is not None:
            trace.token_embeddings, trace.positional_embeddings = tok.detach(), pos.detach()
            trace.hidden_states.append(x.detach())
        probe = Probe(weights=trace is not None)
        for i, layer in enumerate(self.decoder):
            p = probe.layer(i)
            x = layer(x, memory, mask=tgt_pad, memory_mask=src_mask, causal=causal, probe=p)
            if trace is not None:
                trace.self_attn.append(p.self_attn.detach())
                trace.cross_attn.append(p.cross_attn.detach())
                trace.hidden_states.append(x.detach())
        return self.lm_head(self.dec_norm(x))

    def forward(self, src: Tensor, tgt_in: Tensor, targets: Optional[Tensor] = None, *,
                causal: bool = True, probe: Optional[Probe] = None, trace: bool = False) -> ModelOutput:
        """src [B, S], tgt_in [B, T] (= shift_right(target)) → ModelOutput(logits [B, T, V], loss, trace).

        Padding in targets should be −100 so it is ignored by the loss. ``probe``: only ``weights``
        (a Trace of both stacks' attention and hidden states); ``trace=True`` is short for it
        (a probe given wins).
        """
        probe = probe or Probe(weights=bool(trace))
        if probe.full or not probe.ablation.is_empty():
            raise ValueError("the encoder-decoder records attention weights and hidden states only: "
                             "no full trace, no ablation")
        tr = Trace(tokens=tgt_in, src_tokens=src, causal=causal) if probe.records else None
        memory, src_mask = self.encode(src, tr)
        logits = self.decode(tgt_in, memory, src_mask, causal=causal, trace=tr)
        loss = None
        if targets is not None:
            loss = lm_loss(logits, targets)
        if tr is not None:
            tr.logits = logits.detach()
        return ModelOutput(logits, loss, tr)


def build_transformer(cfg: TransformerConfig) -> nn.Module:
    """The model class for ``cfg.model_type``."""
    return {"gpt": GPT, "bert": BertLM, "seq2seq": Seq2SeqTransformer}[cfg.model_type](cfg)
