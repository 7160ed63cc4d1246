"""GPT-2's weights in the from-scratch GPT (scratchformer/gpt2.py), against transformers' own GPT-2 on
the same weights: a tiny GPT2LMHeadModel with random weights made here, saved with save_pretrained,
and a vocabulary trained here. transformers is a test dependency only."""
import json

import pytest
import torch

from scratchformer.checkpoint import CheckpointError
from scratchformer.gpt2 import load_gpt2_folder
from scratchformer.inference.generation import generate_stream
from scratchformer.inference.sampling import SamplingSettings
from scratchformer.tokenizers import BPETokenizer

transformers = pytest.importorskip("transformers")

CORPUS = open("data/tinyshakespeare.txt", encoding="utf-8").read()
TEXTS = ["ROMEO:\nBut soft, what light through yonder window breaks?", "café 😀 naïve — 12,345 don't\n\n  x",
         "First Citizen:\nBefore we proceed any further, hear me speak."]


def tiny_config(vocab_size: int, **kw):
    return transformers.GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                   resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **kw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A GPT-2 folder as the Hub has them: config.json, model.safetensors, vocab.json, merges.txt."""
    path = tmp_path_factory.mktemp("gpt2")
    BPETokenizer.train(CORPUS[:100_000] + " ".join(TEXTS), 400, specials=["<|endoftext|>"]).save_gpt2_files(path)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(tiny_config(400))
    with torch.no_grad():                       # LayerNorms away from 1/0, so they count in the comparison
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def reference(folder):
    return transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()


def test_logits_and_attention_equal_transformers(folder, reference, close):
    ours = load_gpt2_folder(folder)
    assert ours.config.activation == "gelu_tanh" and ours.config.block_size == 64
    assert ours.model.lm_head.weight.data_ptr() == ours.model.embed.tok.weight.data_ptr()     # tied
    for text in TEXTS:
        ids = ours.tokenizer.encode(text)
        x = torch.tensor([ids])
        with torch.no_grad():
            theirs = reference(x, output_attentions=True)
            mine = ours.model(x, trace=True)
        close("gpt2 logits", mine.logits, theirs.logits, atol=1e-4)
        for layer, (a, b) in enumerate(zip(mine.trace.self_attn, theirs.attentions)):
            close(f"gpt2 attention layer {layer}", a, b, atol=1e-5)


def test_token_ids_equal_the_transformers_tokenizer(folder):
    ours = BPETokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt")
    theirs = transformers.GPT2TokenizerFast.from_pretrained(folder)      # reads vocab.json + merges.txt
    for text in TEXTS + [CORPUS[5000:7000]]:
        assert ours.encode(text) == theirs(text)["input_ids"]
    assert ours.special_id("<|endoftext|>") == theirs.convert_tokens_to_ids("<|endoftext|>") == 399


def test_greedy_generation_equals_transformers_generate(folder, reference):
    ours = load_gpt2_folder(folder)
    prompt = "ROMEO:\n"
    ids = ours.tokenizer.encode(prompt)
    mine = [g.token_id for g in generate_stream(ours.model, ours.tokenizer, prompt,
                                                 settings=SamplingSettings(temperature=0), max_new_tokens=20)]
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ids]), max_new_tokens=20, do_sample=False,
                                    pad_token_id=399, eos_token_id=None)
    assert mine == theirs[0, len(ids):].tolist()


def test_only_pickle_weights_are_refused_with_how_to_get_safetensors(folder, tmp_path):
    for name in ("config.json", "vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="pickle, which this app never loads.*model.safetensors"):
        load_gpt2_folder(tmp_path)


@pytest.mark.parametrize("change, message", [
    (dict(model_type="bert"), "only GPT-2 models"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon"),
    (dict(activation_function="swish"), "activation_function 'swish'"),
    (dict(vocab_size=401), "vocab.json has 400 tokens but config.json says vocab_size 401"),
    (dict(n_embd=48), "has shape"),
])
def test_a_folder_that_is_not_this_gpt2_is_refused_naming_the_file(folder, tmp_path, change, message):
    for name in ("model.safetensors", "vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    cfg = json.loads((folder / "config.json").read_text()) | change
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message):
        load_gpt2_folder(tmp_path)
