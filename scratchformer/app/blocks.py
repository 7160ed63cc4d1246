"""The whole app: ``build_app()`` lays out the tabs (one module per tab or group of tabs) and
``launch_kwargs()`` says how to serve it. ``app.py`` only calls these two (and :meth:`App.start`).

Every callback is a plain function of plain values and the read-only
:class:`~scratchformer.app.bank.ModelBank`; tests call them directly. Adding a section to the app is
adding a ``build_*_tab(bank)`` function to :data:`TABS`.

Nothing a request computes is stored on shared objects: the steps of a generation go to a
``gr.State`` (one per browser session), randomness to a generator made from the request's seed.

Start-up: ``import torch`` takes about a second, as long as everything else between ``python app.py``
and the first page. So the page is laid out from the checkpoints' configs (:mod:`.bank`), the tab
modules import the inference code inside the callbacks that use it, and :mod:`scratchformer.views`
loads its modules on first use: building the app imports no torch (tests/test_ui.py checks it). The
weights are loaded after the server is up, with the default views; earlier requests wait for them.
"""
from __future__ import annotations

import gc
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import gradio as gr

from .arrival import ArrivalViews, on_arrival
from .bank import GPT2, GPT2_PAIR, PAIRS, SMALL_PAIR, TRANSFORMER, WORD_PAIR, ModelBank
from . import mcp_tools
from .events import GENERATE_CONCURRENCY, MODEL_CONCURRENCY, forget_session
from .guard import Guard, offered_tools_only
from .policy import md_text
from .generate_tab import build_generate_tab
from .inside_tab import build_inside_tab
from .compare_tab import build_compare_tab
from .embeddings_tab import build_embeddings_tab
from .inspect_tabs import build_attention_tab, build_lstm_tab, build_models_tab
from . import live_tab
from .learn_tab import build_learn_tab
from .live_tab import build_live_tab
from .tokenizer_tab import build_tokenizer_tab
from .links import SharedLinks
from .seq2seq_tabs import build_gpt_bert_tab, build_seq2seq_tab
from .zerogpu import gpu_task

CSS = """
.gradio-container {max-width: 1280px !important}
.stats {min-height: 2.2em}
.model-out textarea {font-family: ui-monospace, monospace !important; font-size: 14px !important}
.share-row {align-items: center}
.share-row textarea, .share-row input {font-family: ui-monospace, monospace !important; font-size: 12px !important}
"""
# links (window.sfLinks) and the figures' export buttons; see page.js
PAGE_JS = (Path(__file__).with_name("page.js")).read_text(encoding="utf-8")


def plotly_chunk() -> Optional[str]:
    """The path of the script file in which Gradio's page carries plotly.js (``assets/PlotlyPlot-….js``,
    its name hashed per Gradio release), for page.js to load early; None when this Gradio has none."""
    found = sorted((Path(gr.__file__).parent / "templates" / "frontend" / "assets").glob("PlotlyPlot-*.js"))
    return f"assets/{found[0].name}" if len(found) == 1 else None


def page_head() -> str:
    """The page's <head> additions: page.js, and the name of Gradio's plotly.js file for it."""
    chunk = plotly_chunk()
    name = f"<script>window.sfPlotlyChunk = {json.dumps(chunk)};</script>\n" if chunk else ""
    return f"{name}<script>\n{PAGE_JS}\n</script>"


# ----------------------------------------------------------------------------------------- the app

# One function per tab, in the order shown. A new section = a new build_*_tab(bank, pair) appended
# here; ``pair`` is the page's choice of models (a gr.Radio), which a tab of language models follows.
TABS: list[Callable[[ModelBank, gr.Radio], None]] = [build_generate_tab, build_attention_tab, build_embeddings_tab,
                                           build_lstm_tab, build_seq2seq_tab, build_gpt_bert_tab,
                                           build_models_tab]
