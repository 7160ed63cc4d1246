"""GPT-2 in the app ($SCRATCHFORMER_GPT2): a GPT-2 folder made here (transformers' GPT2LMHeadModel with
a tiny config and random weights, saved with save_pretrained; a vocabulary trained here), offered as
the pair "GPT-2 (words)" next to the word LSTM. Every view of the pair runs on it; the numbers the
attention view and generation show are recomputed by transformers on the same weights; a Hub id is
fetched in two steps (the small files when the app opens, the weights when they load) through a
stand-in for huggingface_hub; a broken source leaves the rest of the app serving."""
import inspect
import json
import shutil

import pytest
import torch

from app_checkpoints import make_checkpoints, make_word_checkpoints
from scratchformer.app import mcp_tools as T
from scratchformer.app import settings as check
from scratchformer.app.bank import GPT2, GPT2_PAIR, LSTM_NAME, SMALL_PAIR, TRANSFORMER, WORD_LSTM, ModelBank
from scratchformer.app.blocks import build_app, header, pair_label
from scratchformer.app.generate_tab import generate as generate_callback
from scratchformer.app.inspect_tabs import attention, attention_layer
from scratchformer.app.policy import md_text
from scratchformer.gpt2 import LAYOUT_FILES
from scratchformer.tokenizers import BPETokenizer

transformers = pytest.importorskip("transformers")

CORPUS = open("data/tinyshakespeare.txt", encoding="utf-8").read()
N_LAYER, N_HEAD = 8, 3          # deeper than one page of the attention grid (views.GRID_LAYERS = 6)
TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?"


def make_gpt2_folder(path):
    """A GPT-2 folder as the Hub has them: config.json, model.safetensors, vocab.json, merges.txt."""
    BPETokenizer.train(CORPUS[:60_000], 400, specials=["<|endoftext|>"]).save_gpt2_files(path)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=400, n_positions=96, n_embd=24, n_layer=N_LAYER, n_head=N_HEAD,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=399,
                                  eos_token_id=399)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    return make_gpt2_folder(tmp_path_factory.mktemp("gpt2-tiny"))


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return make_word_checkpoints(make_checkpoints(tmp_path_factory.mktemp("ckpts")))


@pytest.fixture(scope="module")
def app(ckpt_dir, gpt2_folder):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCRATCHFORMER_GPT2", str(gpt2_folder))
        built = build_app(ckpt_dir)
    built.bank.load_models(late_in_background=False)
    return built


@pytest.fixture(scope="module")
def reference(gpt2_folder):
    return transformers.GPT2LMHeadModel.from_pretrained(gpt2_folder, attn_implementation="eager").eval()


def test_the_gpt2_pair_is_offered_with_the_word_lstm_and_named_on_the_page(app, gpt2_folder):
    bank = app.bank
    assert GPT2_PAIR in bank.pairs() and bank.slots[GPT2].late
    pair = bank.for_pair(GPT2_PAIR)
    assert pair.get(TRANSFORMER) is bank.get(GPT2) and pair.get(LSTM_NAME) is bank.get(WORD_LSTM)
    assert pair_label(bank, GPT2_PAIR) == "GPT-2 (BPE, 400 tokens) + word LSTM"
    assert f"({md_text(gpt2_folder.name)}: {N_LAYER} layers × {N_HEAD} heads" in header(bank)
    assert bank.shape(GPT2_PAIR)["layer"] == N_LAYER and bank.largest_shape()["head"] == N_HEAD


def test_without_the_variable_there_is_no_gpt2(ckpt_dir, monkeypatch):
    monkeypatch.delenv("SCRATCHFORMER_GPT2", raising=False)
    bank = ModelBank.open(ckpt_dir)
    assert GPT2 not in bank.slots and GPT2_PAIR not in bank.pairs()
    with pytest.raises(ValueError, match="models must be one of 'characters', 'words'; got 'gpt2'"):
        T.generate(bank, models="gpt2")


def paired_events(demo):
    pair = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "pair")
    for f in demo.fns.values():
        if f.fn is not None and any(c._id == pair._id for c in f.inputs) and f.api_name:
            yield f, pair


def test_every_view_of_the_pair_runs_on_gpt2(app):
    """Each event that follows the pair, on its controls' defaults with the GPT-2 pair: no error."""
    ran = []
    for f, pair in paired_events(app.demo):
        args = [GPT2_PAIR if c._id == pair._id else getattr(c, "value", None) for c in f.inputs]
        if f.api_name == "generate":
            args[[c.elem_id for c in f.inputs].index("max-new")] = 8
        out = f.fn(*args)
        if inspect.isgenerator(out):
            out = list(out)
        ran.append(f.api_name)
    for name in ("generate", "attention", "inside_walkthrough", "inside_logit_lens", "inside_ablation",
                 "inside_head_worth", "inside_heads", "embedding_tables", "hidden_states", "lstm_gates"):
        assert name in ran


