"""The app's MCP tools (scratchformer/app/mcp_tools.py): called directly against the library, then
through the running app with the ``mcp`` package's own client (streamable HTTP at /gradio_api/mcp/)
and with gradio_client (/tool_<name>), which must agree. Tiny random-weight checkpoints."""
import json
import asyncio
import math

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from app_checkpoints import make_checkpoints, serve
from test_app_seq2seq import make_encoder_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app import mcp_tools as T
from scratchformer.app.bank import BERT, ENCDEC, TRANSFORMER, ModelBank
from scratchformer.app.generate_tab import generate as generate_callback
from scratchformer.inference.blanks import fill_blanks, gpt_fill_blanks
from scratchformer.inference.seq2seq import decode_with_trace

ARGS = {  # one call of each tool (small, so the tests stay fast)
    "generate": dict(prompt="ROMEO:\n", temperature=0.9, top_k=20, top_p=0.9, max_new_tokens=12, seed=5,
                     models="characters", model=""),
    "next_char_distribution": dict(text="O Romeo", temperature=0.7, top_k=10, top_p=0.5, top_n=12, seed=3,
                                   models="characters", model="lstm"),
    "attention": dict(text="JULIET:\nO Romeo!", layer=2, head=1, causal=False, models="characters", model="gpt"),
    "normalize_date": dict(source="3rd of March 1999", method="beam", beam_size=3, alpha=0.6, layer=0, head=2),
    "fill_blanks": dict(text="My l_rd, the k_ng is d_ad.", top_k=3),
    "train_pair": dict(text="To be, or not to be, that is the question:\n" * 6, seconds=2, seed=1),
}
SAME_EVERY_TIME = [name for name in ARGS if name != "train_pair"]   # a training's steps follow the clock


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    return make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("ckpts")))


@pytest.fixture(scope="module")
def bank(ckpt_dir):
    return ModelBank.load(ckpt_dir, device="cpu")