TABS.insert(TABS.index(build_attention_tab) + 1, build_inside_tab)   # after Attention
TABS.insert(TABS.index(build_embeddings_tab) + 1, build_tokenizer_tab)   # after Embeddings
TABS.insert(TABS.index(build_tokenizer_tab) + 1, build_compare_tab)    # shown with the word pair only
TABS.insert(TABS.index(build_lstm_tab) + 1, build_learn_tab)          # after Inside the LSTM
TABS.insert(TABS.index(build_learn_tab) + 1, build_live_tab)          # after Watch it learn


def loaded_header(bank: ModelBank) -> str:
    """The header once the weights are loaded (it then names every model that failed)."""
    bank.load_models()
    return header(bank)


def header(bank: ModelBank) -> str:
    lines = ["# scratchformer — a Transformer and an LSTM, written from scratch, side by side",
             "Both were trained on tiny Shakespeare to predict the next character"
             + (", and a second pair to predict the next word piece (BPE token): choose the pair below"
                if WORD_PAIR in bank.pairs() else "") + ". Type, generate, and look inside."]
    if GPT2_PAIR in bank.pairs():
        slot = bank.slots[GPT2]
        lines.append(f"\nAlso **GPT-2** ({md_text(slot.origin)}: {slot.config.n_layer} layers × {slot.config.n_head} "
                     "heads, OpenAI's weights read into the same from-scratch code), next to the word LSTM. "
                     "Its weights load after the page" + (" (downloaded the first time)" if slot.hub_id else "")
                     + "; choosing it waits for them.")
    for name, slot in bank.slots.items():
        if slot.error:
            lines.append(f"\n⚠️ **{name} is unavailable.** {md_text(slot.error or '')} "
                         "The rest of the app works without it.")
    return "\n".join(lines)


def quiet_gradio_analytics() -> None:
    """Gradio recomputes a summary of its last 10,000 events with pandas after *every* event (for its
    monitoring dashboard, which this app does not open): 20-40 ms each time, holding Python's GIL, so
    no other request's next model operation can start meanwhile (each of the thousands of small
    operations of a forward pass waits for the GIL again). Under benchmarks/abuse.py it was the largest
    single holder of the GIL (py-spy --gil: 11% of samples), growing with the events kept. Here the
    summary is recomputed every 1,000 events over the last 1,000. Set before the queue is made (its
    environment variables are read then); an operator's own values win."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")


class NoConfigs(dict):
    """A session's component configs, kept by nothing (:func:`light_sessions`): Gradio asks whether
    it has one before making it (yes), updates the value in an empty one, and stores nothing."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> dict:
        return {}

    def __setitem__(self, key, value) -> None:
        pass


def light_sessions() -> None:
    """Gradio 6.31 makes, for every new session (each page, each API client), the config of every
    component of the page (``SessionState.config_values``): about 40 ms of the server's event loop
    for this page's components, during which no other request moves (32 visitors who arrive together:
    their 32 generations waited 1–1.5 s in line before their first byte, ``benchmarks/serving.py
    --server``), and most of a session's memory. Gradio uses those configs only for its deep-link
    route (``gr.DeepLinkButton``), which this app has not and which the Guard refuses; the rest of its
    code makes an entry the first time a component of the session changes (another ~1 ms of the event
    loop per component and session). So a session keeps none (:class:`NoConfigs`).
    tests/test_ui.py checks that a session made this way has what Gradio's own has, so a Gradio that
    changes ``SessionState`` fails there."""
    import copy
    from gradio import state_holder
    cls = state_holder.SessionState
    if getattr(cls, "gradio_init", None) is not None:
        return

    def __init__(self, blocks):
        self.blocks_config = copy.copy(blocks.default_config)
        self.config_values = NoConfigs()
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    cls.gradio_init, cls.__init__ = cls.__init__, __init__