def test_the_attention_head_shown_is_transformers_own(app, reference, close):
    bank = app.bank.for_pair(GPT2_PAIR)
    ids = bank.get(TRANSFORMER).tokenizer.encode(TEXT)
    with torch.no_grad():
        theirs = reference(torch.tensor([ids]), output_attentions=True).attentions
    for layer, head in ((1, 1), (7, 3), (N_LAYER, 2)):
        v = attention(bank, TEXT, True, layer, head, False)
        z = torch.tensor(v.head.data[0].z, dtype=torch.float64)
        close("gpt2 app attention head", z, theirs[layer - 1][0, head - 1].double(), atol=1e-5)


def test_the_grid_pages_through_layers(app, reference, close):
    bank = app.bank.for_pair(GPT2_PAIR)
    first = attention(bank, TEXT, True, 2, 1, False).grid
    assert first.layout.title.text.startswith(f"layers 1–6 of {N_LAYER} × every head")
    assert len(first.data) == 6 * N_HEAD and first.data[0].name == "layer 1 head 1"
    page, average = attention_layer(bank, TEXT, True, 7, 1, False)
    assert average.layout.title.text.startswith("layer 7, average over heads")
    assert page.layout.title.text.startswith(f"layers 7–{N_LAYER} of {N_LAYER}")
    assert [t.name for t in page.data][:N_HEAD + 1] == ["layer 7 head 1", "layer 7 head 2", "layer 7 head 3",
                                                        "layer 8 head 1"]
    ids = bank.get(TRANSFORMER).tokenizer.encode(TEXT)
    with torch.no_grad():
        theirs = reference(torch.tensor([ids]), output_attentions=True).attentions
    # the panels are the heads' weights (average-pooled only past GRID_MAX_CELLS tokens; this text is shorter)
    close("gpt2 grid panel", torch.tensor(page.data[N_HEAD + 1].z, dtype=torch.float64), theirs[7][0, 1].double())
    # the small pair's 2 layers fit on one page: the layer slider redraws the average, not the grid
    small = app.bank.for_pair(SMALL_PAIR)
    grid, average = attention_layer(small, TEXT, True, 1, 1, False)
    assert grid == {"__type__": "update"} and average.layout.title.text.startswith("layer 1, average")


def test_generation_on_the_page_is_transformers_greedy_generate(app, reference):
    bank = app.bank
    tok = bank.get(GPT2).tokenizer
    last = list(generate_callback(bank, TEXT, 0, 0, 1, 16, 0, None, GPT2_PAIR))[-1]
    ids = tok.encode(TEXT)
    with torch.no_grad():
        theirs = reference.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False,
                                    pad_token_id=tok.vocab_size - 1, eos_token_id=None)
    assert last.transformer_text == tok.decode(theirs[0, len(ids):].tolist())
    assert last.transformer_stats.startswith("**GPT-2** · 16 tokens")          # named as itself in its role
    mcp = T.generate(bank, TEXT, 0, 0, 1, 16, 0, models="gpt2")
    assert mcp["transformer"] == last.transformer_text and mcp["lstm"] == last.lstm_text
    alone = T.generate(bank, TEXT, 0, 0, 1, 16, 0, model="gpt2")          # GPT-2 by itself: the same text
    assert alone["transformer"] == last.transformer_text and alone["lstm"] is None
    assert alone["names"] == {"transformer": GPT2}
    assert T.attention(bank, TEXT, N_LAYER, N_HEAD, model="gpt2")["model"] == GPT2


def test_a_large_model_writes_at_most_300_tokens_per_request():
    ok = check.generation(0.8, 0, 0.95, 300, 0, n_params=124_000_000)
    assert ok.max_new_tokens == 300
    with pytest.raises(ValueError, match=r"max_new_tokens must be .*300.*got 301"):
        check.generation(0.8, 0, 0.95, 301, 0, n_params=124_000_000)
    assert check.generation(0.8, 0, 0.95, 2000, 0, n_params=1_000_000).max_new_tokens == 2000


