"""A real browser (Playwright driving Debian's Chromium) uses the app as a person would.

It types a prompt, generates with both models, moves the "why this token" slider, toggles the causal
mask and checks the attention heatmap changes, and saves screenshots along the way.

* Skipped when /usr/bin/chromium is missing, unless $CI is set (then it must run; ``.ci/run``
  installs Chromium).
* By default the app serves tiny random-weight checkpoints and the screenshots go to a temporary
  folder. The README's screenshots come from the trained models:

      SCRATCHFORMER_TEST_CHECKPOINTS=checkpoints SCRATCHFORMER_SCREENSHOTS=docs/screenshots \\
          python -m pytest -q tests/test_browser.py
"""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium); "
                "set CI=true to make its absence a failure", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

from app_checkpoints import make_checkpoints, serve  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
N_TOKENS = 160
expect.set_options(timeout=60_000)   # assertions wait up to a minute (a busy CI machine), not 5 s


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    ckpts = os.environ.get("SCRATCHFORMER_TEST_CHECKPOINTS") or make_checkpoints(tmp_path_factory.mktemp("c"))
    demo = ui.build_demo(ckpts)
    yield serve(demo)
    demo.close()


@pytest.fixture(scope="module")
def page(url):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SCRATCHFORMER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plot_z(page: Page, elem_id: str) -> list:
    """The first trace's z of the plotly figure inside #elem_id, as nested lists (None for NaN).

    (``_fullData``: plotly's decoded copy; ``data`` may still hold the compact base64 arrays.)
    """
    return page.evaluate("""id => {
        const el = document.querySelector(`#${id} .js-plotly-plot`);
        if (!el || !el._fullData) return null;
        return Array.from(el._fullData[0].z, row => Array.from(row, v => Number.isNaN(v) ? null : v));
    }""", elem_id)


def set_slider(page: Page, elem_id: str, value: int) -> None:
    """Type a value into the slider's number box and leave it (Gradio fires .release then)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def open_tab(page: Page, name: str) -> None:
    """Click the tab ``name``, through the "More tabs" menu when the tab bar has no room for it (with
    the shipped checkpoints, the last tabs are there)."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).click()


def test_a_person_generates_compares_and_looks_inside(page: Page, shots: Path):
    # --- generate with both models
    page.locator("#prompt textarea").fill("JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n")
    set_slider(page, "max-new", N_TOKENS)
    set_slider(page, "temperature", 0.8)
    page.locator("#generate-btn").click()
    for name in ("transformer", "lstm"):
        expect(page.locator(f"#stats-{name}")).to_contain_text(f"{N_TOKENS} tokens ·")
        expect(page.locator(f"#stats-{name}")).to_contain_text("tokens/s")
        expect(page.locator(f"#stats-{name}")).not_to_contain_text("generating")
        assert len(page.locator(f"#out-{name} textarea").input_value()) == N_TOKENS
    expect(page.locator("#surprise")).to_contain_text("Disagreement")
    expect(page.locator("#why-caption")).to_contain_text(f"step {N_TOKENS} of {N_TOKENS}")
    page.locator("#why-plot .js-plotly-plot").wait_for()
    page.screenshot(path=shots / "generate.png", full_page=True)

    # --- move the "why this token" slider: the distribution of another step is replayed
    before = page.evaluate("() => document.querySelector('#why-plot .js-plotly-plot')._fullData[0].y.length")
    range_input = page.locator("#why-step input[type=range]")
    range_input.scroll_into_view_if_needed()
    box = range_input.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] / 2)  # press and release
    expect(page.locator("#why-caption")).not_to_contain_text(f"step {N_TOKENS} of")
    expect(page.locator("#why-caption")).to_contain_text(f"of {N_TOKENS}")
    assert before == 65                                      # the whole vocabulary is drawn
    page.locator("#why-plot").screenshot(path=shots / "why_this_token.png")

    # --- attention: the causal mask on, then off
    page.get_by_role("tab", name="Attention").click()
    page.locator("#attn-btn").click()
    page.locator("#attn-head-plot .js-plotly-plot").wait_for()
    page.wait_for_function("() => document.querySelector('#attn-compare')?.innerText.includes('bits/char')")
    on = plot_z(page, "attn-head-plot")
    n = len(on)
    assert n > 10 and all(on[i][j] == 0 for i in range(n) for j in range(i + 1, n))  # lower-triangular
    page.screenshot(path=shots / "attention.png", full_page=True)
    grid_on = page.locator("#attn-grid").screenshot()

    page.locator("#attn-causal input[type=checkbox]").uncheck()
    page.wait_for_function("""() => {
        const el = document.querySelector('#attn-head-plot .js-plotly-plot');
        return el && el.layout && el.layout.title.text.includes('OFF');
    }""")
    off = plot_z(page, "attn-head-plot")
    assert sum(off[i][j] for i in range(n) for j in range(i + 1, n)) > 0.5      # the future is seen
    assert page.locator("#attn-grid").screenshot() != grid_on

    # --- embeddings, the LSTM's gates and the models' records
    page.get_by_role("tab", name="Embeddings").click()
    page.locator("#hidden-btn").click()
    page.locator("#hidden-plot .js-plotly-plot").wait_for()
    page.locator("#emb-transformer .js-plotly-plot").wait_for()
    page.screenshot(path=shots / "embeddings.png", full_page=True)
    page.get_by_role("tab", name="Inside the LSTM").click()
    page.locator("#lstm-btn").click()
    page.locator("#lstm-plot .js-plotly-plot").wait_for()
    expect(page.locator("#lstm-units-text")).to_contain_text("unit")
    page.screenshot(path=shots / "lstm.png", full_page=True)
    open_tab(page, "Models")
    expect(page.locator("#models-table")).to_contain_text("validation loss")
    page.locator("#curves .js-plotly-plot").wait_for()
    page.screenshot(path=shots / "models.png", full_page=True)