@dataclass(frozen=True)
class App:
    """The built app: the page and what it is built on.

    demo     the page (a gr.Blocks): ``demo.queue(...)``, ``demo.launch(...)``
    bank     the models, shared read-only by every request (:class:`~.bank.ModelBank`)
    arrival  every tab's default example, computed once and sent to each new page (:mod:`.arrival`)
    links    the tabs' link settings and the reading of a page's link (:mod:`.links`)
    """

    demo: gr.Blocks
    bank: ModelBank
    arrival: ArrivalViews
    links: SharedLinks

    def start(self) -> None:
        """After launch: compute the default views (in the background), then start the Train live
        tab's fork server (:func:`.live_tab.warm_after`)."""
        self.arrival.start()
        live_tab.warm_after(self.arrival)
        threading.Thread(target=freeze_after, args=(self.arrival,), name="scratchformer-gc-freeze",
                         daemon=True).start()


def freeze_after(arrival: ArrivalViews) -> int:
    """Once the default views are computed (the weights loaded, torch, gradio and plotly imported:
    about 450,000 objects that live as long as the server), move every object Python's garbage
    collector tracks into its permanent generation (``gc.freeze()``). The collector's full passes
    then walk only what requests made since: measured during 32 generations at once, a full pass
    took 0.21 s (the GIL held, every request stopped) and all collections 6% of the server's time
    (benchmarks/serving.py --server). Frozen objects are never collected, which costs nothing for
    objects that live to the end anyway; it also keeps the Train live tab's forked children from
    copying pages the collector would touch. Returns how many objects were frozen."""
    arrival.wait()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def build_demo(checkpoint_dir: str | Path | None = None, bank: Optional[ModelBank] = None) -> gr.Blocks:
    """The page alone (:func:`build_app`'s ``demo``), for callers that only serve it."""
    return build_app(checkpoint_dir, bank).demo


def build_app(checkpoint_dir: str | Path | None = None, bank: Optional[ModelBank] = None) -> App:
    """The whole app, its models shared read-only by every request.

    Without ``bank``, the page is laid out from the checkpoints' configs alone (``checkpoint_dir``,
    default $SCRATCHFORMER_CHECKPOINTS or checkpoints/): torch is not imported and no weights are
    loaded here. They are loaded once, on first use: by the default views, which ``app.py`` starts
    computing right after the server is up (:meth:`App.start`), or by the first request, which waits
    for them (see :mod:`.bank`). The page is served about a second sooner (``import torch``)."""
    bank = bank or ModelBank.open(checkpoint_dir, concurrency=MODEL_CONCURRENCY)
    quiet_gradio_analytics()
    light_sessions()
    with gr.Blocks(title="scratchformer") as demo, ArrivalViews() as arrival, SharedLinks() as links:
        top = gr.Markdown(header(bank), elem_id="header")
        on_arrival([top], lambda: loaded_header(bank))      # weights that failed to load, if any
        link_note = gr.Markdown(elem_id="link-note")
        pair = pair_choice(bank)
        register_tools(bank)                 # before the tabs' events: the MCP tools take their own names
        with gr.Tabs() as tabs:
            for i, build_tab in enumerate(TABS):
                build_tab(bank, pair)
                if i == 0:
                    arrival.mark_first_screen()  # the header and the first tab: sent first
        defaults = arrival.attach(demo)      # every tab's default example, computed once
        links.attach(demo, tabs, link_note, after=defaults)   # then the page's own link, if it has one
        demo.unload(forget_session(demo, also=(live_tab.forget,)))   # a closed page's session is dropped at once
    return App(demo, bank, arrival, links)


def pair_label(bank: ModelBank, pair: str) -> str:
    """How the page names a pair: by its tokens ("characters (65)", "words: BPE, 2,048 tokens")."""
    if pair == SMALL_PAIR:
        name = "characters"
    elif pair == WORD_PAIR:
        name = "words"
    elif pair == GPT2_PAIR:
        name = "GPT-2"
    else:
        name = pair
    model = PAIRS[pair][TRANSFORMER]
    if not bank.offered(model):
        return name
    tok = bank.tokenizer(model)
    if pair == GPT2_PAIR:          # two vocabularies: GPT-2's own, the LSTM's 2,048
        return f"GPT-2 (BPE, {tok.vocab_size:,} tokens) + word LSTM"
    kind = "one token per character" if tok.unit == "character" else "BPE"
    return f"{name} ({kind}, {tok.vocab_size:,} tokens)"


