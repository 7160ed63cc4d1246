"""Share and export in a real browser (Playwright + Debian's Chromium), as a person does it:

* set a few controls, press "Copy link", open the link in a fresh browser context → the same view
  (the same controls, the same heatmap numbers) and, for generation, the same text;
* a malformed link opens the page with a note saying what was ignored;
* every figure's toolbar downloads PNG (2× scale), SVG, and its numbers as CSV and JSON under a name
  that says what it is, and the numbers are the model's own attention weights.

(Skipped without /usr/bin/chromium unless $CI is set.)
"""
import csv
import io
import json
import os
import struct
from pathlib import Path

import pytest
import torch

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from app_checkpoints import make_checkpoints, serve  # noqa: E402
from test_app_seq2seq import make_encoder_checkpoints  # noqa: E402
from test_browser import ARGS  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402

expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    built = ui.build_app(make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("c"))))
    url = serve(built.demo)
    yield built, url
    built.demo.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


def fresh_page(browser, url: str) -> Page:
    """A new browser context (no cookies, no storage: as a person who was sent the link)."""
    context = browser.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return page


def slider_to(page: Page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def plot_json(page: Page, elem_id: str) -> dict:
    """What the figure's CSV/JSON buttons save (page.js's sfFigureData on the drawn figure)."""
    return page.evaluate("""id => window.sfFigureData(document.querySelector(`#${id} .js-plotly-plot`))""", elem_id)


def wait_title(page: Page, elem_id: str, text: str) -> None:
    page.wait_for_function("""([id, text]) => { const p = document.querySelector(`#${id} .js-plotly-plot`);
        return !!(p && p.layout && p.layout.title && String(p.layout.title.text).includes(text)); }""",
                           arg=[elem_id, text])


def copy_link(page: Page, tab: str) -> str:
    page.locator(f"#{tab}-copy-link").click()
    box = page.locator(f"#{tab}-link input, #{tab}-link textarea").first
    expect(box).to_have_value(__import__("re").compile(r"^http.*tab=" + tab))
    return box.input_value()


def test_an_attention_link_opens_the_same_view(app, browser):
    built, url = app
    page = fresh_page(browser, url)
    page.get_by_role("tab", name="Attention").click()
    wait_title(page, "attn-head-plot", "layer 2, head 1")
    page.locator("#attn-text textarea").fill("KING HENRY:\nOnce more unto the breach")
    slider_to(page, "attn-layer", 1)
    slider_to(page, "attn-head", 2)
    page.locator("#attn-causal input").uncheck()
    wait_title(page, "attn-head-plot", "layer 1, head 2 (causal mask OFF)")
    expect(page.locator("#attn-grid")).to_contain_text("causal mask OFF")
    link = copy_link(page, "attention")
    assert "layer=1" in link and "head=2" in link and "causal=0" in link and "KING+HENRY" in link
    assert page.url == link                      # the address bar holds the same link
    before = plot_json(page, "attn-head-plot")

    other = fresh_page(browser, link)
    wait_title(other, "attn-head-plot", "layer 1, head 2 (causal mask OFF)")
    expect(other.get_by_role("tab", name="Attention")).to_have_attribute("aria-selected", "true")
    expect(other.locator("#attn-text textarea")).to_have_value("KING HENRY:\nOnce more unto the breach")
    expect(other.locator("#attn-layer input[type=number]")).to_have_value("1")
    expect(other.locator("#attn-head input[type=number]")).to_have_value("2")
    expect(other.locator("#attn-causal input")).not_to_be_checked()
    after = plot_json(other, "attn-head-plot")
    assert after["traces"][0]["z"] == before["traces"][0]["z"]
    assert after["traces"][0]["x"][0] == "0 K"
    assert other.locator("#link-note").inner_text().strip() == ""     # nothing was ignored
    other.context.close()
    page.context.close()


def test_a_generate_link_writes_the_same_text(app, browser):
    built, url = app
    page = fresh_page(browser, url)
    expect(page.locator("#why-caption")).to_contain_text("step 200 of 200")   # the example is there
    page.locator("#prompt textarea").fill("QUEEN:\nAnd")
    slider_to(page, "temperature", 1.3)
    slider_to(page, "max-new", 25)
    page.locator("#seed input").fill("4242")
    page.locator("#generate-btn").click()
    expect(page.locator("#why-caption")).to_contain_text("step 25 of 25")
    text_t = page.locator("#out-transformer textarea").input_value()
    text_l = page.locator("#out-lstm textarea").input_value()
    assert len(text_t) == 25 and len(text_l) == 25
    slider_to(page, "why-step", 9)
    expect(page.locator("#why-caption")).to_contain_text("step 9 of 25")
    link = copy_link(page, "generate")
    assert "seed=4242" in link and "step=9" in link and "temperature=1.3" in link

    other = fresh_page(browser, link)
    expect(other.locator("#why-caption")).to_contain_text("step 9 of 25")
    expect(other.locator("#out-transformer textarea")).to_have_value(text_t)
    expect(other.locator("#out-lstm textarea")).to_have_value(text_l)
    expect(other.locator("#prompt textarea")).to_have_value("QUEEN:\nAnd")
    other.context.close()
    page.context.close()


def test_links_follow_the_controls_without_a_click(app, browser):
    built, url = app
    page = fresh_page(browser, url)
    expect(page.locator("#why-caption")).to_contain_text("step 200 of 200")
    assert "?" not in page.url                  # arriving does not write a link
    page.get_by_role("tab", name="Inside the LSTM").click()
    page.wait_for_function("() => location.search.includes('tab=lstm')")
    slider_to(page, "lstm-units", 5)
    page.wait_for_function("() => location.search.includes('units=5')")
    page.reload()                                # the URL now opens that view
    expect(page.get_by_role("tab", name="Inside the LSTM")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#lstm-units input[type=number]")).to_have_value("5")
    page.context.close()


def test_a_malformed_link_opens_the_page_with_a_note(app, browser):
    built, url = app
    page = fresh_page(browser, url + "?tab=attention&layer=99&head=1&bogus=%ZZ&causal=perhaps")
    note = page.locator("#link-note")
    expect(note).to_contain_text("layer must be in 1…2 (a whole number), got '99'")
    expect(note).to_contain_text("'bogus' is not a setting of the attention tab")
    expect(note).to_contain_text("causal must be 1 or 0")
    wait_title(page, "attn-head-plot", "layer 2, head 1 (causal mask on)")    # the defaults, working
    page.context.close()
    page = fresh_page(browser, url + "?tab=%3Cscript%3E&x=" + "y" * 30000)
    expect(page.locator("#link-note")).to_contain_text("is not a tab of this page")
    # the link's own events have run by now (they emptied every view of the first tab once: a
    # view-less link answered Gradio with nothing, which it sends as None to every output)
    page.wait_for_timeout(3000)
    expect(page.locator("#why-caption")).to_contain_text("step 200 of 200")
    assert page.evaluate("() => document.querySelector('#why-plot .js-plotly-plot')._fullData.length") > 0
    expect(page.locator("#out-transformer textarea")).not_to_have_value("")
    page.locator("#generate-btn").click()                                  # and the page still works
    expect(page.locator("#stats-transformer")).to_contain_text("200 tokens")
    page.context.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _download(page: Page, elem_id: str, title: str):
    plot = page.locator(f"#{elem_id} .js-plotly-plot")
    plot.hover()
    with page.expect_download() as info:
        page.locator(f'#{elem_id} .modebar-btn[data-title="{title}"]').click()
    d = info.value
    return d.suggested_filename, Path(d.path()).read_bytes()


def test_figures_export_png_svg_and_their_numbers(app, browser):
    built, url = app
    page = fresh_page(browser, url + "?tab=attention&text=To%20be%2C%20or%20not&layer=1&head=2")
    wait_title(page, "attn-head-plot", "layer 1, head 2 (causal mask on)")
    name, png = _download(page, "attn-head-plot", "Download plot as a PNG")
    assert name == "attention_L1H2_causal.png"
    width = page.evaluate("() => document.querySelector('#attn-head-plot .js-plotly-plot')._fullLayout.width")
    assert _png_size(png)[0] == 2 * width                      # 2× scale
    name, svg = _download(page, "attn-head-plot", "Download plot as SVG")
    assert name == "attention_L1H2_causal.svg" and svg.startswith(b"<svg")
    name, raw_csv = _download(page, "attn-head-plot", "Download the numbers as CSV")
    assert name == "attention_L1H2_causal.csv"
    name, raw_json = _download(page, "attn-head-plot", "Download the numbers as JSON")
    assert name == "attention_L1H2_causal.json"

    # the numbers are the model's own attention weights (layer 1, head 2, causal), with their characters
    loaded = built.bank.get("Transformer")
    text = "To be, or not"
    ids = torch.tensor([loaded.tokenizer.encode(text)])
    with torch.no_grad():
        weights = loaded.model(ids, causal=True, trace=True).trace.self_attn[0][0, 1].double()
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8"))))
    assert len(rows) == len(text) ** 2
    got = torch.zeros(len(text), len(text), dtype=torch.float64)
    for r in rows:
        q, k = int(r["y"].split(" ")[0]), int(r["x"].split(" ")[0])
        got[q, k] = float(r["z"])
        assert r["x"].split(" ", 1)[1] == {" ": "␣"}.get(text[k], text[k])
    assert torch.allclose(got, weights, atol=1e-6)
    data = json.loads(raw_json)
    assert data["figure"] == "attention_L1H2_causal"
    assert data["x_axis"] == "key (attended to)" and data["y_axis"] == "query (attending)"
    assert torch.allclose(torch.tensor(data["traces"][0]["z"], dtype=torch.float64), weights, atol=1e-6)

    # the why-this-token distribution: its bars are the step's probabilities after each filter
    page.get_by_role("tab", name="Generate").click()
    page.locator("#why-plot .js-plotly-plot").wait_for()
    name, raw = _download(page, "why-plot", "Download the numbers as JSON")
    assert name == "distribution_transformer_step200.json"
    assert any(t["type"] == "bar" for t in json.loads(raw)["traces"])
    page.context.close()
