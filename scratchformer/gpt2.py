"""GPT-2's own weights in the from-scratch GPT: read a Hugging Face GPT-2 folder (``config.json``,
``model.safetensors``, ``vocab.json``, ``merges.txt``: gpt2, distilgpt2, gpt2-medium, …).

GPT-2 is the GPT of :mod:`scratchformer.model.transformer` with these settings: learned positions
(1,024 of them), pre-norm blocks, LayerNorm ε = 1e-5 (PyTorch's default, ours), the output head tied
to the token embeddings, and the tanh approximation of GELU,

    GELU(x) ≈ ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))          (``activation="gelu_tanh"``).

Its weights are named differently and stored the other way round: GPT-2's ``Conv1D`` computes
``y = x W + b`` with W of shape [in, out], where ``nn.Linear`` computes ``y = x Wᵀ + b`` with W of
shape [out, in]; so every matrix is transposed, and the attention's one ``c_attn`` [d, 3d] is cut
into W^Q, W^K and W^V (:func:`our_tensors`). The tokenizer is the project's own byte-level BPE reading
``vocab.json`` + ``merges.txt`` (:mod:`scratchformer.tokenizers.bpe`).

Nothing is ever unpickled: a folder with only ``pytorch_model.bin`` is refused, with how to get
``model.safetensors``.

Where the folder comes from (:func:`gpt2_folder`): a local path, or a Hugging Face Hub id such as
``gpt2`` or ``distilbert/distilgpt2``, downloaded with ``huggingface_hub`` into its cache (the small
files first, :data:`LAYOUT_FILES`, so that an app can lay out its page; the weights when asked for).
Reading the JSON files needs no torch (:func:`read_gpt2_config`), as for our own checkpoints.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .checkpoint import CheckpointError, LoadedModel, load_weights_into, read_tensors
from .model.config import TransformerConfig
from .model.registry import build_model
from .tokenizers import BPETokenizer

if TYPE_CHECKING:           # annotations only: the functions that load weights import torch
    import torch

# GPT-2's activation_function → ours (both "gelu_new" and "gelu_pytorch_tanh" are the tanh form)
ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}
FILES = ("config.json", "model.safetensors", "vocab.json", "merges.txt")
LAYOUT_FILES = ("config.json", "vocab.json", "merges.txt")   # all an app needs before the weights
# A Hub id: "name" or "owner/name", letters, digits, "-", "_", "." (no "..", no leading "." or "-").
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def config_from_hf(d: dict, where: str = "config.json") -> TransformerConfig:
    """Our config for a GPT-2 ``config.json``; CheckpointError naming what is not GPT-2 or not
    supported (another architecture, a LayerNorm ε other than 1e-5, untied head, …)."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{where}: not a JSON object")
    if d.get("model_type") != "gpt2":
        raise CheckpointError(f"{where}: model_type is {d.get('model_type')!r}; only GPT-2 models (\"gpt2\") "
                              "can be read")
    try:
        n_embd, n_layer, n_head = int(d["n_embd"]), int(d["n_layer"]), int(d["n_head"])
        n_positions, vocab_size = int(d["n_positions"]), int(d["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: missing or invalid {e}") from None
    act = d.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"{where}: activation_function {act!r} is not one of {sorted(ACTIVATIONS)}")
    eps = float(d.get("layer_norm_epsilon", 1e-5))
    if abs(eps - 1e-5) > 1e-12:
        raise CheckpointError(f"{where}: layer_norm_epsilon {eps} is not supported (this GPT's LayerNorm uses 1e-5)")
    for key, want in (("tie_word_embeddings", True), ("scale_attn_weights", True),
                      ("scale_attn_by_inverse_layer_idx", False)):
        if d.get(key, want) != want:
            raise CheckpointError(f"{where}: {key} = {d.get(key)!r} is not supported (GPT-2 has {want})")
    n_inner = d.get("n_inner") or 4 * n_embd
    try:
        return TransformerConfig(model_type="gpt", vocab_size=vocab_size, block_size=n_positions, n_layer=n_layer,
                                 n_head=n_head, n_embd=n_embd, d_ff=int(n_inner), dropout=0.0, pos="learned",
                                 norm_first=True, activation=ACTIVATIONS[act], bias=True, tie_weights=True)
    except (ValueError, TypeError) as e:          # sizes our GPT cannot take (d_model not divisible by heads…)
        raise CheckpointError(f"{where}: {e}") from None


