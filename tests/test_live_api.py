"""Every endpoint × every numeric parameter × every kind of bad value, through gradio_client: each
ends in a message naming the setting and its range (never Gradio's generic error), and the server
keeps answering. Then checkpoints of the wrong kind: the app builds, serves, and says why."""
import json
import math
import re
import shutil
import urllib.request

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_checkpoints import CHARS, GPT_CONFIG, LSTM_CONFIG, make_checkpoints, serve
from scratchformer.checkpoint import save_checkpoint
from scratchformer.model.registry import build_model
from scratchformer.model.config import LSTMConfig, TransformerConfig
from scratchformer.tokenizers import CharTokenizer
from test_app_seq2seq import make_encoder_checkpoints
from scratchformer.app import blocks as ui
from scratchformer.app.inspect_tabs import DEFAULT_TEXT
from scratchformer.app.seq2seq_tabs import DEFAULT_BLANKS, DEFAULT_SOURCE

PAIR = "small (CPU-trained)"   # the page's choice of models: the last input of every language-model view
ATTN = ((DEFAULT_TEXT, True, 1, 1, False, PAIR), {2: "layer", 3: "head"})
DECODE = ((DEFAULT_SOURCE, "greedy", 3, 0.6, 1.0, 0, 1.0, 0, 1, 1, 1),
          {2: "beam_size", 3: "alpha", 4: "temperature", 5: "top_k", 6: "top_p", 7: "seed", 8: "layer",
           9: "head", 10: "step"})
# endpoint: (valid arguments, {index of a numeric argument: the name its message must use})
ENDPOINTS = {
    "/generate": (("ROMEO:\n", 0.8, 0, 0.95, 5, 0, 1, "small (CPU-trained)"),
                  {1: "temperature", 2: "top_k", 3: "top_p", 4: "max_new_tokens", 5: "seed", 6: "watch layer"}),
    "/why_token": (("Transformer", 3), {1: "step"}),
    "/why_attention": (("Transformer", 3, 1), {1: "step", 2: "watch layer"}),
    "/attention": ATTN, "/attention_view": ATTN, "/attention_head": ATTN,
    "/lstm_gates": ((DEFAULT_TEXT, 1, 4, PAIR), {1: "layer", 2: "units"}),
    "/seq2seq_decode": DECODE, "/seq2seq_view": DECODE,
    "/fill_in": ((DEFAULT_BLANKS, 3, False, 1, 1), {1: "top_k", 3: "layer", 4: "head"}),
    # the "Forward pass" tab
    "/inside_walkthrough": ((DEFAULT_TEXT, 12, 1, 1, 1.0, 0, 1.0, PAIR),
                            {1: "position", 2: "layer", 3: "head", 4: "temperature", 5: "top_k", 6: "top_p"}),
    "/inside_ablation": ((DEFAULT_TEXT, ["L1 H1"], [], "zero", 10, PAIR), {4: "continuation length"}),
    "/inside_lstm_step": ((DEFAULT_TEXT, 12, 1, 0, PAIR), {1: "position", 2: "layer", 3: "unit"}),
    "/inside_lstm_ablation": ((DEFAULT_TEXT, 1, "3", False, 10, PAIR), {1: "layer", 4: "continuation length"}),
    # the JSON tools (also served over MCP)
    "/tool_generate": (("ROMEO:\n", 0.8, 0, 0.95, 5, 0, "characters", ""),
                       {1: "temperature", 2: "top_k", 3: "top_p", 4: "max_new_tokens", 5: "seed"}),
    "/tool_next_char_distribution": (("O Romeo", 1.0, 0, 1.0, 5, 0, "characters", "lstm"),
                                     {1: "temperature", 2: "top_k", 3: "top_p", 4: "top_n", 5: "seed"}),
    "/tool_attention": (("To be", 1, 1, True, "characters", "gpt"), {1: "layer", 2: "head"}),
    "/tool_normalize_date": ((DEFAULT_SOURCE, "beam", 3, 0.6, 1, 1),
                             {2: "beam_size", 3: "alpha", 4: "layer", 5: "head"}),
    "/tool_fill_blanks": ((DEFAULT_BLANKS, 3), {1: "top_k"}),
}
BAD = [None, math.nan, math.inf, -math.inf, 1e300, 10**30, -7, -0.5, 2.5, "seven", True, [1]]
GENERIC = re.compile(r"has raised an exception|Something went wrong|verbose error", re.I)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    app = ui.build_app(make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("ckpts"))))
    app.arrival.payload()           # the default example generation (why_token replays it)
    yield app.demo
    app.demo.close()