@pytest.fixture(scope="module")
def url(bank):
    demo = ui.build_demo(bank=bank)
    yield serve(demo)          # launch_kwargs(): mcp_server=True unless SCRATCHFORMER_MCP=0
    demo.close()


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def mcp(url: str, work):
    """Run ``await work(session)`` in an MCP client session with the app; its result."""
    async def run():
        async with streamable_http_client(url + "gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)
    return asyncio.run(run())


def mcp_calls(url: str, calls: list[tuple[str, dict]]) -> list:
    """Call each (tool, arguments) in one session → [(is_error, text of the result)]."""
    async def work(session):
        out = []
        for name, args in calls:
            r = await session.call_tool(name, args)
            out.append((r.isError, r.content[0].text))
        return out
    return mcp(url, work)


def parsed(text: str) -> dict:
    """A tool's result: one JSON text (mcp_tools.bind), over MCP and gradio_client alike."""
    return json.loads(text)


# ------------------------------------------------------------------------- the tools, directly

def test_generate_writes_what_the_app_generate_callback_writes(bank):
    a = ARGS["generate"]
    out = T.generate(bank, **a)
    *_, last = generate_callback(bank, a["prompt"], a["temperature"], a["top_k"], a["top_p"], a["max_new_tokens"],
                                 a["seed"])
    assert (out["transformer"], out["lstm"]) == (last.transformer_text, last.lstm_text)
    assert len(out["transformer"]) == a["max_new_tokens"]
    assert T.generate(bank, **a) == out                               # same seed, same text
    assert T.generate(bank, **{**a, "seed": 6})["transformer"] != out["transformer"]
    empty = T.generate(bank, "", max_new_tokens=3)
    assert empty["prompt"] == "\n" and "empty" in empty["notes"][0]


def test_a_tool_call_stops_after_its_time_with_the_beginning_of_the_text_and_says_so(bank, monkeypatch):
    """A busy server: the call stops once it has taken TOOL_SECONDS (here 0: after its first token per
    model), with the beginning of what an unhurried call writes and a note giving the count."""
    a = {**ARGS["generate"], "max_new_tokens": 30}
    full = T.generate(bank, **a)
    assert not any("stopped at" in n for n in full["notes"])
    monkeypatch.setattr(T, "TOOL_SECONDS", 0.0)
    cut = T.generate(bank, **a)
    assert [n for n in cut["notes"] if n.startswith("stopped at")] == [
        "stopped at 1 of 30 tokens per model: a tool call may take at most 0 s and the server was busy; the text "
        "is the beginning of what a call on a quiet server writes; call again with the prompt plus it for more"]
    for key in ("transformer", "lstm"):
        assert len(cut[key]) == 1 and full[key].startswith(cut[key])      # character models: 1 token each
    assert cut["settings"] == full["settings"]


def test_next_char_distribution_sums_to_one_and_says_what_each_filter_cut(bank):
    v = 65
    out = T.next_char_distribution(bank, "O Romeo", temperature=0.7, top_k=10, top_p=0.5, top_n=v, seed=3)
    for key in ("transformer", "lstm"):
        d = out[key]
        assert len(d["top"]) == v and d["vocabulary"] == v
        assert math.isclose(sum(c["p_temperature"] for c in d["top"]), 1, abs_tol=1e-4)
        assert math.isclose(sum(c["p_filtered"] for c in d["top"]), 1, abs_tol=1e-4)
        p = [c["p_temperature"] for c in d["top"]]
        assert p == sorted(p, reverse=True)
        cut_k = [c for c in d["top"] if c["cut_by"] == "top_k"]
        kept = [c for c in d["top"] if c["cut_by"] is None]
        assert len(cut_k) == d["cut_by_top_k"] == v - 10 and len(kept) == d["kept"]
        assert d["kept"] + d["cut_by_top_k"] + d["cut_by_top_p"] == v
        assert all(c["p_filtered"] == 0 for c in d["top"] if c["cut_by"])
        # the kept characters are renormalised: p_filtered = p_temperature / (kept mass)
        mass = sum(c["p_temperature"] for c in kept)
        assert all(math.isclose(c["p_filtered"], c["p_temperature"] / mass, abs_tol=1e-5) for c in kept)
        # the sampled character is the first one generate writes with the same text, settings and seed
        gen = T.generate(bank, "O Romeo", 0.7, 10, 0.5, 1, 3)
        assert d["sampled"]["char"] == gen[key]
    # manual softmax at temperature 0.7 of the GPT's last logits over the whole text
    gpt = bank.get(TRANSFORMER)
    ids = torch.tensor([gpt.tokenizer.encode("O Romeo")])
    with torch.no_grad():
        z = gpt.model(ids).logits[0, -1].double()
    ref = torch.exp((z - z.max()) / 0.7)
    ref /= ref.sum()
    top = out["transformer"]["top"][0]
    assert math.isclose(top["p_temperature"], float(ref.max()), abs_tol=1e-5)
    assert top["char"] == gpt.tokenizer.itos[int(ref.argmax())]


@pytest.mark.parametrize("causal", [True, False])
def test_attention_equals_the_formula_on_the_models_own_weights(bank, causal):
    """softmax(q·kᵀ/√d + M) recomputed from the layer's input and its projection weights."""
    text, layer, head = "JULIET:\nO Romeo!", 2, 2
    out = T.attention(bank, text, layer, head, causal)
    gpt = bank.get(TRANSFORMER)
    model, cfg = gpt.model, gpt.config
    ids = torch.tensor([gpt.tokenizer.encode(text)])
    with torch.no_grad():
        x = model(ids, trace=True, causal=causal).trace.hidden_states[layer - 1]   # the layer's input
        block = model.layers[layer - 1]
        h = block.norm1(x) if cfg.norm_first else x
        mha, d = block.self_attn, cfg.n_embd // cfg.n_head
        sl = slice((head - 1) * d, head * d)
        q, k = mha.q_proj(h)[0, :, sl], mha.k_proj(h)[0, :, sl]
        scores = q @ k.T / math.sqrt(d)
        if causal:
            scores = scores.masked_fill(~torch.ones_like(scores, dtype=torch.bool).tril(), float("-inf"))
        ref = torch.softmax(scores, dim=-1)
    w = torch.tensor(out["weights"])
    assert out["chars"] == list(text) and w.shape == (len(text), len(text))
    assert (w - ref).abs().max() < 1e-4 + 1e-6                         # rounded to 4 decimals
    assert (out["layer"], out["head"], out["causal"]) == (layer, head, causal)
    assert torch.allclose(w.sum(-1), torch.ones(len(text)), atol=len(text) * 1e-4)


def test_normalize_date_is_the_decoders_output_with_its_cross_attention(bank):
    enc = bank.get(ENCDEC)
    out = T.normalize_date(bank, "3rd of March 1999", "beam", 3, 0.6, 0, 0)
    ref = decode_with_trace(enc.model, enc.tokenizer, "3rd of March 1999", "beam", beam_size=3, alpha=0.6)
    assert out["output"] == ref.output and out["output_tokens"] == ref.out_tokens
    assert [s["char"] for s in out["steps"]] == ref.out_tokens and len(out["beams"]) >= 1
    avg = torch.stack([a[0] for a in ref.trace.cross_attn]).mean((0, 1))        # layers and heads
    assert (torch.tensor(out["cross_attention"]["weights"]) - avg).abs().max() < 1e-4 + 1e-6
    one = T.normalize_date(bank, "3rd of March 1999", "greedy", layer=1, head=2)
    greedy = decode_with_trace(enc.model, enc.tokenizer, "3rd of March 1999", "greedy")
    w = torch.tensor(one["cross_attention"]["weights"])
    assert (w - greedy.trace.cross_attn[0][0, 1]).abs().max() < 1e-4 + 1e-6
    assert w.shape == (len(one["output_tokens"]), len(one["source_tokens"]))
    assert one["steps"][0]["looked_at"] == one["source_tokens"][int(w[0].argmax())]


def test_fill_blanks_is_bert_both_ways_causal_and_the_gpt(bank):
    text = ARGS["fill_blanks"]["text"]
    out = T.fill_blanks(bank, text, 3)
    bert, gpt = bank.get(BERT), bank.get(TRANSFORMER)
    both = fill_blanks(bert.model, bert.tokenizer, text, top_k=3)
    left = fill_blanks(bert.model, bert.tokenizer, text, top_k=3, causal=True)
    assert out["bert"]["filled"] == both.filled and out["bert_causal"]["filled"] == left.filled
    assert out["positions"] == [b.position for b in both.blanks] == [4, 14, 22]
    assert [[g["char"] for g in b] for b in out["bert"]["guesses"]] == [[c for c, _ in b.guesses] for b in both.blanks]
    g = gpt_fill_blanks(gpt.model, gpt.tokenizer, text, top_k=3)
    assert [x[0]["char"] for x in out["gpt"]["guesses"]] == [b.best for b in g]
    assert len(out["gpt"]["filled"]) == len(text) and "_" not in out["gpt"]["filled"]


@pytest.mark.parametrize("tool, args, says", [
    ("attention", dict(layer=9), "layer must be in 1…2"),
    ("attention", dict(head=0), "head must be in 1…2"),
    ("attention", dict(text=""), "text is empty"),
    ("attention", dict(text=None), "text must be text"),
    ("attention", dict(causal="yes"), "causal must be true or false"),
    ("attention", dict(models="words"), "models must be one of 'characters'; got 'words'"),
    ("generate", dict(models=None), "models must be one of 'characters'; got None"),
    ("generate", dict(temperature=float("nan")), "temperature must be in 0…100"),
    ("generate", dict(top_p=float("inf")), "top_p must be in 0…1"),
    ("generate", dict(max_new_tokens=0), "max_new_tokens must be in 1…200 "),
    ("generate", dict(max_new_tokens=201), "max_new_tokens must be in 1…200 (a whole number) (the most a tool call writes per model"),
    ("generate", dict(seed="x"), "seed must be"),
    ("next_char_distribution", dict(top_n=0), "top_n must be in 1…100"),
    ("normalize_date", dict(method="sample"), "method must be one of ['greedy', 'beam']"),
    ("normalize_date", dict(source="   "), "source is empty"),
    ("normalize_date", dict(beam_size=33), "beam_size must be in 1…32"),
    ("fill_blanks", dict(text="no blanks"), "text must contain at least one blank"),
    ("fill_blanks", dict(top_k=11), "top_k (guesses per blank) must be in 1…10"),
    ("fill_blanks", dict(text="_" * 200), "text must be at most 96 characters"),
    ("train_pair", dict(seconds=31), "seconds must be in 1…30"),
    ("train_pair", dict(text="too short"), "at least 200 are needed"),
    ("train_pair", dict(text="z" * 300), "one character ('z') repeated"),
    ("train_pair", dict(text=["a list"]), "text must be a string"),
])
def test_bad_values_raise_a_message_naming_the_argument(bank, tool, args, says):
    with pytest.raises(ValueError) as e:
        getattr(T, tool)(bank, **args)
    assert says in str(e.value)


def test_unknown_characters_are_replaced_and_said(bank):
    out = T.attention(bank, "Roméo ☃")
    assert out["chars"] == list("Romeo ?") and "replaced" in out["notes"][0]


def test_mcp_can_be_turned_off(monkeypatch):
    monkeypatch.delenv("SCRATCHFORMER_MCP", raising=False)
    assert ui.launch_kwargs()["mcp_server"] is True
    for off in ("0", "false", "OFF", "no"):
        monkeypatch.setenv("SCRATCHFORMER_MCP", off)
        assert ui.launch_kwargs()["mcp_server"] is False


# --------------------------------------------------------------------- through the running app

def test_the_tools_are_listed_with_descriptions_and_their_arguments(url):
    tools = {t.name: t for t in mcp(url, lambda s: s.list_tools()).tools}
    # only the tools: the page's events (figures for the page) are API endpoints, not MCP tools
    assert set(tools) == set(ARGS)
    for name, args in ARGS.items():
        t = tools[name]
        assert len(t.description) > 80
        props = t.inputSchema["properties"]
        assert list(props) == list(args)
        assert all(p.get("description") for p in props.values()), name
        assert "required" not in t.inputSchema          # every argument has a default
    assert tools["attention"].inputSchema["properties"]["layer"]["type"] == "integer"
    assert tools["attention"].inputSchema["properties"]["causal"]["type"] == "boolean"
    assert tools["generate"].inputSchema["properties"]["temperature"]["type"] == "number"


def test_each_tool_answers_the_same_through_mcp_and_gradio_client(url, client):
    calls = [(name, ARGS[name]) for name in SAME_EVERY_TIME]
    results = mcp_calls(url, calls)
    for (name, args), (is_error, text) in zip(calls, results):
        assert not is_error, text
        assert parsed(text) == parsed(client.predict(**args, api_name=f"/tool_{name}")), name


def test_train_pair_trains_both_models_and_returns_their_curves(url):
    [(is_error, text)] = mcp_calls(url, [("train_pair", ARGS["train_pair"])])
    assert not is_error, text
    out = parsed(text)
    assert out["corpus"] == "pasted text" and 1.5 < out["seconds"] <= 2.5
    for key in ("transformer", "lstm"):
        curve = out["curves"][key]
        assert curve[0]["step"] == 0 and curve[-1]["step"] == out["steps"][key] > 0
        assert out["final_loss"][key] == curve[-1]["loss"] < curve[0]["loss"]
        assert out["samples"][key] and 0.8 < out["params"]["transformer"] / out["params"]["lstm"] < 1.25


def test_generate_tool_writes_what_the_app_generate_endpoint_writes(url, client):
    a = ARGS["generate"]
    [(_, text)] = mcp_calls(url, [("generate", a)])
    app = client.predict(*[v for k, v in a.items() if k not in ("models", "model")], api_name="/generate")
    assert (parsed(text)["transformer"], parsed(text)["lstm"]) == (app[0], app[2])


def test_bad_values_through_mcp_name_the_argument_and_the_server_keeps_serving(url):
    calls = [("attention", dict(text="hi", layer=9)), ("generate", dict(top_p=2, max_new_tokens=2)),
             ("next_char_distribution", dict(text="")), ("fill_blanks", dict(text="no blanks")),
             ("normalize_date", dict(method="sample")),
             # a wrong JSON type is refused by the MCP SDK's own schema check, before the app runs
             ("attention", dict(text="hi", layer="two")), ("generate", dict(temperature=None)),
             ("attention", dict(text="hi"))]
    results = mcp_calls(url, calls)
    says = ["layer must be in 1…2", "top_p must be in 0…1", "text is empty", "at least one blank",
            "method must be one of"]
    for (is_error, text), expected in zip(results, says):
        assert is_error and expected in text, text
    assert results[5][0] and "'two' is not of type 'integer'" in results[5][1]
    assert results[6][0] and "None is not of type 'number'" in results[6][1]
    assert not results[-1][0] and parsed(results[-1][1])["chars"] == ["h", "i"]


@pytest.mark.parametrize("tool, args, says", [
    ("/tool_attention", dict(text="hi", layer="two"), "layer must be"),
    ("/tool_attention", dict(text=5), "text must be text"),
    ("/tool_generate", dict(temperature=None, max_new_tokens=2), "temperature must be in 0…100 (0 = greedy), got nothing"),
    ("/tool_generate", dict(top_k=True, max_new_tokens=2), "top_k must be in 0…100000 (a whole number)"),
    ("/tool_next_char_distribution", dict(top_n=1.5), "top_n must be in 1…100"),
])
def test_bad_values_through_gradio_client_name_the_argument(client, tool, args, says):
    with pytest.raises(AppError) as e:
        client.predict(**args, api_name=tool)
    assert says in str(e.value)


def test_the_language_model_tools_take_the_word_pair(tmp_path):
    """models="words": the word pair's Transformer and LSTM, their BPE tokens, the same as the library."""
    from app_checkpoints import make_word_checkpoints
    from scratchformer.app.bank import WORD_PAIR
    from scratchformer.inference.traced import run_traced
    bank = ModelBank.load(make_word_checkpoints(make_checkpoints(tmp_path)), device="cpu")
    words = bank.for_pair(WORD_PAIR)
    out = T.attention(bank, "JULIET:\nO Romeo, Romeo! wherefore", layer=1, head=1, models="words")
    gpt = words.get(TRANSFORMER)
    ids = gpt.tokenizer.encode("JULIET:\nO Romeo, Romeo! wherefore")
    assert out["chars"] == gpt.tokenizer.pieces(ids) and len(out["chars"]) < 30     # word pieces, not 32 characters
    expected = run_traced(gpt.model, gpt.tokenizer, ids).trace.self_attn[0][0, 0]
    assert torch.allclose(torch.tensor(out["weights"]), expected, atol=1e-4)
    gen = T.generate(bank, prompt="ROMEO:", max_new_tokens=5, temperature=0, models="words")
    again = T.generate(bank, prompt="ROMEO:", max_new_tokens=5, temperature=0, models="words")
    assert gen == again and gen["transformer"] != T.generate(bank, prompt="ROMEO:", max_new_tokens=5,
                                                             temperature=0)["transformer"]
    dist = T.next_char_distribution(bank, "O Romeo", models="words")
    assert dist["transformer"]["vocabulary"] == gpt.tokenizer.vocab_size


def test_the_language_model_tools_take_any_one_model_by_itself(tmp_path):
    """model="word-lstm" (or its name in the page): that model alone, in its role, equal to what the
    pair writes in that role; the other role is null; the names say which model wrote what."""
    from app_checkpoints import make_word_checkpoints
    bank = ModelBank.load(make_word_checkpoints(make_checkpoints(tmp_path)), device="cpu")
    args = dict(prompt="ROMEO:", max_new_tokens=6, temperature=0.9, seed=4)
    pair = T.generate(bank, models="words", **args)
    assert pair["names"] == {"transformer": "Transformer (words)", "lstm": "LSTM (words)"}
    alone = T.generate(bank, model="word-lstm", **args)
    assert alone["lstm"] == pair["lstm"] and alone["transformer"] is None
    assert alone["names"] == {"lstm": "LSTM (words)"}
    assert T.generate(bank, model="lstm (WORDS)", **args)["lstm"] == pair["lstm"]       # the page's name
    chars = T.generate(bank, model="gpt", **args)
    assert chars["transformer"] == T.generate(bank, **args)["transformer"] and chars["lstm"] is None
    dist = T.next_char_distribution(bank, "O Romeo", model="word-gpt")
    assert dist["lstm"] is None and dist["transformer"] == T.next_char_distribution(bank, "O Romeo", models="words")["transformer"]
    att = T.attention(bank, "O Romeo, Romeo", model="word-gpt")
    assert att["model"] == "Transformer (words)"
    assert att["weights"] == T.attention(bank, "O Romeo, Romeo", models="words")["weights"]
    with pytest.raises(ValueError, match="model must name a Transformer for attention"):
        T.attention(bank, "O Romeo", model="word-lstm")
    with pytest.raises(ValueError, match=r"model must be one of 'gpt', 'lstm', 'word-gpt', 'word-lstm' .*got 'gpt2'"):
        T.generate(bank, model="gpt2")          # not offered: no GPT-2 in this app
    with pytest.raises(ValueError, match="model must be one of"):
        T.generate(bank, model=["gpt"])
