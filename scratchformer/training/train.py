"""Train a model: ``python -m scratchformer.train --model gpt --out checkpoints/NAME …``.

The loop, step by step (nanoGPT's recipe):

1. draw a random batch of windows from the training split (``data.get_batch``);
2. loss = mean cross-entropy of the next character; backpropagate;
3. clip the gradient norm to ``--grad-clip``;
4. AdamW step with the learning rate of this step (linear warmup, then cosine decay to ``--min-lr``),
   weight decay only on ≥2-D weights (matrices, embeddings), never on biases or LayerNorm gains;
5. every ``--eval-interval`` steps: estimate train and validation loss on ``--eval-iters`` batches,
   log a line, save the checkpoint if validation loss improved, and save the training state
   (latest weights, optimizer moments, step, RNG) to ``train_state.safetensors`` + ``train_state.json``
   so ``--resume`` can continue exactly where it stopped.

At the end the best checkpoint's loss is measured on the whole validation split
(``evaluate.split_loss``) and written to its ``metrics.json``.

CUDA runs in bf16 autocast, the CPU in fp32. Launched by ``torchrun --nproc_per_node=N`` (which sets
RANK / WORLD_SIZE) it trains with DistributedDataParallel: every rank draws different batches
(seed + rank), gradients are averaged, and only rank 0 evaluates and writes.

Extension point: ``MODEL_KINDS`` maps ``--model`` to a :class:`ModelKind` — how to build the config
from the arguments and which batch function feeds it. A new model or task (seq2seq dates, masked
characters) is one more entry; the loop calls ``model(*batch).loss`` and never looks inside a batch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from . import data as D
from ..checkpoint import (CONFIG_FILE, atomic_save_tensors, atomic_write_text, load_weights_into,
                          model_tensors, read_config, read_tensors, save_checkpoint)
from ..model.registry import build_model
from ..snapshots import MAX_SNAPSHOTS, read_snapshots, save_snapshot, snapshot_steps
from ..model.basics import num_params
from ..model.config import LSTMConfig, TransformerConfig
from ..model.fast import accelerate
from ..tokenizers import CharTokenizer
from .tasks import DatesTask, masked_batch_fn

TRAIN_STATE_TENSORS, TRAIN_STATE_JSON = "train_state.safetensors", "train_state.json"

# ------------------------------------------------------------------------------------- the registry

BatchFn = Callable[[str, int, torch.Generator], tuple[Tensor, ...]]


@dataclass
class ModelKind:
    """What ``--model NAME`` means: how to build its config, and the task that feeds it.

    make_task(args, device) -> (batch_fn, tokenizer, splits): ``batch_fn(split, batch_size,
        generator)`` returns the tensors passed to ``model(*batch)`` (the last one is the target);
        the tokenizer may add special tokens the task needs; splits maps "train"/"val" to token
        ids when the task has a corpus (else {}).
    make_config(args, tokenizer) -> the model's config.
    """

    make_config: Callable[[argparse.Namespace, CharTokenizer], object]
    make_task: Callable[[argparse.Namespace, torch.device], tuple[BatchFn, CharTokenizer, dict]]


def _gpt_config(args, tok: CharTokenizer) -> TransformerConfig:
    return TransformerConfig(model_type="gpt", vocab_size=tok.vocab_size, block_size=args.block_size,
                             n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                             dropout=args.dropout, pos=args.pos)


def _lstm_config(args, tok: CharTokenizer) -> LSTMConfig:
    return LSTMConfig(vocab_size=tok.vocab_size, n_embd=args.lstm_embd, hidden=args.hidden,
                      n_layer=args.layers, dropout=args.dropout, block_size=args.block_size)


def language_model_task(args, device: torch.device):
    """Next-token prediction on the corpus (first 90% of the characters train, last 10% validation),
    in the tokens ``--tokenizer`` names (characters, or a byte-level BPE trained on the training split)."""
    text = D.load_corpus(args.data)
    train_text, val_text = D.split_text(text)
    tok = D.corpus_tokenizer(args.tokenizer, train_text if args.tokenizer != "char" else text)
    train_ids, val_ids = D.encode_corpus(train_text, tok), D.encode_corpus(val_text, tok)
    splits = {"train": train_ids, "val": val_ids}

    def batch_fn(split: str, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        return D.get_batch(splits[split], batch_size, args.block_size, gen, device)

    return batch_fn, tok, splits


def _encoder_config(model_type: str, args, tok: CharTokenizer, **specials) -> TransformerConfig:
    """seq2seq / bert: the Transformer settings plus --n-dec-layer, --norm, --activation, --scale-embeddings."""
    return TransformerConfig(model_type=model_type, vocab_size=tok.vocab_size, block_size=args.block_size,
                             n_layer=args.n_layer, n_dec_layer=args.n_dec_layer or None, n_head=args.n_head,
                             n_embd=args.n_embd, dropout=args.dropout, pos=args.pos,
                             norm_first=args.norm == "pre", activation=args.activation,
                             scale_embeddings=args.scale_embeddings, **specials)


def _seq2seq_config(args, tok: CharTokenizer) -> TransformerConfig:
    return _encoder_config("seq2seq", args, tok, pad_id=tok.special_id("<pad>"),
                           bos_id=tok.special_id("<bos>"), eos_id=tok.special_id("<eos>"))


def _bert_config(args, tok: CharTokenizer) -> TransformerConfig:
    return _encoder_config("bert", args, tok, mask_id=tok.special_id("<mask>"))


def dates_task(args, device: torch.device):
    """Dates written many ways → ISO dates (``scratchformer.training.tasks``); "val" is the held-out days."""
    task = DatesTask()

    def batch_fn(split: str, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        return task.batch(split, batch_size, gen, device)

    return batch_fn, task.tokenizer, {}


def masked_char_task(args, device: torch.device):
    """Masked characters on the corpus (15%, BERT's 80/10/10 rule); the corpus vocabulary + <mask>."""
    text = D.load_corpus(args.data)
    tok = CharTokenizer.from_text(text, specials=("<mask>",))
    train_ids, val_ids = D.split(D.encode_corpus(text, tok))
    fns = {name: masked_batch_fn(ids, args.block_size, tok.special_id("<mask>"), tok.text_vocab_size)
           for name, ids in (("train", train_ids), ("val", val_ids))}

    def batch_fn(split: str, batch_size: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        return fns[split](batch_size, gen, device)

    return batch_fn, tok, {"train": train_ids, "val": val_ids}


MODEL_KINDS: dict[str, ModelKind] = {
    "gpt": ModelKind(_gpt_config, language_model_task),
    "lstm": ModelKind(_lstm_config, language_model_task),
    "seq2seq": ModelKind(_seq2seq_config, dates_task),
    "bert": ModelKind(_bert_config, masked_char_task),
}

# -------------------------------------------------------------------------------- pieces of the loop


def lr_at(it: int, args) -> float:
    """Learning rate at step ``it``: linear warmup to ``lr`` over ``warmup_iters`` steps, then

        lr(it) = min_lr + ½ (1 + cos(π · progress)) · (lr − min_lr),
        progress = (it − warmup) / (max_iters − warmup) ∈ [0, 1].
    """
    if it < args.warmup_iters:
        return args.lr * (it + 1) / (args.warmup_iters + 1)
    if it >= args.max_iters:
        return args.min_lr
    progress = (it - args.warmup_iters) / max(1, args.max_iters - args.warmup_iters)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (args.lr - args.min_lr)


def make_optimizer(model: nn.Module, args, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on tensors of ≥2 dimensions only (matrices and embeddings).

    On a CPU or a CUDA device PyTorch's fused implementation is used: one kernel per parameter group
    instead of ~10 small operations per tensor (the same update; tests/test_train.py compares it
    with the plain loop)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": args.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), fused=fused)


@torch.no_grad()
def estimate_loss(model: nn.Module, batch_fn: BatchFn, args, autocast) -> dict[str, float]:
    """Mean loss over ``eval_iters`` batches of each split, drawn with a fixed seed so every
    evaluation of a run sees the same batches."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        gen = torch.Generator().manual_seed(10_000 + args.seed)
        losses = []
        for _ in range(args.eval_iters):
            batch = batch_fn(split, args.batch_size, gen)
            with autocast():
                losses.append(model(*batch).loss.item())
        out[split] = sum(losses) / len(losses)
    model.train()
    return out


def hardware_description(device: torch.device, threads: int) -> str:
    """E.g. "CPU: AMD EPYC 7B13 x 1 threads" or the CUDA device's name."""
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {name} x {threads} threads"


# ------------------------------------------------------------------------------ saving the run state

def save_train_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator,
                     state: dict) -> None:
    """Latest weights, AdamW moments and the data RNG as safetensors; step, curve and settings as JSON."""
    tensors = {f"model.{k}": v for k, v in model_tensors(model).items()}
    opt_sd = opt.state_dict()
    for idx, st in opt_sd["state"].items():
        for name, value in st.items():
            tensors[f"optim.{idx}.{name}"] = value.detach().to("cpu").contiguous().reshape(value.shape)
    tensors["rng.data"] = gen.get_state()
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
              for g in opt_sd["param_groups"]]
    atomic_save_tensors(out / TRAIN_STATE_TENSORS, tensors)
    atomic_write_text(out / TRAIN_STATE_JSON, json.dumps({**state, "param_groups": groups}, indent=1))


def load_train_state(out: Path, model: nn.Module, opt: torch.optim.Optimizer,
                     gen: torch.Generator) -> dict:
    """Restore what :func:`save_train_state` wrote; returns its JSON part."""
    state = json.loads((out / TRAIN_STATE_JSON).read_text())
    tensors = read_tensors(out / TRAIN_STATE_TENSORS)
    load_weights_into(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                      out / TRAIN_STATE_TENSORS)
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    gen.set_state(tensors["rng.data"])
    return state


# ------------------------------------------------------------------------------------- the main loop

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m scratchformer.train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=sorted(MODEL_KINDS), default="gpt")
    p.add_argument("--out", required=True, help="checkpoint folder (created; --resume reads it)")
    p.add_argument("--data", default=None, help="corpus file (default data/tinyshakespeare.txt)")
    g = p.add_argument_group("Transformer")
    g.add_argument("--n-layer", type=int, default=4)
    g.add_argument("--n-head", type=int, default=4)
    g.add_argument("--n-embd", type=int, default=128)
    g.add_argument("--pos", choices=["learned", "sinusoidal"], default="learned")
    g = p.add_argument_group("seq2seq and bert")
    g.add_argument("--n-dec-layer", type=int, default=0, help="seq2seq decoder layers (0 = --n-layer)")
    g.add_argument("--norm", choices=["pre", "post"], default="pre", help="pre-norm, or the paper's post-norm")
    g.add_argument("--activation", choices=["gelu", "relu"], default="gelu")
    g.add_argument("--scale-embeddings", action="store_true", help="token embeddings × √d_model (the paper)")
    g = p.add_argument_group("LSTM")
    g.add_argument("--hidden", type=int, default=256)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--lstm-embd", type=int, default=64)
    g = p.add_argument_group("both")
    g.add_argument("--tokenizer", default="char",
                   help="language models: 'char', 'bpe:N' (a byte-level BPE of N tokens trained on the "
                        "training split) or a tokenizer JSON file")
    g.add_argument("--block-size", type=int, default=128)
    g.add_argument("--dropout", type=float, default=0.0)
    g = p.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--max-iters", type=int, default=2000)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--min-lr", type=float, default=1e-4)
    g.add_argument("--warmup-iters", type=int, default=100)
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.99)
    g.add_argument("--grad-clip", type=float, default=1.0, help="0 = off")
    g = p.add_argument_group("run")
    g.add_argument("--eval-interval", type=int, default=250)
    g.add_argument("--eval-iters", type=int, default=50)
    g.add_argument("--no-final-eval", action="store_true",
                   help="skip measuring the best checkpoint on the whole validation split at the end")
    g.add_argument("--snapshots", type=int, default=0,
                   help="save this many float16 snapshots at log-spaced steps into OUT/snapshots/ (0 = none)")
    g.add_argument("--seed", type=int, default=1337)
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: best available)")
    g.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    g.add_argument("--resume", action="store_true", help="continue from the training state in --out")
    args = p.parse_args(argv)
    for name in ("batch_size", "block_size", "max_iters", "eval_interval", "eval_iters"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be ≥ 1 (got {getattr(args, name)})")
    if not 0 <= args.snapshots <= MAX_SNAPSHOTS:
        raise SystemExit(f"--snapshots must be in 0…{MAX_SNAPSHOTS} (got {args.snapshots})")
    return args


def setup_distributed(args) -> tuple[int, int, torch.device]:
    """(rank, world_size, device). Under torchrun: init the process group (nccl on CUDA, gloo on CPU)."""
    from ..device import pick_device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(args.device)
        if device.type == "cuda":
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
        return rank, world, device
    return 0, 1, pick_device(args.device)


def train(args: argparse.Namespace) -> dict:
    """Run the training described by ``args``; returns the final metrics (rank 0) or {}."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed(args)
    master = rank == 0
    out = Path(args.out)
    torch.manual_seed(args.seed)  # model initialisation: identical on every rank
    kind = MODEL_KINDS[args.model]
    batch_fn, tok, splits = kind.make_task(args, device)
    # bits per character = nats per token × tokens per character ÷ ln 2 (1 token per character for
    # the character models); measured on the validation split
    val = splits.get("val")
    tokens_per_char = len(val) / max(1, len(tok.decode(val.tolist()))) if val is not None else 1.0
    config = kind.make_config(args, tok)
    if args.resume:
        if not (out / TRAIN_STATE_JSON).is_file():
            raise SystemExit(f"--resume: no {TRAIN_STATE_JSON} in {out}")
        config, tok = read_config(out)
    model = accelerate(build_model(config).to(device))   # the same function, faster products (model/fast/)
    opt = make_optimizer(model, args, device)
    gen = torch.Generator().manual_seed(args.seed + rank)  # per-rank data stream
    state = {"iter": 0, "curve": [], "best_val": float("inf"), "wall_time_s": 0.0}
    if args.resume:
        state = load_train_state(out, model, opt, gen)
        if world > 1:  # each rank's RNG continues differently
            gen.manual_seed(args.seed + rank + 7919 * state["iter"])
    ddp_model = model  # what the training step calls; DDP averages the gradients across ranks
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda"
                else contextlib.nullcontext)
    params = num_params(model)
    tokens_per_iter = args.batch_size * args.block_size * world
    hardware = hardware_description(device, torch.get_num_threads()) + (f" x {world} processes" if world > 1 else "")
    if master:
        out.mkdir(parents=True, exist_ok=True)
        print(f"{args.model}: {params:,} parameters, {tokens_per_iter:,} tokens/step, {hardware}, "
              f"steps {state['iter']}→{args.max_iters}", flush=True)

    def metrics(train_loss: float, val_loss: float, it: int) -> dict:
        return {"model_type": config.model_type, "params": params, "val_loss": val_loss,
                "bits_per_char": val_loss * tokens_per_char / math.log(2), "val_loss_method":
                f"mean over {args.eval_iters} random validation batches of {args.batch_size}x{args.block_size}",
                "train_loss": train_loss, "iters": it, "tokens_seen": it * tokens_per_iter,
                "batch_size": args.batch_size * world, "block_size": args.block_size, "hardware": hardware,
                "device": str(device), "wall_time_s": round(state["wall_time_s"], 1),
                "torch_version": torch.__version__,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "curve": state["curve"], "args": {k: v for k, v in vars(args).items() if k != "resume"}}

    stop = {"flag": False}

    def on_sigterm(signum, frame):  # finish the current step, save, exit
        stop["flag"] = True
    if master:
        signal.signal(signal.SIGTERM, on_sigterm)

    # the steps still to snapshot (a resumed training keeps the ones it has)
    snap_at = set(snapshot_steps(args.max_iters, args.snapshots)) if master and args.snapshots > 0 else set()
    snap_at -= {r["step"] for r in read_snapshots(out)} if snap_at else set()

    model.train()
    it = state["iter"]
    last_loss = float("nan")
    bar = tqdm(total=args.max_iters, initial=it, disable=not master, dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 60.0, file=sys.stderr)
    run_start = time.perf_counter()
    wall_before = state["wall_time_s"]          # from earlier runs of a resumed training
    t_train, tokens_since = run_start, 0        # throughput since the last evaluation
    while True:
        last_step = it >= args.max_iters or stop["flag"]
        if master and (it % args.eval_interval == 0 or last_step) and (it > state["iter"] or it == 0 or last_step):
            state["wall_time_s"] = wall_before + time.perf_counter() - run_start
            losses = estimate_loss(model, batch_fn, args, autocast)
            lr = lr_at(it, args)
            state["curve"].append({"iter": it, "tokens": it * tokens_per_iter, "train_loss": round(losses["train"], 4),
                                   "val_loss": round(losses["val"], 4), "lr": lr})
            improved = losses["val"] < state["best_val"]
            if improved:
                state["best_val"] = losses["val"]
                save_checkpoint(out, model, tok, metrics(losses["train"], losses["val"], it))
            state["iter"] = it
            save_train_state(out, model, opt, gen, {k: v for k, v in state.items() if k != "param_groups"}
                             | {"args": metrics(0, 0, it)["args"]})
            tqdm.write(f"step {it:6d} | train {losses['train']:.4f} | val {losses['val']:.4f} | lr {lr:.2e} | "
                       f"tokens {it * tokens_per_iter:,} | {state['wall_time_s'] / 60:.1f} min"
                       f"{' | saved (best)' if improved else ''}", file=sys.stdout)
            sys.stdout.flush()
            t_train, tokens_since = time.perf_counter(), 0  # evaluation time is not training throughput
        if it in snap_at:   # the model after `it` steps, with its estimated losses (same batches as the log)
            losses = estimate_loss(model, batch_fn, args, autocast)
            save_snapshot(out, model, it, {"tokens": it * tokens_per_iter, "train_loss": round(losses["train"], 4),
                                           "val_loss": round(losses["val"], 4)})
            snap_at.discard(it)
            t_train, tokens_since = time.perf_counter(), 0
        if last_step:
            break
        lr = lr_at(it, args)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = batch_fn("train", args.batch_size, gen)
        with autocast():
            loss = ddp_model(*batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        it += 1
        tokens_since += tokens_per_iter
        if master and (it % 10 == 0 or it == args.max_iters):
            last_loss = loss.item()
            elapsed = time.perf_counter() - t_train
            bar.set_postfix(loss=f"{last_loss:.3f}", lr=f"{lr:.1e}",
                            tok_s=f"{tokens_since / max(elapsed, 1e-9):,.0f}", refresh=False)
        bar.update(1)
    bar.close()

    final = {}
    if master and not args.no_final_eval and (out / CONFIG_FILE).is_file() and not stop["flag"]:
        from .evaluate import evaluate_checkpoint
        final = evaluate_checkpoint(out, device=str(device), update_metrics=True)
        print(f"best checkpoint, whole validation split: val_loss {final['val_loss']:.4f} "
              f"({final['bits_per_char']:.3f} bits/char)", flush=True)
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return final


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