@pytest.fixture(scope="module")
def url(demo):
    return serve(demo)


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def raw_call(url: str, api_name: str, args: list) -> None:
    """The API's HTTP protocol by hand, for values JSON has no name for (NaN, ±Infinity: Python's
    json writes them, as other clients may); AppError with the message when the call fails."""
    body = json.dumps({"data": args}).encode()              # allow_nan: NaN, Infinity, -Infinity
    req = urllib.request.Request(f"{url}gradio_api/call{api_name}", body, {"Content-Type": "application/json"})
    event_id = json.load(urllib.request.urlopen(req, timeout=30))["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call{api_name}/{event_id}", timeout=60).read().decode()
    events = re.findall(r"event: (\w+)\ndata: (.*)", stream)
    kind, data = events[-1]
    if kind == "error":
        raise AppError(json.loads(data) if data not in ("", "null") else "has raised an exception")


def test_every_endpoint_answers_its_valid_arguments(client):
    for api_name, (args, _) in ENDPOINTS.items():
        client.predict(*args, api_name=api_name)


def test_bad_values_for_every_numeric_parameter_get_a_message_naming_it(client, url):
    generic, unnamed, accepted, calls = [], [], [], 0
    for api_name, (args, params) in ENDPOINTS.items():
        for i, name in params.items():
            for bad in BAD:
                if isinstance(bad, float) and bad == 2.5 and name in ("temperature", "alpha"):
                    continue            # 2.5 is a valid temperature / length penalty
                call = list(args)
                call[i] = bad
                calls += 1
                try:
                    if isinstance(bad, float) and not math.isfinite(bad):
                        raw_call(url, api_name, call)
                    else:
                        client.predict(*call, api_name=api_name)
                    accepted.append((api_name, name, bad))
                except AppError as e:
                    msg = str(e)
                    if GENERIC.search(msg):
                        generic.append((api_name, name, bad, msg[:80]))
                    elif name not in msg:
                        unnamed.append((api_name, name, bad, msg[:120]))
    print(f"\n{calls} bad-value calls: {len(generic)} generic errors, {len(unnamed)} not naming the setting, "
          f"accepted (values in range): {sorted(set((a, n, repr(b)) for a, n, b in accepted))}\n"
          f"{len(accepted)} accepted")
    assert generic == []
    assert unnamed == []
    # the only values taken are valid ones: a huge temperature (≈ uniform) or top_k (off), an empty
    # watch layer (the last), a decoding step past the end (the last step is shown)
    def valid(api, name, bad):
        return ((name in ("temperature", "top_k") and isinstance(bad, (int, float)) and bad > 1e6)
                or (name == "watch layer" and bad is None) or (api.startswith("/seq2seq") and name == "step"))
    assert [a for a in accepted if not valid(*a)] == []
    # and the server still answers
    note, fig = client.predict("still here", api_name="/hidden_states")
    assert "hidden states" in fig["plot"]


# ------------------------------------------------------------------- checkpoints of the wrong kind

@pytest.fixture(scope="module")
def wrong_kinds(tmp_path_factory):
    """An LSTM where the GPT belongs, a GPT where the LSTM and the encoder-decoder belong."""
    folder = make_encoder_checkpoints(tmp_path_factory.mktemp("wrong"))
    tok = CharTokenizer(list(CHARS))
    gpt, lstm = build_model(TransformerConfig(**GPT_CONFIG)).eval(), build_model(LSTMConfig(**LSTM_CONFIG)).eval()
    for sub, model in (("gpt-shakespeare", lstm), ("lstm-shakespeare", gpt), ("seq2seq-dates", gpt)):
        shutil.rmtree(folder / sub, ignore_errors=True)
        save_checkpoint(folder / sub, model, tok, {})
    app = ui.build_app(folder)
    app.arrival.payload()
    yield folder, app, Client(serve(app.demo), verbose=False)
    app.demo.close()


def test_wrong_kind_checkpoints_are_refused_by_name_and_the_rest_is_served(wrong_kinds):
    folder, app, client = wrong_kinds
    bank = app.bank
    for name, sub, kind in (("Transformer", "gpt-shakespeare", "gpt"), ("LSTM", "lstm-shakespeare", "lstm"),
                            ("Encoder-decoder", "seq2seq-dates", "seq2seq")):
        err = bank.slots[name].error
        # named by its folder, never by the server's absolute path (a public page)
        assert f"checkpoint {sub} " in err and str(folder) not in err and repr(kind) in err
    assert bank.available("BERT")
    # the page says why, in the header and in each panel
    texts = json.dumps(app.demo.config, default=str)
    assert texts.count("unavailable") >= 4 and "must be a" in texts
    # every endpoint still answers: the ones of a missing model with its reason, the others normally
    with pytest.raises(AppError, match="gpt-shakespeare.*'gpt'"):
        client.predict(DEFAULT_TEXT, api_name="/hidden_states")
    note, table, filled, *_ = client.predict(DEFAULT_BLANKS, 3, False, 1, 1, api_name="/fill_in")
    assert "BERT" in table and "GPT checkpoint is not loaded" in note
    tables = client.predict(api_name="/embedding_tables")
    assert "gpt-shakespeare" in tables[0]["plot"] and "lstm-shakespeare" in tables[1]["plot"]
    with pytest.raises(AppError, match="no model could be loaded"):
        client.predict("ROMEO:", 0.8, 0, 0.95, 5, 0, api_name="/generate")
