"""Train live in a real browser (Playwright driving Debian's Chromium), as a person uses it: open the
tab, pick the copy task, press Train and watch the status, the curves and the Transformer's sample
come; press Stop, and the trained pair joins the page's choice of models; pick it, and the Attention
tab shows *its* heads (2 layers × 4 heads, where the page's own tiny Transformer has 2 × 2). A text
too short to learn is refused with a message, and nothing starts.

Tiny random checkpoints (tests/app_checkpoints.py) for the page's own pair, or the folder in
$SCRATCHFORMER_TEST_CHECKPOINTS. With
$SCRATCHFORMER_SCREENSHOTS set, the tab is saved there as train_live.png. Skipped without
/usr/bin/chromium unless $CI is set, like the other browser tests.
"""
import os
import re
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium); "
                "set CI=true to make its absence a failure", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from app_checkpoints import GPT_CONFIG, make_checkpoints, serve  # noqa: E402
from test_browser import ARGS, open_tab, set_slider  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402
from scratchformer.app import live_tab  # noqa: E402
from scratchformer.training.live_plan import MIN_TEXT, SIZES  # noqa: E402

expect.set_options(timeout=60_000)   # a busy CI machine; the waits that matter below set their own
SECONDS = 30
STOP_WITHIN_MS = 15_000
LIVE_LAYERS, LIVE_HEADS = SIZES["tiny"]["gpt"][:2]          # the tiny race's Transformer: 2 × 4
TRAINED = re.compile(r"^\s*trained live by you:")     # (a radio label's name may start with a space)

# the texts of Gradio's error toasts (its warnings, "toast-body warning", are notes, not failures)
ERRORS_JS = """() => Array.from(document.querySelectorAll('[data-testid=toast-body]'))
    .filter(el => el.classList.contains('error')).map(el => el.innerText)"""


def drawn(elem_id: str) -> str:
    """JS: whether #elem_id holds a plotly figure with at least one trace of data (x or z; not a
    message)."""
    return f"""() => {{ const p = document.querySelector('#{elem_id} .js-plotly-plot');
        const has = v => !!(v && v.length);
        return !!(p && p._fullData && p._fullData.some(t => t.type && (has(t.x) || has(t.z)))); }}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    # $SCRATCHFORMER_TEST_CHECKPOINTS (the shipped ones, for the README's picture), else tiny random ones
    ckpts = os.environ.get("SCRATCHFORMER_TEST_CHECKPOINTS") or make_checkpoints(tmp_path_factory.mktemp("c"))
    built = ui.build_app(ckpts)
    url = serve(built.demo)
    built.start()        # as app.py does at launch: the default views, then the trainings' fork server
    yield built.demo, url
    built.demo.close()


@pytest.fixture(scope="module")
def page(app):
    _, url = app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        expect(page.locator("#out-transformer textarea")).not_to_have_value("")   # the page has arrived
        open_tab(page, "Train live")
        expect(page.locator("#live-train")).to_be_visible()
        yield page
        browser.close()


def errors(page: Page) -> list[str]:
    """The error toasts shown."""
    return page.evaluate(ERRORS_JS)


def wait_until(condition, seconds: float = 5.0) -> None:
    """Wait for ``condition()`` on the server's side (the page may show a result a moment before the
    event's generator has finished)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def close_toasts(page: Page) -> None:
    page.evaluate("() => document.querySelectorAll('[data-testid=toast-close]').forEach(b => b.click())")


