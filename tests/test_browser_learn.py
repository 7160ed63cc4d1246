"""Watch it learn in a real browser (Playwright + Debian's Chromium), as a person uses it: open the tab,
see the last step, move the slider to the first step, and the caption, the samples and the marked
step follow; a link to a step opens on that step.

Tiny random models with snapshots written by the test (tests/test_learning.py). With
$SCRATCHFORMER_SCREENSHOTS set, the tab is saved there as learn.png. Skipped without
/usr/bin/chromium unless $CI is set.
"""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from app_checkpoints import make_checkpoints, serve  # noqa: E402
from test_browser import ARGS  # noqa: E402
from test_learning import STEPS, add_snapshots  # noqa: E402
from scratchformer.app import blocks as ui  # noqa: E402
from scratchformer.app.learn_tab import learning_history  # noqa: E402

expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = os.environ.get("SCRATCHFORMER_TEST_CHECKPOINTS")
    folder = Path(folder) if folder else add_snapshots(make_checkpoints(tmp_path_factory.mktemp("learn")))
    built = ui.build_app(folder)
    url = serve(built.demo)
    yield built, url
    built.demo.close()


def test_the_slider_moves_both_models_through_training(app):
    built, url = app
    from scratchformer.app.learn_tab import steps_of
    steps = [t for t, _ in steps_of(built.bank)]        # the character pair's (both models' steps are the same)
    history = {v.step: v for v in learning_history(built.bank.slots["Transformer"].folder)}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("tab", name="Watch it learn", exact=True).click()
        caption = page.locator("#learn-caption")
        expect(caption).to_contain_text(f"Step {steps[-1]:,} of {steps[-1]:,}")
        sample = page.locator("#learn-sample-transformer textarea")
        expect(sample).to_have_value(history[steps[-1]].sample)
        shots = os.environ.get("SCRATCHFORMER_SCREENSHOTS")
        if shots:
            page.wait_for_timeout(1500)
            page.screenshot(path=str(Path(shots) / "learn.png"), full_page=True)
        box = page.locator("#learn-step input[type=number]")        # the slider's number box
        box.fill("0")
        box.press("Enter")
        box.blur()
        expect(caption).to_contain_text(f"Step 0 of {steps[-1]:,} (snapshot 1 of {len(steps)})")
        expect(sample).to_have_value(history[0].sample)
        # the step is marked on the curves: the dashed line's label
        expect(page.locator("#learn-curves")).to_contain_text("step 0")
        # a link to a step opens on it
        page.goto(url + "?tab=learn&step=1")
        expect(page.locator("#learn-caption")).to_contain_text(f"Step {steps[1]:,} of {steps[-1]:,}")
        browser.close()
    assert steps == STEPS or os.environ.get("SCRATCHFORMER_TEST_CHECKPOINTS")