def our_tensors(hf: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """GPT-2's tensors under our names (``transformer.`` prefix or not), Conv1D matrices transposed,
    ``c_attn`` cut into q, k, v. GPT-2's causal-mask buffers (``attn.bias``, ``attn.masked_bias``)
    are left out: our attention makes its mask.

    Nothing is copied: a transposed matrix is a view of GPT-2's own ([in, out] stored, read as
    [out, in]; a matrix product takes either layout at the same speed), so a 500 MB GPT-2 takes
    500 MB. ``hf`` is emptied: the returned tensors are all that hold the weights."""
    t = {k.removeprefix("transformer."): hf[k] for k in list(hf)}
    hf.clear()
    d = cfg.n_embd
    out = {"embed.tok.weight": t.pop("wte.weight"), "embed.pos.emb.weight": t.pop("wpe.weight"),
           "ln_f.weight": t.pop("ln_f.weight"), "ln_f.bias": t.pop("ln_f.bias")}
    for i in range(cfg.n_layer):
        h, o = f"h.{i}.", f"layers.{i}."
        w, b = t.pop(h + "attn.c_attn.weight"), t.pop(h + "attn.c_attn.bias")       # [d, 3d], [3d]
        for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[o + f"self_attn.{name}.weight"] = w[:, k * d:(k + 1) * d].t()
            out[o + f"self_attn.{name}.bias"] = b[k * d:(k + 1) * d]
        pairs = {"self_attn.out_proj": "attn.c_proj", "ff.linear1": "mlp.c_fc", "ff.linear2": "mlp.c_proj"}
        for ours, theirs in pairs.items():
            out[o + ours + ".weight"] = t.pop(h + theirs + ".weight").t()
            out[o + ours + ".bias"] = t.pop(h + theirs + ".bias")
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[o + ours + ".weight"] = t.pop(h + theirs + ".weight")
            out[o + ours + ".bias"] = t.pop(h + theirs + ".bias")
    return out


def gpt2_folder(source: str, files=LAYOUT_FILES) -> Path:
    """The folder of the GPT-2 named by ``source``: a local folder as it is, or a Hub id whose
    ``files`` are downloaded first (``huggingface_hub.snapshot_download`` into its cache; files
    already there are not fetched again). CheckpointError naming ``source`` when it is neither."""
    source = str(source).strip()
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder
    if not HUB_ID.match(source) or ".." in source:
        raise CheckpointError(f"GPT-2 source {source[:80]!r} is neither a folder nor a Hugging Face Hub id "
                              "such as 'gpt2' or 'distilbert/distilgpt2'")
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id=source, allow_patterns=list(files)))
    except Exception as e:     # no network, unknown repository, …: the app goes on without it
        raise CheckpointError(f"GPT-2 {source!r} could not be downloaded from the Hugging Face Hub: "
                              f"{type(e).__name__}: {str(e)[:200]}") from None


def read_gpt2_config(folder: str | Path) -> tuple[TransformerConfig, BPETokenizer]:
    """Our config and tokenizer for the GPT-2 folder ``folder`` from its ``config.json``, ``vocab.json``
    and ``merges.txt`` (no weights, no torch); CheckpointError naming the file otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder.name}: not a folder")
    missing = [f for f in LAYOUT_FILES if not (folder / f).is_file()]
    if missing:
        raise CheckpointError(f"{folder.name}: missing {', '.join(missing)}")
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder.name}/config.json: cannot read it as JSON ({e})") from None
    cfg = config_from_hf(raw, f"{folder.name}/config.json")
    try:
        tok = BPETokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt")
    except ValueError as e:
        raise CheckpointError(f"{folder.name}/{e}") from None
    if tok.vocab_size != cfg.vocab_size:
        raise CheckpointError(f"{folder.name}: vocab.json has {tok.vocab_size} tokens but config.json says "
                              f"vocab_size {cfg.vocab_size}")
    return cfg, tok


def load_gpt2_folder(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """The GPT-2 in ``folder`` as a :class:`~scratchformer.checkpoint.LoadedModel` of our GPT (eval
    mode, no gradients) with our BPE; CheckpointError naming the folder and the file otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder.name}: not a folder")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        if (folder / "pytorch_model.bin").is_file():
            raise CheckpointError(
                f"{folder.name}: has only pytorch_model.bin, a pickle, which this app never loads. Get "
                "model.safetensors instead: `huggingface-cli download gpt2 model.safetensors config.json "
                "vocab.json merges.txt --local-dir <folder>`, or in Python `GPT2LMHeadModel.from_pretrained("
                "<folder>).save_pretrained(<folder>, safe_serialization=True)`")
        raise CheckpointError(f"{folder.name}: model.safetensors is missing")
    cfg, tok = read_gpt2_config(folder)
    try:
        tensors = our_tensors(read_tensors(weights), cfg)
    except KeyError as e:
        raise CheckpointError(f"{folder.name}/model.safetensors: tensor {e} is missing") from None
    model = _model_from(cfg, tensors, weights)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    metrics = {"model_type": "gpt", "source": f"Hugging Face GPT-2 folder {folder.name}"}
    return LoadedModel(model=model, tokenizer=tok, config=cfg, metrics=metrics, path=folder)


def _model_from(cfg: TransformerConfig, tensors: dict[str, torch.Tensor], weights: Path):
    """Our GPT with ``tensors`` as its parameters (checked by name and shape). It is built on the
    "meta" device (shapes, no memory) and given the tensors themselves (``assign=True``): no random
    initialisation that is overwritten at once, no second copy (124M parameters: 500 MB each)."""
    import torch
    with torch.device("meta"):
        skeleton = build_model(cfg)
    load_weights_into(skeleton, tensors, weights, assign=True)
    skeleton.lm_head.weight = skeleton.embed.tok.weight        # tied again: the head is the embedding
    if any(t.is_meta for t in [*skeleton.parameters(), *skeleton.buffers()]):   # a buffer made in __init__
        model = build_model(cfg)
        load_weights_into(model, tensors, weights)
        return model
    return skeleton
