"""A real browser opens "Forward pass", moves the position, switches a head off, and looks
at every view of the tab (screenshots along the way).

Like tests/test_browser.py: skipped without /usr/bin/chromium unless $CI is set; tiny random
checkpoints by default. The README's screenshots come from the trained models:

    SCRATCHFORMER_TEST_CHECKPOINTS=checkpoints SCRATCHFORMER_SCREENSHOTS=docs/screenshots \\
        python -m pytest -q tests/test_browser_inside.py
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
expect.set_options(timeout=60_000)


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


def set_slider(page: Page, elem_id: str, value: int) -> None:
    """Type a value into the slider's number box and leave it (Gradio fires .release then)."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


def test_a_person_steps_through_the_model_and_switches_a_head_off(page: Page, shots: Path):
    # --- open the tab: the walkthrough of the default position is drawn without a click
    page.get_by_role("tab", name="Forward pass").click()
    formulas = page.locator("#inside-formulas")
    expect(formulas).to_contain_text("Position 12")
    expect(formulas).to_contain_text("units fire")
    for plot in ("inside-vectors", "inside-attn", "inside-ffn", "inside-output"):
        page.locator(f"#{plot} .js-plotly-plot").wait_for()
    expect(page.locator("#inside-diagram")).to_contain_text("block 1: attention")
    keys_before = page.evaluate("() => document.querySelector('#inside-attn .js-plotly-plot')._fullData[0].x.length")
    assert keys_before == 13                                   # positions 0…12 are visible to position 12
    page.screenshot(path=shots / "inside_step.png", full_page=True)

    # --- move the position: every stage follows
    set_slider(page, "inside-position", 30)
    expect(formulas).to_contain_text("Position 30")
    page.wait_for_function(
        "() => document.querySelector('#inside-attn .js-plotly-plot')?._fullData[0].x.length === 31")

    # --- switch a head off: the comparison with the intact model appears
    page.get_by_role("tab", name="Switch parts off").click()
    comparison = page.locator("#inside-comparison")
    expect(comparison).to_contain_text("Switched off: nothing")
    page.locator("#inside-heads-off").get_by_label("L1 H1").check()
    expect(comparison).to_contain_text("Switched off: heads L1H1 (zero)")
    expect(comparison).to_contain_text("Greedy continuation")
    page.locator("#inside-ablate-plot .js-plotly-plot").wait_for()
    page.locator("#inside-worth-btn").click()
    page.locator("#inside-worth-plot .js-plotly-plot").wait_for()
    page.screenshot(path=shots / "inside_ablation.png", full_page=True)

    # --- the logit lens, the heads' descriptions, the LSTM unit
    page.get_by_role("tab", name="Logit lens").click()
    page.locator("#inside-lens-plot .js-plotly-plot").wait_for()
    expect(page.locator("#inside-lens-caption")).to_contain_text("final LayerNorm is applied")
    page.screenshot(path=shots / "inside_logit_lens.png", full_page=True)
    page.get_by_role("tab", name="What each head does").click()
    expect(page.locator("#inside-heads-table")).to_contain_text("L1 H1")
    page.locator("#inside-heads-grid .js-plotly-plot").wait_for()
    page.screenshot(path=shots / "inside_heads.png", full_page=True)
    page.get_by_role("tab", name="LSTM step").click()
    expect(page.locator("#inside-lstm-step")).to_contain_text("unit 0, step 12")
    page.locator("#inside-lstm-units input, #inside-lstm-units textarea").first.fill("0, 1, 2")
    page.locator("#inside-lstm-btn").click()
    expect(page.locator("#inside-lstm-comparison")).to_contain_text("Switched off: units L2:0, L2:1, L2:2")
    page.screenshot(path=shots / "inside_lstm.png", full_page=True)