def test_controls_follow_the_pair(app):
    """The layer and head controls range over the largest pair (what the API accepts); the page fits
    them to the chosen pair, and fits a view's values before computing it (browser code)."""
    sliders = {b.elem_id: b for b in app.demo.blocks.values() if getattr(b, "elem_id", None)}
    assert sliders["attn-layer"].maximum == N_LAYER and sliders["attn-head"].maximum == N_HEAD
    assert sliders["watch-layer"].maximum == N_LAYER and sliders["inside-layer"].maximum == N_LAYER
    assert len(sliders["inside-heads-off"].choices) == N_LAYER * N_HEAD
    fits = [f for f in app.demo.fns.values() if f.fn is not None and getattr(f.fn, "__name__", "") == "fit"]
    fitted = {c.elem_id for f in fits for c in f.outputs}
    assert {"attn-layer", "attn-head", "watch-layer", "inside-layer", "inside-heads-off", "inside-ffn-off"} <= fitted
    fit = next(f for f in fits if "attn-layer" in [c.elem_id for c in f.outputs])
    names = [c.elem_id for c in fit.outputs]
    small = fit.fn(SMALL_PAIR, *[N_LAYER if "layer" in n else 3 for n in names[:len(fit.inputs) - 1]])
    layer = small[names.index("attn-layer")]
    assert layer["maximum"] == 2 and layer["value"] == 2       # the small GPT's 2 layers: 8 → 2
    big = fit.fn(GPT2_PAIR, *[1] * (len(fit.inputs) - 1))
    assert big[names.index("attn-layer")]["maximum"] == N_LAYER
    watch = next(f for f in fits if [c.elem_id for c in f.outputs] == ["watch-layer"])
    assert watch.fn(SMALL_PAIR, 7) == {"minimum": 1, "maximum": 2, "value": 2, "interactive": True,
                                       "__type__": "update"}             # one output: the update itself
    attn = next(f for f, _ in paired_events(app.demo) if f.api_name == "attention")
    assert f'"{GPT2_PAIR}": {{"layer": {N_LAYER}, "head": {N_HEAD}, ' in attn.js


def test_a_hub_id_is_fetched_in_two_steps(ckpt_dir, gpt2_folder, tmp_path, monkeypatch):
    """Small files when the bank opens (the page needs the config and vocabulary), the weights when
    they load; the page names the Hub id."""
    import huggingface_hub
    calls = []

    def fake_snapshot_download(repo_id, allow_patterns):
        calls.append((repo_id, sorted(allow_patterns)))
        snap = tmp_path / "snapshot"
        snap.mkdir(exist_ok=True)
        for name in allow_patterns:
            shutil.copy(gpt2_folder / name, snap / name)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("SCRATCHFORMER_GPT2", "someone/tiny-gpt2")
    bank = ModelBank.open(ckpt_dir)
    assert calls == [("someone/tiny-gpt2", sorted(LAYOUT_FILES))]
    assert bank.slots[GPT2].origin == "someone/tiny-gpt2" and "downloaded the first time" in header(bank)
    bank.load_models(late_in_background=False)
    assert calls[1] == ("someone/tiny-gpt2", sorted(LAYOUT_FILES + ("model.safetensors",)))
    assert bank.available(GPT2)


@pytest.mark.parametrize("source, message", [
    ("no/such/folder here", "is neither a folder nor a Hugging Face Hub id"),
    ("pickle-only", "pytorch_model.bin, a pickle, which this app never loads"),
    ("bert-config", "config.json: model_type is 'bert'; only GPT-2 models"),
    ("wrong-shapes", "model.safetensors: tensor 'embed.tok.weight' has shape (400, 24) but the config needs (400, 30)"),
    ("odd-heads", "config.json: n_embd (32) must be divisible by n_head (3)"),
])
def test_a_broken_gpt2_source_leaves_the_app_serving(ckpt_dir, gpt2_folder, tmp_path, monkeypatch, source, message):
    if source == "pickle-only":
        folder = tmp_path / "pickle-only"
        folder.mkdir()
        for name in LAYOUT_FILES:
            shutil.copy(gpt2_folder / name, folder / name)
        (folder / "pytorch_model.bin").write_bytes(b"not read")
        source = str(folder)
    elif source in ("bert-config", "wrong-shapes", "odd-heads"):
        folder = tmp_path / source
        shutil.copytree(gpt2_folder, folder)
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update({"bert-config": {"model_type": "bert"}, "wrong-shapes": {"n_embd": 30},
                    "odd-heads": {"n_embd": 32}}[source])
        (folder / "config.json").write_text(json.dumps(cfg))
        source = str(folder)
    monkeypatch.setenv("SCRATCHFORMER_GPT2", source)
    bank = ModelBank.open(ckpt_dir)
    bank.load_models(late_in_background=False)
    error = bank.slots[GPT2].error
    assert message in error and str(tmp_path) not in error and error.startswith("GPT-2 $SCRATCHFORMER_GPT2 = ")
    assert GPT2_PAIR not in bank.pairs() and bank.available(TRANSFORMER)
    assert "GPT-2 is unavailable" in header(bank)
    with pytest.raises(ValueError, match="models must be one of 'characters', 'words'"):
        T.generate(bank, models="gpt2")


def test_a_prompt_longer_than_the_context_is_read_from_its_end_with_a_note(app):
    bank = app.bank
    prompt = CORPUS[:1500]
    n = len(bank.get(GPT2).tokenizer.encode(prompt))
    with pytest.warns(UserWarning, match="context length"):        # the page's toast, outside a request
        first = next(iter(generate_callback(bank, prompt, 0, 0, 1, 2, 0, None, GPT2_PAIR)))
    note = f"the Transformer reads the last 96 of the prompt's {n:,} tokens (its context length)"
    assert n > 96 and md_text(note) in first.notes
