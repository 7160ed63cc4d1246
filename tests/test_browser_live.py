"""The live page in a real browser: nothing empty on arrival, views follow typing with no click, and
the attention panel moves while the text streams. (Skipped without /usr/bin/chromium unless $CI.)"""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from app_checkpoints import make_checkpoints, serve  # noqa: E402
from test_app_seq2seq import make_encoder_checkpoints  # noqa: E402
from test_browser import ARGS, open_tab, plot_z  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402

expect.set_options(timeout=60_000)
TABS = {"Generate": ["watch-attn", "watch-dist", "why-plot", "why-attn"],
        "Attention": ["attn-grid", "attn-head-plot", "attn-avg-plot", "attn-diff-plot"],
        "Embeddings": ["emb-transformer", "emb-lstm", "pos-0", "pos-1", "hidden-plot"],
        "Inside the LSTM": ["lstm-plot"],
        "Encoder-decoder": ["s2s-grid", "s2s-cross", "s2s-enc", "s2s-dec"],
        "GPT vs BERT": ["bert-bars", "bert-attn", "gpt-attn"],
        "Models": ["curves"]}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    demo = ui.build_demo(make_encoder_checkpoints(make_checkpoints(tmp_path_factory.mktemp("c"))))
    url = serve(demo)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()
    demo.close()


def plotted(page: Page, elem_id: str) -> bool:
    return page.evaluate("""id => { const p = document.querySelector(`#${id} .js-plotly-plot`);
        return !!(p && p._fullData && p._fullData.length && p._fullData[0].type); }""", elem_id)


def test_every_tab_shows_its_example_without_a_click(page: Page):
    expect(page.locator("#out-transformer textarea")).not_to_have_value("")
    expect(page.locator("#why-caption")).to_contain_text("step 200 of 200")
    expect(page.locator("#watch-context")).to_contain_text("it saw")
    for tab, ids in TABS.items():
        open_tab(page, tab)
        for elem_id in ids:
            page.locator(f"#{elem_id} .js-plotly-plot").wait_for()
            assert plotted(page, elem_id), (tab, elem_id)
    open_tab(page, "Encoder-decoder")
    expect(page.locator("#s2s-summary")).to_contain_text("Output")


def test_typing_redraws_the_heatmap_with_no_click(page: Page):
    page.get_by_role("tab", name="Attention").click()
    page.locator("#attn-head-plot .js-plotly-plot").wait_for()
    box = page.locator("#attn-text textarea")
    box.fill("O Romeo, Romeo")                 # shorter than the tiny model's context
    page.wait_for_function("""() => { const el = document.querySelector('#attn-head-plot .js-plotly-plot');
        return el && el._fullData && el._fullData[0].z.length === 14; }""")
    before = plot_z(page, "attn-head-plot")
    box.press("End")
    box.press("!")
    page.wait_for_function(f"""() => {{ const el = document.querySelector('#attn-head-plot .js-plotly-plot');
        return el && el._fullData && el._fullData[0].z.length === {len(before) + 1}; }}""")
    box.press("Backspace")                     # deleting is an edit too
    page.wait_for_function(f"""() => {{ const el = document.querySelector('#attn-head-plot .js-plotly-plot');
        return el && el._fullData && el._fullData[0].z.length === {len(before)}; }}""")


def test_the_attention_panel_moves_while_the_text_streams(page: Page):
    page.get_by_role("tab", name="Generate").click()
    # the page has arrived (its example drawn): otherwise, run on its own, this test's stream coincides
    # with the browser loading plotly.js and drawing the page's first plots, which holds its main thread
    # for seconds, and the poll below sees one update at most
    expect(page.locator("#why-caption")).to_contain_text("step 200 of 200")
    page.wait_for_function("""() => { const p = document.querySelector('#watch-attn .js-plotly-plot');
        return !!(p && p._fullData && p._fullData.length); }""")
    box = page.locator("#max-new input[type=number]")
    box.fill("600")
    box.press("Enter")
    box.blur()
    # record, every 10 ms, which step the panel shows while the stats say "generating"
    page.evaluate("""() => { window.__seen = new Set(); window.__watch = setInterval(() => {
        const el = document.querySelector('#watch-attn .js-plotly-plot');
        const busy = document.querySelector('#stats-transformer').innerText.includes('generating');
        if (busy && el && el.layout && el.layout.title) window.__seen.add(el.layout.title.text.split(':')[0]);
    }, 10); }""")
    page.locator("#generate-btn").click()
    expect(page.locator("#stats-transformer")).to_contain_text("600 tokens ·")
    expect(page.locator("#stats-transformer")).not_to_contain_text("generating")
    seen = page.evaluate("() => { clearInterval(window.__watch); return Array.from(window.__seen); }")
    assert len(seen) >= 2, seen                # the panel moved with the text while it streamed (the page
    # updates every 40 ms; on a loaded 2-core machine the poll may catch only two of those updates)
    expect(page.locator("#watch-attn")).to_contain_text("step 600")
