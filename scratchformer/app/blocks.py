"""The whole app: ``build_demo()`` lays out the tabs (one module per tab or group of tabs) and
``launch_kwargs()`` says how to serve it. ``app.py`` only calls these two.

Every callback is a plain function of plain values and the read-only
:class:`~scratchformer.app.bank.ModelBank`; tests call them directly. Adding a section to the app is
adding a ``build_*_tab(bank)`` function to :data:`TABS`.

Nothing a request computes is stored on shared objects: the steps of a generation go to a
``gr.State`` (one per browser session), randomness to a generator made from the request's seed.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from .arrival import ArrivalViews
from .bank import ModelBank, configure_torch
from .events import MODEL_CONCURRENCY, forget_session
from .generate_tab import build_generate_tab
from .inside_tab import build_inside_tab
from .inspect_tabs import build_attention_tab, build_embeddings_tab, build_lstm_tab, build_models_tab
from .links import SharedLinks
from .seq2seq_tabs import build_gpt_bert_tab, build_seq2seq_tab

CSS = """
.gradio-container {max-width: 1280px !important}
.stats {min-height: 2.2em}
.model-out textarea {font-family: ui-monospace, monospace !important; font-size: 14px !important}
.share-row {align-items: center}
.share-row textarea, .share-row input {font-family: ui-monospace, monospace !important; font-size: 12px !important}
"""
# links (window.sfLinks) and the figures' export buttons; see page.js
PAGE_JS = (Path(__file__).with_name("page.js")).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------- the app

# One function per tab, in the order shown. A new section = a new build_*_tab(bank) appended here.
TABS: list[Callable[[ModelBank], None]] = [build_generate_tab, build_attention_tab, build_embeddings_tab,
                                           build_lstm_tab, build_seq2seq_tab, build_gpt_bert_tab,
                                           build_models_tab]
TABS.insert(TABS.index(build_attention_tab) + 1, build_inside_tab)   # after Attention


def header(bank: ModelBank) -> str:
    lines = ["# scratchformer — a Transformer and an LSTM, written from scratch, side by side",
             "Both were trained on tiny Shakespeare to predict the next character. Type, generate, "
             "and look inside."]
    for name, slot in bank.slots.items():
        if slot.loaded is None:
            lines.append(f"\n⚠️ **{name} is unavailable.** {html.escape(slot.error or '')} "
                         "The rest of the app works without it.")
    return "\n".join(lines)


def build_demo(checkpoint_dir: str | Path | None = None, bank: Optional[ModelBank] = None) -> gr.Blocks:
    """The whole app. Models are loaded once here (from ``checkpoint_dir``, default
    $SCRATCHFORMER_CHECKPOINTS or checkpoints/) and shared read-only by every request."""
    configure_torch(MODEL_CONCURRENCY)
    bank = bank or ModelBank.load(checkpoint_dir)
    with gr.Blocks(title="scratchformer") as demo, ArrivalViews() as arrival, SharedLinks() as links:
        gr.Markdown(header(bank), elem_id="header")
        link_note = gr.Markdown(elem_id="link-note")
        with gr.Tabs() as tabs:
            for build_tab in TABS:
                build_tab(bank)
        defaults = arrival.attach(demo)      # every tab's default example, computed once
        links.attach(demo, tabs, link_note, after=defaults)   # then the page's own link, if it has one
        demo.unload(forget_session(demo))    # a closed page's session is dropped at once
    demo.bank = bank  # for tests and benchmarks; read-only
    demo.arrival = arrival
    demo.links = links
    return demo


def launch_kwargs() -> dict:
    """What ``demo.launch`` gets besides the address (Gradio 6 takes theme and css here)."""
    # state_session_capacity: at most this many sessions are kept (the oldest dropped first); a
    # session whose page was closed is dropped at once (forget_session), and API sessions' state
    # expires (gr.State time_to_live).
    # run_history=False: Gradio 6 otherwise saves every call's inputs and outputs in the browser's
    # localStorage, re-serialising its whole saved history (plots included, ~0.5 MB per attention
    # view) after each call: ~100 ms of the page's main thread per keystroke in the attention tab.
    return dict(theme=gr.themes.Soft(), css=CSS, head=f"<script>\n{PAGE_JS}\n</script>",
                footer_links=["api", "gradio"], state_session_capacity=1000, run_history=False)
