"""The app launched in-process on a free port and driven with gradio_client, as an API user would."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_checkpoints import make_checkpoints, serve
from scratchformer.app import blocks as ui  # noqa: E402

SETTINGS = dict(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=20)
PUBLIC = {"/generate", "/why_token", "/attention", "/attention_view", "/attention_head", "/embedding_tables",
          "/hidden_states", "/lstm_gates"}


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    demo = ui.build_demo(make_checkpoints(tmp_path_factory.mktemp("ckpts")))
    yield serve(demo)
    demo.close()


@pytest.fixture(scope="module")
def client(url):
    return Client(url, verbose=False)


def generate(client, prompt, seed):
    return client.predict(prompt, *SETTINGS.values(), seed, api_name="/generate")


def test_every_public_endpoint_is_listed(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert PUBLIC <= set(api["named_endpoints"])
    params = [p["parameter_name"] for p in api["named_endpoints"]["/generate"]["parameters"]]
    assert params == ["prompt", "temperature", "top_k", "top_p", "max_new_tokens", "seed", "watch_layer", "pair"]
    # the watch panel's layer (added for the live view) and the model pair have defaults: six-argument
    # calls still work
    assert all(p["parameter_has_default"] for p in api["named_endpoints"]["/generate"]["parameters"][-2:])


def test_generate_then_replay_a_step_in_the_same_session(client):
    out = generate(client, "ROMEO:\n", seed=1)
    t_text, t_stats, l_text, l_stats, surprise = out[:5]
    assert len(t_text) == len(l_text) == 20
    assert "tokens/s" in t_stats and "bits/char" in l_stats and "surprise-strip" in surprise
    plot, caption = client.predict("LSTM", 3, api_name="/why_token")
    assert "step 3 of 20" in caption and json.loads(plot["plot"])["data"][0]["type"] == "bar"


def test_generate_streams_token_by_token(client, monkeypatch):
    from scratchformer.app import generate_tab
    monkeypatch.setattr(generate_tab, "STREAM_INTERVAL_S", 0.0)   # tiny models: 20 tokens take < 40 ms
    job = client.submit("ROMEO:\n", *SETTINGS.values(), 2, api_name="/generate")
    lengths = [len(update[0]) for update in job]
    assert job.status().success
    assert len(lengths) >= 3 and lengths == sorted(lengths) and lengths[-1] == 20


def test_two_clients_with_different_seeds_at_once_each_get_their_own_reproducible_text(url):
    clients = [Client(url, verbose=False) for _ in range(2)]
    prompt = "JULIET:\n"
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda c_s: generate(c_s[0], prompt, c_s[1])[:3:2], zip(clients, (11, 12))))
    alone = [generate(clients[0], prompt, s)[:3:2] for s in (11, 12)]
    assert together == alone
    assert together[0] != together[1]


def test_attention_endpoints(client):
    text = "O Romeo, Romeo! wherefore art thou Romeo?"
    note, grid, head, avg, diff, compare = client.predict(text, True, 1, 2, False, api_name="/attention")
    assert "bits/char" in compare
    z = json.loads(head["plot"])["data"][0]["z"]
    assert "bdata" in z or len(z) == len(text)
    grid2, head2, avg2 = client.predict(text, False, 1, 2, True, api_name="/attention_view")
    assert head2["plot"] != head["plot"]                          # the mask and the first token changed
    head3, diff3 = client.predict(text, True, 2, 1, False, api_name="/attention_head")
    assert "layer 2, head 1" in head3["plot"]


def test_hidden_states_and_lstm_endpoints(client):
    tables = client.predict(api_name="/embedding_tables")
    assert len(tables) == 4 and "PCA" in tables[0]["plot"] and "positional" in tables[3]["plot"]
    note, fig = client.predict("Hark!", api_name="/hidden_states")
    assert "hidden states" in fig["plot"]
    note, fig, units = client.predict("\"Peace,\" said he.", 1, 3, api_name="/lstm_gates")
    assert units.count("unit ") == 3


@pytest.mark.parametrize("api_name,args,message", [
    # every value reaches the app's own checks, which name the setting and its range
    ("/generate", ("ROMEO:", -5.0, 0, 1.0, 10, 0), "temperature must be in 0…100"),
    ("/generate", ("ROMEO:", 1.0, 0, 7.0, 10, 0), "top_p must be in 0…1"),
    ("/generate", ("ROMEO:", 1.0, 0, 1.0, 10**7, 0), "max_new_tokens must be in 1…2000"),
    ("/generate", ("ROMEO:", 1.0, 0, 1.0, 10, -1), "seed must be in 0…"),
    ("/generate", ("ROMEO:", 1.0, 2.5, 1.0, 10, 0), "top_k must be in 0…100000 \\(a whole number\\)"),
    ("/attention", ("", True, 1, 1, False), "empty"),
    ("/attention", ("abc", True, 99, 1, False), "layer must be in 1…2"),
    ("/attention", ("abc", True, 1.5, 1, False), "layer must be in 1…2 \\(a whole number\\), got 1.5"),
    ("/lstm_gates", ("abc", 1, -4), "units must be in 1…16"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, api_name, args, message):
    with pytest.raises(AppError, match=message) as err:
        client.predict(*args, api_name=api_name)
    assert "Traceback" not in str(err.value)
    note, fig = client.predict("still here", api_name="/hidden_states")
    assert "hidden states" in fig["plot"]


def test_huge_and_emoji_text_is_cropped_and_replaced_with_a_note(client):
    note, *_ = client.predict("🎭 " + "x" * 100_000, True, 1, 1, False, api_name="/attention")
    assert "100,002 characters" in note and "🎭" in note
    out = generate(client, "x" * 100_000 + " 🎭", seed=0)
    assert "100,002" in out[5] and "🎭" in out[5] and len(out[0]) == 20
