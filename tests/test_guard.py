"""What a public server refuses before the app runs (scratchformer/app/guard.py), through a real
server: uploads, oversized bodies (declared or chunked), MCP requests from another host or page, and
page events called by name over MCP."""
import json
import urllib.request

import pytest

from app_checkpoints import make_checkpoints, serve
from scratchformer.app import blocks as ui
from scratchformer.app.guard import MAX_BODY_BYTES

MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    demo = ui.build_demo(make_checkpoints(tmp_path_factory.mktemp("c")))
    yield demo, serve(demo).rstrip("/")
    demo.close()


@pytest.fixture(scope="module")
def url(served):
    return served[1]


def request(url, path, data=None, headers=None):
    r = urllib.request.Request(url + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=60) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def rpc(method, params, id_=1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}).encode()


def test_uploads_are_refused(url):
    status, body = request(url, "/gradio_api/upload", b"x" * 100, {"content-type": "application/octet-stream"})
    assert status == 403 and "no file uploads" in body


def test_the_deep_link_route_is_refused(url):
    """Gradio's deep-link route would write a file to the server's disk for any session named."""
    status, body = request(url, "/gradio_api/deep_link?session_hash=anyone")
    assert status == 404 and "no deep links" in body


def test_a_body_over_the_limit_is_refused_and_a_small_one_served(url):
    big = json.dumps({"data": ["x" * (MAX_BODY_BYTES + 10), 1, 1, True]}).encode()
    status, body = request(url, "/gradio_api/call/tool_attention", big, {"content-type": "application/json"})
    assert status == 413 and "at most" in body
    small = json.dumps({"data": ["hello", 1, 1, True]}).encode()
    status, body = request(url, "/gradio_api/call/tool_attention", small, {"content-type": "application/json"})
    assert status == 200 and "event_id" in body


def test_a_chunked_body_over_the_limit_is_refused(url):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 4096 + 2):
            yield b"x" * 4096
    r = urllib.request.Request(url + "/gradio_api/call/tool_attention", data=chunks(),
                               headers={"content-type": "application/json", "transfer-encoding": "chunked"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=60)
    assert e.value.code == 413


def test_mcp_answers_its_own_host_only(url):
    status, body = request(url, "/gradio_api/mcp/", rpc("tools/list", {}), MCP_HEADERS)
    assert status == 200 and '"generate"' in body
    status, body = request(url, "/gradio_api/mcp/", rpc("tools/list", {}), {**MCP_HEADERS, "origin": "http://evil.example"})
    assert status == 403 and "another site" in body
    status, body = request(url, "/gradio_api/mcp/", rpc("tools/list", {}), {**MCP_HEADERS, "host": "evil.example:7860"})
    assert status == 403 and "another host" in body


def test_page_events_cannot_be_called_over_mcp(url):
    status, body = request(url, "/gradio_api/mcp/", rpc("tools/call", {"name": "why", "arguments": {}}), MCP_HEADERS)
    assert status == 200 and "Unknown tool" in body
    status, body = request(url, "/gradio_api/mcp/", rpc("tools/list", {}), MCP_HEADERS)
    names = {t["name"] for t in json.loads(body.split("data: ", 1)[1].strip())["result"]["tools"]}
    assert names == {"generate", "next_char_distribution", "attention", "normalize_date", "fill_blanks", "train_pair"}


def test_gradio_does_not_summarise_its_events_after_each_one(served):
    """Gradio's monitoring summary (pandas over the events kept, 20-40 ms holding the GIL) is recomputed
    every 1,000 events over the last 1,000 (blocks.quiet_gradio_analytics), not after every event."""
    from gradio_client import Client
    demo, url = served
    client = Client(url + "/", verbose=False)
    for text in ("To be", "or not"):
        client.predict(text, False, 1, 1, True, api_name="/attention_view")
    queue = demo._queue
    assert queue.events_recorded >= 2 and queue.event_count_at_last_cache == 0     # not recomputed
    assert (queue.ANAYLTICS_CACHE_FREQUENCY, queue.ANALYTICS_MAX_EVENTS) == (1000, 1000)  # (Gradio's spelling)