def test_a_pasted_text_too_short_is_refused_and_nothing_starts(page: Page):
    status = page.locator("#live-status [data-testid=markdown]")   # its text (not the error badge)
    before = status.inner_text()
    page.locator("#live-corpus").get_by_label("a text you paste", exact=True).check()
    page.locator("#live-text textarea").fill("abcdefghij")                      # 10 characters
    page.locator("#live-train").click()
    page.wait_for_function(f"""() => ({ERRORS_JS})().some(t => t.includes('at least {MIN_TEXT}'))""")
    assert any(f"at least {MIN_TEXT}" in t and "10 characters" in t for t in errors(page)), errors(page)
    page.wait_for_timeout(500)                   # had it started, its first "Starting…" would be shown by now
    assert status.inner_text() == before
    # a message only: no error mark on the views a training draws, nor on the page's choice of models
    marked = page.evaluate("""ids => ids.filter(id => { const el = document.getElementById(id);
                                                       return el && el.innerText.includes('Error'); })""",
                           ["live-status", "live-curves", "live-sample-transformer", "pair"])
    assert not marked, f"marked with an error: {marked}"
    assert not live_tab._RUNS and len(live_tab.QUEUE) == 0          # no training, none waiting
    assert not page.evaluate(drawn("live-curves"))
    expect(page.locator("#pair").get_by_label(TRAINED)).to_have_count(0)   # no pair was added
    close_toasts(page)
    page.locator("#live-text textarea").fill("")


def test_train_stop_and_look_at_the_trained_pair(page: Page):
    status = page.locator("#live-status [data-testid=markdown]")
    page.locator("#live-corpus").get_by_label("toy task: copy letters", exact=True).check()
    set_slider(page, "live-seconds", SECONDS)
    page.locator("#live-train").click()

    # it trains: the status counts the seconds and shows both losses; the curves and a sample come
    expect(status).to_contain_text(re.compile(rf"Training · \d+ s of {SECONDS} · Transformer: .*loss \d+\.\d+"))
    page.wait_for_function(drawn("live-curves"))
    sample = page.locator("#live-sample-transformer textarea")
    expect(sample).not_to_have_value("")
    assert "|" in sample.input_value()          # the prompt: the letters to copy, then "|"
    page.wait_for_function(drawn("live-attention"))
    assert not errors(page), errors(page)
    shots = os.environ.get("SCRATCHFORMER_SCREENSHOTS")
    if shots:       # for the picture: curves with some length to them (the test itself need not wait)
        expect(status).to_contain_text(re.compile(rf"Training · (1\d|[2-9]\d) s of {SECONDS}"))

    # Stop: it ends within seconds, keeps its models, and the pair joins the page's choice
    page.locator("#live-stop").click()
    expect(status).to_contain_text(re.compile(rf"^\s*Stopped · \d+ s of {SECONDS} · Transformer"),
                                   timeout=STOP_WITHIN_MS)
    expect(status).to_contain_text("trained live by you:")
    choice = page.locator("#pair").get_by_label(TRAINED)
    expect(choice).to_have_count(1)
    expect(page.locator("#pair")).to_be_visible()
    wait_until(lambda: not live_tab._RUNS and len(live_tab.QUEUE) == 0)    # the race is over, its line left
    if shots:
        page.wait_for_timeout(500)               # the last redraw of the plots
        page.screenshot(path=str(Path(shots) / "train_live.png"), full_page=True)

    # pick it: the Attention tab shows the trained Transformer's 2 × 4 heads, without an error
    choice.check()
    open_tab(page, "Attention")
    n_live = LIVE_LAYERS * LIVE_HEADS
    assert n_live != GPT_CONFIG["n_layer"] * GPT_CONFIG["n_head"]    # so the grid tells the pairs apart
    page.wait_for_function(f"""() => {{ const p = document.querySelector('#attn-grid .js-plotly-plot');
        return !!(p && p._fullData && p._fullData.length === {n_live}
                  && p._fullData.every(t => t.type === 'heatmap' && t.z && t.z.length)); }}""")
    page.wait_for_function(drawn("attn-head-plot"))
    expect(page.locator("#attn-head-plot")).to_contain_text("head")
    # the layer and head sliders fit the chosen pair
    expect(page.locator("#attn-layer input[type=range]")).to_have_attribute("max", str(LIVE_LAYERS))
    expect(page.locator("#attn-head input[type=range]")).to_have_attribute("max", str(LIVE_HEADS))
    assert not errors(page), errors(page)
