"""A real browser switches the page's models from characters to words (the BPE pair) and finds word
tokens where characters were: on the attention heatmap's axes, in the tokenizer tab's chips, and on
the characters-vs-words tab. Tiny random-weight checkpoints (tests/app_checkpoints.py), a BPE of 320
tokens trained on the corpus's first 100,000 characters.

Skipped when /usr/bin/chromium is missing, unless $CI is set (see tests/test_browser.py).
"""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from app_checkpoints import make_checkpoints, make_word_checkpoints, serve, word_tokenizer  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402
from scratchformer.app.inspect_tabs import DEFAULT_TEXT  # noqa: E402
from scratchformer.tokenizers import display_token  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    folder = make_word_checkpoints(make_checkpoints(tmp_path_factory.mktemp("c")))
    demo = ui.build_demo(folder)
    yield serve(demo)
    demo.close()


def axis_ticks(page, elem_id: str) -> list[str]:
    """The tick labels plotly drew on the figure inside #elem_id (both axes)."""
    return page.evaluate("""id => Array.from(document.querySelectorAll(`#${id} .xtick text, #${id} .ytick text`),
                                             t => t.textContent)""", elem_id)


def test_switching_to_words_puts_word_tokens_on_the_attention_axes(url):
    tok = word_tokenizer()
    # the tokens of the attention tab's text that are longer than one character (␣Romeo, ␣the, …)
    words = {display_token(p) for p in tok.pieces(tok.encode(DEFAULT_TEXT)) if len(p) > 1}
    assert words, "the test BPE should merge some of the text"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("tab", name="Attention").click()
        page.wait_for_function("document.querySelectorAll('#attn-head-plot .ytick text').length > 0")
        chars = axis_ticks(page, "attn-head-plot")
        assert all(len(t) == 1 for t in chars), chars          # characters first
        page.locator("#pair").get_by_text("words", exact=False).click()
        # the figure is redrawn on the word pair's tokens
        page.wait_for_function("""words => Array.from(document.querySelectorAll('#attn-head-plot .ytick text'),
                                   t => t.textContent).some(t => words.includes(t))""", arg=sorted(words))
        ticks = axis_ticks(page, "attn-head-plot")
        assert set(ticks) & words and any(len(t) > 1 for t in ticks)
        # a tab hidden while the pair changed is drawn for the new pair when it is opened (its views
        # were not computed while hidden: scratchformer/app/view.py, before_js)
        page.get_by_role("tab", name="Embeddings").click()
        page.wait_for_function("""() => (document.querySelector('#emb-transformer .gtitle') || {}).textContent
                                   ?.includes('320 tokens')""")
        # the tokenizer tab shows both tokenizations, BPE chips included
        page.get_by_role("tab", name="Tokenizer").click()
        expect(page.get_by_text("BPE (320 tokens)").first).to_be_visible()
        # and the characters-vs-words tab its two models on one axis
        page.get_by_role("tab", name="Chars vs words").click()
        page.wait_for_function("document.querySelectorAll('#compare-plot .barlayer .point').length > 0")
        expect(page.locator("#compare-caption")).to_contain_text("bits per character")
        browser.close()
