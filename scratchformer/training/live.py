"""Train a Transformer and an LSTM live, side by side, on the same text, for a few seconds.

A person picks a corpus and a size; :class:`LiveRace` builds a GPT and an LSTM of about the same
number of parameters on that corpus's characters and trains them *in turns*: at each turn the model
that has had less training time so far takes one step, so both get the same wall time, and the race
is fair in seconds (the question a person asks: which one learns faster?). Every
:data:`UPDATE_EVERY` seconds the race reports a :class:`LiveUpdate`: both loss curves (against
seconds of each model's own training), a sample of each from the same prompt and seed, the
Transformer's attention on a fixed text, and each head's numbers over time.

The corpora (:data:`CORPORA`):

* ``shakespeare``: tiny Shakespeare, split 90/10 as in :mod:`.data`;
* ``text``: a text the person pastes (:data:`MAX_TEXT` characters at most), split the same way;
* three toy tasks that need attention, made of random lower-case letters drawn per batch
  (the loss counts only the part that can be predicted, the rest is "−100", ignored):

  ======== ==================================== =====================================
  task     one example                          what must be learned
  ======== ==================================== =====================================
  copy     ``qhkzu|qhkzu`` + ``\\n``              the letters after ``|`` copy those before
  reverse  ``qhkzu|uzkhq`` + ``\\n``              … in reverse order
  repeat   ``hqzbk|hqzbk|hqzbk|hq`` (no ``|``)     a random sequence, written again and again
  ======== ==================================== =====================================

  In ``repeat`` each row is one sequence of L different letters (L from :data:`REPEAT_MIN` to
  :data:`TASK_LEN`, drawn per row) written over and over, cut at a random phase; every letter after
  the first L is counted. L and the phase vary, so no head can find the earlier copy by position
  alone ("look L − 1 back"): it has to read the tokens.

  ``repeat`` is where **induction heads** form (Olsson et al. 2022, "In-context learning and
  induction heads"): to predict the next letter, a head at position i finds the earlier occurrence
  of x_i (at i − L) and attends to what followed it (i − L + 1). It needs two layers (a first-layer
  head that copies a token forward, read by a second-layer head), and it appears suddenly, with a
  drop in the loss (:func:`induction_phase_step`). A head's **induction score**
  (:func:`induction_contrast`) is its attention, from the second copy of a sequence written twice,
  on the tokens just after the earlier occurrence of the current one, minus the same head's
  attention on those positions in a text that does not repeat (so a head that looks by position
  alone scores 0), averaged over sequences of three lengths (:data:`INDUCTION_PERIODS`).

This module knows nothing of Gradio or processes: the app runs a race in a process of its own
(:mod:`.live_process`), which is what bounds its time, memory and priority.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor

from ..inference.generation import generate_stream
from ..inference.head_stats import head_numbers
from ..inference.sampling import SamplingSettings
from ..model.config import LSTMConfig, TransformerConfig
from ..model.registry import build_model
from ..tokenizers import CharTokenizer
from .data import load_corpus, split_text
from .live_plan import SIZES, TASKS, LivePlan

UPDATE_EVERY = 1.0        # seconds between reports
SAMPLE_EVERY = 3          # reports between two samples (a sample of 80 tokens costs two steps' time)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
SAMPLE_TOKENS = 80
SAMPLE_SEED = 0
SAMPLE_SETTINGS = SamplingSettings(temperature=0.8, top_k=0, top_p=0.95)

BATCH = {"tiny": (16, 64), "small": (12, 64)}     # size → (batch size, block size) of language tasks
# size → rows per batch of a toy task: its rows are 26–33 tokens long, so about a language batch's tokens.
# On the repeat task (tiny, the Transformer's steps alone, learning rate 3e-3): with 16 rows, seed 0's
# best head was at 0.14 after 2,400 steps (loss 1.57); with 32 rows an induction head formed in
# seeds 0, 1 and 2, at steps 900–1,200 (loss under 0.1 after), best head 0.52–0.58 at 1,800–2,400.
TASK_ROWS = {"tiny": 32, "small": 24}
TASK_LEN = {"copy": 12, "reverse": 12, "repeat": 16}   # letters per example before the answer (repeat: at most)
REPEAT_MIN = 6            # the shortest repeated sequence
INDUCTION_REACH = 4       # the induction score counts the keys 1 … 4 past the earlier occurrence
INDUCTION_PERIODS = (8, 12, 16)   # the probes' periods: the offsets each counts (L−4 … L−1 back) do not overlap
INDUCTION_DRAWS = 2       # random sequences per period
LR = {"tiny": 3e-3, "small": 2e-3}            # the toy tasks: constant (their phase change is what one watches)
LANGUAGE_LR = {"tiny": 8e-3, "small": 2e-3}   # a text: the peak of a schedule over the budget (lr_at)
WARMUP_SHARE = 0.02        # the learning rate rises over this share of the budget, then decays
FINAL_LR_SHARE = 0.1       # … to this share of its peak at the budget's end



# ------------------------------------------------------------------------------------- the data

class Corpus:
    """The tokenizer and ``batch(split, generator) -> (x, y)`` of a plan; ``text`` is the fixed text
    the attention is shown on, ``prompt`` the samples' prompt."""

    def __init__(self, plan: LivePlan):
        self.plan = plan
        self.batch_size, self.block_size = BATCH[plan.size]
        if plan.corpus in TASKS:
            self.batch_size = TASK_ROWS[plan.size]
            self.tokenizer = CharTokenizer(list(LETTERS + "|\n"))
            n = TASK_LEN[plan.corpus]
            example = self.example(torch.Generator().manual_seed(12345), n)
            self.block_size = len(example) - 1
            self.text = self.tokenizer.decode(example.tolist())[:-1]    # repeat: the sequence twice, 2 × 16 letters
            self.prompt = self.text[: n + 1]      # the letters and "|" (repeat: the first copy and one letter)
            return
        full = load_corpus() if plan.corpus == "shakespeare" else plan.text
        self.tokenizer = CharTokenizer.from_text(full)
        train, val = split_text(full)
        if len(val) <= self.block_size + 1:        # a short paste: validate on the training text
            val = train
        self.block_size = min(self.block_size, len(train) - 2)
        self.data = {"train": encode_all(self.tokenizer, train), "val": encode_all(self.tokenizer, val)}
        self.text = val[:48]
        self.prompt = val[:8]

    def example(self, gen: torch.Generator, length: int, start: int = 0) -> Tensor:
        """One example of a toy task as ids (its inputs and its targets are this, shifted by one);
        ``length`` letters before the answer. In ``repeat`` the two copies begin at ``start`` and
        random letters fill the row before and after them (2 × TASK_LEN letters in all)."""
        if self.plan.corpus == "repeat":     # no letter twice: the earlier copy of a letter is unique
            letters = torch.randperm(len(LETTERS), generator=gen)[:length]
        else:
            letters = torch.randint(0, len(LETTERS), (length,), generator=gen)
        bar, newline = torch.tensor(self.tokenizer.encode("|")), torch.tensor(self.tokenizer.encode("\n"))
        if self.plan.corpus == "copy":
            return torch.cat([letters, bar, letters, newline])
        if self.plan.corpus == "reverse":
            return torch.cat([letters, bar, letters.flip(0), newline])
        row = letters.repeat(2 * TASK_LEN["repeat"] // length + 2)[start: start + 2 * TASK_LEN["repeat"]]
        return torch.cat([row, newline])

    def induction_probes(self) -> tuple[Tensor, Tensor, list[int]]:
        """The repeat task's probes for :func:`induction_contrast`: :data:`INDUCTION_DRAWS` rows per
        period of :data:`INDUCTION_PERIODS`, each a fixed random sequence of L letters repeated over
        the row (the task's row, without its newline), and as many control rows that do not repeat
        (the 26 letters in a random order, then 6 more): (repeated ids [P, T], control ids [P, T],
        each row's period), T = 2 × TASK_LEN."""
        gen = torch.Generator().manual_seed(54321)
        periods = [L for L in INDUCTION_PERIODS for _ in range(INDUCTION_DRAWS)]
        repeated = torch.stack([self.example(gen, L)[:-1] for L in periods])
        T = repeated.shape[1]
        control = torch.stack([torch.cat([torch.randperm(len(LETTERS), generator=gen),
                                          torch.randperm(len(LETTERS), generator=gen)])[:T] for _ in periods])
        return repeated, control, periods

    def counted(self, length: int, start: int = 0) -> slice:
        """The targets of a toy-task row that can be predicted: the answer after ``|``; in
        ``repeat``, the second copy but its first letter (which could only be guessed)."""
        if self.plan.corpus == "repeat":
            return slice(length, 2 * TASK_LEN["repeat"] - 1)
        return slice(length, 2 * length + 1)

    def batch(self, split: str, gen: torch.Generator, batch_size: Optional[int] = None) -> tuple[Tensor, Tensor]:
        b = batch_size or self.batch_size
        if self.plan.corpus in TASKS:
            n = TASK_LEN[self.plan.corpus]
            if self.plan.corpus == "repeat":     # a length and a start per row
                lengths = torch.randint(REPEAT_MIN, n + 1, (b,), generator=gen).tolist()
                starts = [int(torch.randint(0, m, (1,), generator=gen)) for m in lengths]
            else:
                lengths, starts = [n] * b, [0] * b
            rows = torch.stack([self.example(gen, m, s) for m, s in zip(lengths, starts)])
            x, targets = rows[:, :-1], rows[:, 1:]
            y = torch.full_like(targets, -100)          # targets that cannot be predicted: not counted
            for i, (m, s) in enumerate(zip(lengths, starts)):
                keep = self.counted(m, s)
                y[i, keep] = targets[i, keep]
            return x, y
        data = self.data[split]
        starts = torch.randint(0, len(data) - self.block_size - 1, (b,), generator=gen)
        x = torch.stack([data[s: s + self.block_size] for s in starts.tolist()])
        y = torch.stack([data[s + 1: s + self.block_size + 1] for s in starts.tolist()])
        return x, y


def encode_all(tok: CharTokenizer, text: str) -> Tensor:
    """The ids of ``text``, every character of which is in ``tok`` (a vocabulary made from it, its
    characters sorted): one vectorised lookup, ~50× faster than encoding 1 MB character by character.
    Equal to ``tok.encode(text)`` (tested)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    points = np.array([ord(c) for c in tok.texts], dtype=np.uint32)
    return torch.from_numpy(np.searchsorted(points, codes).astype(np.int64))


def pair_configs(plan: LivePlan, vocab_size: int, block_size: int) -> tuple[TransformerConfig, LSTMConfig]:
    """The GPT's and the LSTM's configurations for ``plan.size`` (pre-norm GELU GPT, learned positions).
    Their context is the length they train on (a toy task's row, 25 to 32 letters): the GPT's later
    positions would never be trained, and the other tabs crop a text to what the model reads."""
    layers, heads, d = SIZES[plan.size]["gpt"]
    l_layers, hidden, emb = SIZES[plan.size]["lstm"]
    gpt = TransformerConfig(model_type="gpt", vocab_size=vocab_size, block_size=block_size,
                            n_layer=layers, n_head=heads, n_embd=d)
    lstm = LSTMConfig(vocab_size=vocab_size, n_embd=emb, hidden=hidden, n_layer=l_layers, block_size=block_size)
    return gpt, lstm


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------- the race

@dataclass
class Runner:
    """One model in the race: the network, its optimizer, its batches and what it has done."""

    name: str
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    gen: torch.Generator
    seconds: float = 0.0           # its own training time so far
    steps: int = 0
    curve: list = field(default_factory=list)   # {"seconds", "step", "tokens", "loss"}


@dataclass
class LiveUpdate:
    """What a race reports every second: plain numbers and strings (it crosses a process boundary)."""

    elapsed_s: float
    budget_s: float
    done: bool
    curves: dict                   # name → [{"seconds", "step", "tokens", "loss"}] (validation, nats/token)
    samples: dict                  # name → text after the prompt
    prompt: str
    params: dict                   # name → parameter count
    steps: dict                    # name → steps taken
    pieces: list                   # the attention text's tokens (display strings)
    attention: list                # the Transformer's per layer [H][T][T] (lists of floats)
    head_history: list             # [{"seconds", "heads": per layer, per head: {"previous", "first", "entropy", "induction"?}}]
    corpus: str = ""
    stopped: str = ""              # why it ended early ("", "stopped", "memory")


class LiveRace:
    """A GPT and an LSTM trained in turns on one :class:`Corpus` (module docstring)."""

    def __init__(self, plan: LivePlan):
        self.plan = plan
        torch.manual_seed(plan.seed)
        self.corpus = Corpus(plan)
        tok = self.corpus.tokenizer
        gpt_cfg, lstm_cfg = pair_configs(plan, tok.vocab_size, self.corpus.block_size)
        self.configs = {"Transformer": gpt_cfg, "LSTM": lstm_cfg}
        self.runners = []
        for i, (name, cfg) in enumerate(self.configs.items()):
            model = build_model(cfg)
            model.train()
            # PyTorch's fused AdamW (one kernel per step, the same update as train.make_optimizer's): for
            # models this small the optimizer's many small operations are a large share of a step,
            # and a race gets about 15% more steps in its seconds with it
            opt = torch.optim.AdamW(model.parameters(), lr=LR[plan.size], betas=(0.9, 0.99), weight_decay=0.0,
                                    fused=True)
            self.runners.append(Runner(name, model, opt, torch.Generator().manual_seed(plan.seed + i)))
        self.eval_gen_seed = plan.seed + 1000
        self.history: list = []
        self.samples: dict = {}
        self.reports = 0
        ids = tok.encode(self.corpus.text)
        self.text_ids = ids
        self.probes = self.corpus.induction_probes() if plan.corpus == "repeat" else None
        self.pieces = tok.pieces(ids) if hasattr(tok, "pieces") else list(self.corpus.text)

    # one step of one model ---------------------------------------------------------------------
    def step(self, r: Runner) -> float:
        t0 = time.perf_counter()
        x, y = self.corpus.batch("train", r.gen)
        loss = r.model(x, y).loss
        r.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), 1.0)
        r.opt.step()
        r.steps += 1
        r.seconds += time.perf_counter() - t0
        return loss.item()

    @torch.no_grad()
    def val_loss(self, r: Runner, batches: int = 2) -> float:
        """Mean loss on ``batches`` validation batches, the same batches at every report."""
        gen = torch.Generator().manual_seed(self.eval_gen_seed)
        r.model.eval()
        total = sum(r.model(*self.corpus.batch("val", gen)).loss.item() for _ in range(batches)) / batches
        r.model.train()
        return total

    @torch.no_grad()
    def sample(self, r: Runner) -> str:
        r.model.eval()
        text = "".join(g.text for g in generate_stream(r.model, self.corpus.tokenizer, self.corpus.prompt,
                                                       settings=SAMPLE_SETTINGS, max_new_tokens=SAMPLE_TOKENS,
                                                       seed=SAMPLE_SEED))
        r.model.train()
        return text

    @torch.no_grad()
    def attention(self) -> list[Tensor]:
        """The Transformer's attention on the fixed text: per layer [H, T, T]."""
        gpt = self.runners[0].model
        gpt.eval()
        out = gpt(torch.tensor([self.text_ids]), trace=True)
        gpt.train()
        return [a[0].float() for a in out.trace.self_attn]

    @torch.no_grad()
    def probe_attention(self, ids: Tensor) -> list[Tensor]:
        """The Transformer's attention on probe rows ``ids`` [P, T]: per layer [P, H, T, T]."""
        gpt = self.runners[0].model
        gpt.eval()
        out = gpt(ids, trace=True)
        gpt.train()
        return [a.float() for a in out.trace.self_attn]

    def heads(self, attention: list[Tensor]) -> list:
        """Each head's numbers on the fixed text (and on the repeat task its induction score,
        :func:`induction_contrast` over the probes)."""
        probes = None
        if self.probes is not None:
            repeated, control, periods = self.probes
            probes = (self.probe_attention(repeated), self.probe_attention(control))
        out = []
        for layer_index, a in enumerate(attention):
            layer = []
            for h in range(a.shape[0]):
                n = head_numbers(a[h], self.text_ids)
                row = {k: float(n[k]) for k in ("previous", "first", "entropy")}
                if probes is not None:
                    row["induction"] = induction_contrast(probes[0][layer_index][:, h],
                                                          probes[1][layer_index][:, h], periods)
                layer.append(row)
            out.append(layer)
        return out

    def report(self, elapsed: float, done: bool, stopped: str = "") -> LiveUpdate:
        for r in self.runners:
            r.curve.append({"seconds": round(r.seconds, 3), "step": r.steps,
                            "tokens": r.steps * self.corpus.batch_size * self.corpus.block_size,
                            "loss": round(self.val_loss(r), 4)})
        attention = self.attention()
        if done or self.reports % SAMPLE_EVERY == 0:
            self.samples = {r.name: self.sample(r) for r in self.runners}
        self.reports += 1
        self.history.append({"seconds": round(self.runners[0].seconds, 3), "step": self.runners[0].steps,
                             "heads": self.heads(attention)})
        return LiveUpdate(elapsed_s=elapsed, budget_s=self.plan.budget_s, done=done,
                          curves={r.name: list(r.curve) for r in self.runners},
                          samples=dict(self.samples), prompt=self.corpus.prompt,
                          params={r.name: num_params(r.model) for r in self.runners},
                          steps={r.name: r.steps for r in self.runners}, pieces=list(self.pieces),
                          attention=[a.tolist() for a in attention], head_history=list(self.history),
                          corpus=self.plan.corpus, stopped=stopped)

    def lr_at(self, fraction: float) -> float:
        """The learning rate when ``fraction`` of the budget's seconds are spent. On a text: a linear
        warm-up over the first WARMUP_SHARE, then a cosine decay to FINAL_LR_SHARE of the peak at the end,

            lr = lr_min + ½ (lr_peak − lr_min) (1 + cos(π · (f − w) / (1 − w)))

        nanoGPT's schedule over its iterations, here over the seconds a person gave (a race does not
        know how many steps it will take). The decay at the end is worth much of the last loss: on tiny
        Shakespeare in 60 s (one thread, another race beside it) the Transformer ended at 1.96 nats per
        character with it (peak 5e-3) against 2.05 at the constant 3e-3 it had before, and at 1.95
        with the peak at 8e-3 against 1.98 at 5e-3 (the LSTM 1.86 against 1.92). The toy tasks keep a
        constant rate: the sudden drop of their loss, when induction heads form, is what a person
        watches there, and a decaying rate would move it."""
        if self.plan.corpus in TASKS:
            return LR[self.plan.size]
        peak = LANGUAGE_LR[self.plan.size]
        f = min(max(fraction, 0.0), 1.0)
        if f < WARMUP_SHARE:
            return peak * (f + 1e-3) / WARMUP_SHARE
        low = peak * FINAL_LR_SHARE
        return low + 0.5 * (peak - low) * (1 + math.cos(math.pi * (f - WARMUP_SHARE) / (1 - WARMUP_SHARE)))

    def run(self, emit: Callable[[LiveUpdate], None], should_stop: Callable[[], str] = lambda: "",
            clock: Callable[[], float] = time.monotonic) -> LiveUpdate:
        """Train in turns until the budget is spent or ``should_stop()`` returns a reason; ``emit`` a
        report at the start, every :data:`UPDATE_EVERY` seconds and at the end (returned too).
        The budget counts training and reports alike (it is the person's wait)."""
        start = clock()
        emit(self.report(0.0, False))
        next_report = clock() + UPDATE_EVERY
        stopped = ""
        while True:
            now = clock()
            if now - start >= self.plan.budget_s:
                break
            stopped = should_stop()
            if stopped:
                break
            if now >= next_report:
                emit(self.report(now - start, False))
                next_report = clock() + UPDATE_EVERY
                continue
            r = min(self.runners, key=lambda r: r.seconds)   # the one that has trained less goes next
            for group in r.opt.param_groups:
                group["lr"] = self.lr_at((now - start) / self.plan.budget_s)
            self.step(r)
        final = self.report(min(clock() - start, self.plan.budget_s), True, stopped)
        emit(final)
        return final

    def state(self) -> dict:
        """What the app needs to use the trained pair: each model's config dict and tensors (CPU),
        and the tokenizer's dict."""
        return {"tokenizer": self.corpus.tokenizer.to_dict(),
                "models": {r.name: {"config": self.configs[r.name].to_dict(),
                                    "tensors": {k: v.detach().cpu().clone() for k, v in r.model.state_dict().items()}}
                           for r in self.runners}}


def induction_score(weights: Tensor, length: int, reach: int = INDUCTION_REACH) -> float:
    """A head's attention, from each query of a repeated sequence's second copy (but the last), on
    the ``reach`` tokens that follow the same token's earlier occurrence:

        induction = 1/(L−1) · Σ_{i=L}^{2L−2} Σ_{d=1}^{reach} α_{i, i−L+d}

    ``weights`` [T, T] on a text that begins with a sequence of ``length`` = L different tokens
    written twice (T ≥ 2L, ``reach`` < L; what follows the two copies is never attended to by these
    queries, so each has exactly one earlier occurrence). With ``reach`` 1 this is the textbook score
    (the token right after the earlier occurrence, whose value is the answer). Trained here, the
    second layer's heads often land a few tokens further on and read the answer there from the first
    layer, which copied it forward (a head that looks 2 or 3 tokens back); ``reach`` 4 counts those too.

    This alone cannot tell an induction head from a head whose attention does not depend on the
    letters: one that looks a fixed distance back (L − 1 … L − 4 tokens) scores 1, one that spreads
    its attention evenly the mean of reach/(i+1) (0.17 for L = 16). :func:`induction_contrast`
    takes that out."""
    L, T = length, weights.shape[-1]
    if not (reach < L and 2 * L <= T):
        raise ValueError(f"induction_score needs reach < length and 2 × length ≤ T, got reach {reach}, "
                         f"length {L}, T {T}")
    qs = torch.arange(L, 2 * L - 1)
    return float(sum(weights[qs, qs - L + d] for d in range(1, reach + 1)).mean())


def induction_contrast(repeated: Tensor, control: Tensor, periods: list[int],
                       reach: int = INDUCTION_REACH) -> float:
    """A head's **induction score**: its :func:`induction_score` on text that repeats, minus the
    same on text that does not, averaged over probes (``repeated`` and ``control`` [P, T, T], the
    head's attention on each probe row, ``periods`` [P] the rows' periods):

        induction = 1/P · Σ_p ( induction_score(A_p, L_p) − induction_score(C_p, L_p) )

    The control rows hold different letters at the same positions (no letter repeats in reach), so
    a head whose attention follows positions alone (a fixed distance back, the first tokens, evenly
    spread) scores the same on both: 0. Only attention that follows the letters, to what came after
    the current letter last time, counts: an induction head scores up to 1. The periods
    (:data:`INDUCTION_PERIODS`) are at least ``reach`` apart, so no one distance back is counted for
    two of them."""
    scores = [induction_score(a, L, reach) - induction_score(c, L, reach)
              for a, c, L in zip(repeated, control, periods)]
    return sum(scores) / len(scores)


def induction_phase_step(curve: list, key: str = "loss", drop: float = 0.5) -> Optional[int]:
    """The step of the repeat task's sudden drop in loss: in ``curve`` (a runner's reports, in
    order), the first report whose ``key`` is below ``drop`` × the first report's (None: never)."""
    if not curve:
        return None
    first = curve[0][key]
    for p in curve:
        if p[key] < drop * first:
            return int(p["step"])
    return None


def sizes_table() -> list[tuple]:
    """(size, GPT parameters, LSTM parameters) on tiny Shakespeare's 65 characters."""
    rows = []
    for size in SIZES:
        gpt, lstm = pair_configs(LivePlan(size=size), 65, 64)
        rows.append((size, num_params(build_model(gpt)), num_params(build_model(lstm))))
    return rows