def pair_choice(bank: ModelBank) -> gr.Radio:
    """The page's choice of language models, above the tabs: the character pair, the word pair, the
    large pair (those whose checkpoints are there). Every tab of language models follows it; hidden
    when there is only one pair."""
    pairs = bank.pairs()
    return gr.Radio([(pair_label(bank, p), p) for p in pairs], value=SMALL_PAIR,
                    label="Models: a Transformer and an LSTM trained on the same text, reading",
                    visible=len(pairs) > 1, elem_id="pair")


def register_tools(bank: ModelBank) -> None:
    """The JSON tools of :mod:`.mcp_tools` as API endpoints (``/tool_<name>``), which Gradio also
    serves as MCP tools (``<name>``) when the app is launched with ``mcp_server=True``. ``generate``
    is in the generate concurrency group, ``train_pair`` in the Train live tab's, the others in the live
    group, like the page's events; all but ``train_pair`` run under ``@spaces.GPU`` on a ZeroGPU Space."""
    for tool in mcp_tools.TOOLS:
        group, limit = ("generate", GENERATE_CONCURRENCY) if tool is mcp_tools.generate else ("live", MODEL_CONCURRENCY)
        fn = mcp_tools.bind(tool, bank)
        if tool is mcp_tools.train_pair:
            # the Train live tab's group (its own line waits inside), and no GPU slot: the pair trains
            # on the CPU in a child process, while a ZeroGPU slot would be held for its whole budget
            group, limit = "train", live_tab.RUNNING + live_tab.WAITING
        else:
            fn = gpu_task(fn)
        gr.api(fn, api_name=mcp_tools.api_name(tool), concurrency_id=group, concurrency_limit=limit)


def mcp_enabled() -> bool:
    """Whether ``python app.py`` also serves MCP: yes unless $SCRATCHFORMER_MCP is 0, false, no or off."""
    return os.environ.get("SCRATCHFORMER_MCP", "1").strip().lower() not in {"0", "false", "no", "off"}


# Gradio warns at launch that an MCP tool with a gr.State input (the page's why-this-token) sees only
# the State's default; the page's events are not MCP tools here (events.page_only), so it does not apply.
warnings.filterwarnings("ignore", message="This MCP server includes a tool that has a gr.State input")


def launch_kwargs() -> dict:
    """What ``demo.launch`` gets besides the address (Gradio 6 takes theme and css here)."""
    # state_session_capacity: at most this many sessions are kept (the oldest dropped first); a
    # session whose page was closed is dropped at once (forget_session), and API sessions' state
    # expires (gr.State time_to_live).
    # run_history=False: Gradio 6 otherwise saves every call's inputs and outputs in the browser's
    # localStorage, re-serialising its whole saved history (plots included, ~0.5 MB per attention
    # view) after each call: ~100 ms of the page's main thread per keystroke in the attention tab.
    # mcp_server: the Model Context Protocol at /gradio_api/mcp/ (streamable HTTP; SSE at
    # /gradio_api/mcp/sse), tools from mcp_tools; SCRATCHFORMER_MCP=0 turns it off (mcp_enabled).
    # head: page.js (links and the figures' export buttons).
    # app_kwargs: the Guard middleware (request bodies capped, no uploads, MCP only from this app's
    # own hosts) and a lifespan that leaves only the offered tools callable over MCP (guard.py);
    # max_file_size: uploads are refused by the Guard, and capped here too should a route bypass it.
    from starlette.middleware import Middleware
    return dict(theme=gr.themes.Soft(), css=CSS, head=page_head(),
                footer_links=["api", "gradio"], state_session_capacity=1000, run_history=False,
                mcp_server=mcp_enabled(), max_file_size="4kb",
                app_kwargs={"middleware": [Middleware(Guard)], "lifespan": offered_tools_only})
