"""Hostile text in a real browser (issue 20): whatever a person types or a link carries is shown as
text, in every tab, never as Markdown, HTML or KaTeX.

Strings that would do harm if a view rendered them (HTML tags, a form with a password box, a
``<script>``, code-fence breakers followed by a Markdown heading, link, image, quote, list and table,
``</code></pre>``, KaTeX ``\\href`` and ``\\color``, HTML entities, Unicode direction controls, a
bare URL) go

* through every text box of every tab, typed into the real page, each followed by what runs its
  views (Generate, Shift+Enter, a button, the sub-tabs), and
* through links: every tab's link with every setting set to a hostile value, a link of hostile
  unknown keys (each twice: a repeated key has a note of its own), and hostile tab names;

and after each, once the views have caught up, the page is searched for anything a payload made:
an element with a ``pwn…`` id, any attribute pointing at evil.invalid (a link, an image…), a new
form, password box or frame, a heading, table header, quote, emphasis or list item holding a ``PWN``
marker, KaTeX drawn from a payload, a raw direction control (U+202A…U+202E, U+2066…U+2069) in the
page's text, a script that ran (``window.pwned``), and any request the browser made to evil.invalid.

The other half: the text must still be *shown*. Each payload starts with its own marker in capitals
(letters every model's vocabulary has); the test waits for it to appear as text in a view of the tab
(so it also knows the views were redrawn), and the link note must show every hostile key and refused
value as text (as typed, or as Python writes it: ``'\\u202e'``).

Every finding names the tab, the text box or link key, the payload and what appeared; the test
collects them all and reports them at once. (The MCP tools answer JSON to their clients: nothing of
theirs is drawn in the page, so they have nothing to check here.)

Skipped without /usr/bin/chromium unless $CI is set, like the other browser tests.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import quote, urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
if not CHROMIUM.exists() and not CI:
    pytest.skip("needs Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium); "
                "set CI=true to make its absence a failure", allow_module_level=True)
# the app's notes also go to Python's warnings (gr.Warning outside a request): dozens per link here
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

import gradio as gr  # noqa: E402
from playwright.sync_api import Page  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402


EVIL = "evil.invalid"
WAIT_MS = 30_000          # for a view to show a payload's marker
# for the progress shown over the views to clear, once the marker is shown (only late redraws are
# waited for). Not longer: in one full-suite run out of three, Gradio 6.31 left a view's progress
# shown for good after a tab switch (its timer frozen; the view drawn and right), and every later
# step then waited out this limit (30 s each took the test from 2 to 14-27 minutes).
IDLE_MS = 5_000

# Payloads for the text boxes, each led by its marker. At most 93 characters (the GPT-vs-BERT tab's
# test model reads 96, and the text gets " b_", a blank); what breaks a code fence comes within the
# first 64 (the GPT's window there).
PAYLOADS = {
    "HTML tags": 'PWNHTML <b id="pwn-b">b</b><img src="http://evil.invalid/x.png" id=pwn-img onerror=pwned=2>',
    "form and script": "PWNFORM <form id=pwn-form><input type=password></form><script id=pwn-js>pwned=1</script>",
    "fence, heading, link, list": "PWNFENCE\n```\n# PWNHEADING\n[pwnlink](http://evil.invalid/)\n- PWNLIST\n",
    "fence, image, quote, table": "PWNIMAGE\n```\n![pwnimg](http://evil.invalid/i.png)\n> PWNQUOTE\n\n| PWNTH |\n|-|\n",
    "closing tags": 'PWNCLOSE </code></pre><h1 id="pwn-h1">PWNH1</h1><pre><code>',
    "KaTeX": r"PWNKATEX $\href{http://evil.invalid}{pwnkatex}$ $$\color{red}{PWNTEX}$$ **PWNSTRONG**",
    "direction controls and entities":
        "PWNBIDI \u202eDEIRRAM\u202c \u2066PWNLRI\u2069 &lt;b id=pwn-ent&gt;PWNENT&lt;/b&gt;",
}

# Short payloads for link keys, refused values and tab names: a link note quotes each whole (repr,
# at most 40 characters).
SHORT = {
    "Markdown link": "[pwnlink](http://evil.invalid/)",
    "Markdown image": "![pwnimg](http://evil.invalid/i.png)",
    "HTML img": "<img src=//evil.invalid/x id=pwn-img>",
    "HTML bold": '<b id="pwn-b">PWNBOLD</b>',
    "script": "<script id=pwn-js>pwned=1</script>",
    "KaTeX href": r"$\href{//evil.invalid}{pwnkatex}$",
    "KaTeX color": r"$$\color{red}{PWNTEX}$$",
    "Markdown heading": "\n# PWNHEADING\n",
    "code fence": "```\n# PWNFENCE\n```",
    "closing tags": "</code></pre><h1 id=pwn-h1>PWN</h1>",
    "bare URL": "http://evil.invalid/PWNAUTO",
    "HTML entities": "&lt;b id=pwn-ent&gt;PWNENT&lt;/b&gt;",
    "right-to-left override": "\u202ePWNRLO\u202c",
    "left-to-right isolate": "\u2066PWNLRI\u2069",
}

# Everything a payload could have made; one line per finding. ``known``: the outerHTML of the forms,
# password boxes and frames the page had before any payload.
SCAN_JS = r"""(known) => {
    const found = [];
    const seen = window.__pwnSeen = window.__pwnSeen || new WeakSet();   // reported before: not again
    const text = (el) => (/^(TEXTAREA|INPUT)$/.test(el.tagName) ? el.value : el.textContent || "")
        .replace(/\s+/g, " ").trim().slice(0, 100);
    const where = (el) => {
        for (let e = el; e && e !== document.body; e = e.parentElement) {
            if (e.id && !/^pwn/i.test(e.id)) return "#" + e.id;
            if (e.matches && e.matches("[data-testid=toast-body]")) return "a toast";
        }
        return "the page";
    };
    const add = (what, el) => {
        if (seen.has(el)) return;
        found.push(`${what}: <${el.tagName.toLowerCase()}> in ${where(el)} `
                   + JSON.stringify(text(el) || el.outerHTML.slice(0, 100)));
        later.push(el);
    };
    const later = [];
    for (const el of document.querySelectorAll("[id^='pwn' i]")) add(`an element with id ${el.id}`, el);
    // plotly points its clip paths and fills at the page's own URL (which holds the link): no address
    const own = new RegExp("url\\(\\s*['\"]?" + location.origin.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
                           + "[^)]*\\)", "gi");
    for (const el of document.querySelectorAll("*")) {
        const tag = el.tagName.toLowerCase();
        if ((tag === "input" || tag === "textarea") && el.type !== "password") continue;
        for (const a of el.attributes) {
            if (/evil\.invalid/i.test(a.value.replace(own, "")))
                add(`${a.name}=${JSON.stringify(a.value.slice(0, 60))}`, el);
        }
    }
    for (const el of document.querySelectorAll("form, input[type=password], iframe, object, embed"))
        if (!known.includes(el.outerHTML.slice(0, 300))) add("a new form, password box or frame", el);
    for (const el of document.querySelectorAll("h1, h2, h3, h4, h5, h6, th, blockquote, strong, em, b, i, del"))
        if (/PWN/.test(el.textContent)) add("a Markdown/HTML element made from the text", el);
    for (const el of document.querySelectorAll("li"))
        if (/^\s*PWNLIST/.test(el.textContent)) add("a list item made from the text", el);
    for (const el of document.querySelectorAll(".katex-display, .katex:not(.katex-display .katex), .katex-error"))
        if (/pwn|evil/i.test(el.textContent + (el.getAttribute("title") || ""))) add("KaTeX drawn from the text", el);
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const m = n.nodeValue.match(/[\u202a-\u202e\u2066-\u2069]/);
        if (m && n.parentElement && !n.parentElement.closest("textarea, script, style"))
            add(`a raw U+${m[0].charCodeAt(0).toString(16).toUpperCase()} (direction control) in the text`,
                n.parentElement);
    }
    // an output text box (one a person cannot type in) shows its value as text too
    for (const el of document.querySelectorAll("textarea, input")) {
        const m = (el.value || "").match(/[\u202a-\u202e\u2066-\u2069]/);
        if (m && (el.disabled || el.readOnly) && el.offsetParent !== null)
            add(`a raw U+${m[0].charCodeAt(0).toString(16).toUpperCase()} (direction control) in an output `
                + "box's text", el);
    }
    if (window.pwned !== undefined) found.push(`a script from the text ran (window.pwned = ${window.pwned})`);
    window.pwned = undefined;
    later.forEach(el => seen.add(el));
    return found;
}"""

KNOWN_JS = """() => Array.from(document.querySelectorAll('form, input[type=password], iframe, object, embed'),
                               el => el.outerHTML.slice(0, 300))"""

# The text an element shows, with its text boxes' values and its figures' category labels ("12 P":
# position 12 shows P; a figure may thin out the tick labels it draws), without spaces or the signs
# for space and line break, so "PWNFORM" is found in "P W N F O R M".
ECHO_JS = r"""([sel, marker]) => {
    const el = document.querySelector(sel);
    if (!el) return false;
    let text = el.innerText || el.textContent || "";
    for (const field of el.querySelectorAll("textarea, input")) text += " " + field.value;
    for (const gd of el.querySelectorAll(".js-plotly-plot")) {
        for (const trace of gd._fullData || []) {
            for (const labels of [trace.x, trace.y]) {
                if (Array.isArray(labels) && labels.length && labels.every(v => /^\d+ ./su.test(String(v))))
                    text += " " + labels.map(v => String(v).replace(/^\d+ /, "")).join("");
            }
        }
    }
    return text.replace(/[\s␣⏎]/g, "").includes(marker);
}"""

TOAST_JS = r"""(marker) => Array.from(document.querySelectorAll('[data-testid=toast-body]'))
    .some(el => el.innerText.replace(/\s/g, "").includes(marker))"""

# no view on screen shows Gradio's progress (no event is still running for it)
IDLE_JS = r"""() => !Array.from(document.querySelectorAll('[data-testid=status-tracker]'))
    .some(el => !el.classList.contains('hide') && el.offsetParent !== null
                && /generating|processing|queue|\d+\.\d+\s*s/i.test(el.textContent))"""


def marker(payload: str) -> str:
    """The marker leading a payload (its first word)."""
    return payload.split()[0]


def last_word(text: str) -> str:
    """The last run of four or more letters of ``text`` (what a view of its end shows)."""
    return re.findall(r"[A-Za-z]{4,}", text)[-1]


def _signatures(payload: str) -> list[str]:
    """What of ``payload`` a finding may quote: its pwn ids and PWN words, its evil.invalid addresses
    (without the scheme), its direction controls (as "U+202E")."""
    words = re.findall(r"pwn[-\w]*|PWN\w*", payload, re.I)
    urls = [u.removeprefix("http:") for u in re.findall(r"(?:http:)?//evil\.invalid[^\s)\"'>]*", payload)]
    controls = [f"U+{ord(c):04X}" for c in payload if 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069]
    return words + urls + controls


def culprits(used: dict[str, str]) -> Callable[[str], str]:
    """For a finding: " [from …]", the labels of ``used`` (label → payload) whose payload it quotes."""
    def which(finding: str) -> str:
        bidi = "direction control" in finding
        hits = [label for label, payload in used.items()
                if any(re.search(re.escape(sig) + r"(?![\w./-])", finding) for sig in _signatures(payload)
                       if sig.startswith("U+") == bidi)]
        return f" [from {', '.join(hits) or '?'}]"
    return which


# -------------------------------------------------------------------------------- the text boxes

@dataclass
class Box:
    """A text box: its tab, how a payload is fitted to it, what runs its views after typing (nothing:
    typing does; "Shift+Enter"; or a button's selector), and where its views show the text."""

    tab: str                       # the tab's label
    tab_id: str                    # the tab's id in links
    elem_id: str
    fit: Callable[[str], str]
    echoes: tuple                  # selectors showing the text ("toast": a message)
    run: str = ""
    mark: Callable[[str], str] = marker
    subtabs: tuple = ()            # (sub-tab label, selector showing the text or None)
    inside: str = ""               # the sub-tab the box is in
    link_echo: Optional[str] = ""  # where a link's view shows the text ("": echoes[0]; None: no link text)
    then: tuple = ()               # after the echoes: (a button to click, a selector, the text it then shows)
    status: str = ""               # a selector whose text a failure quotes (what the tab said it was doing)


def same(p: str) -> str:
    return p


BOXES = [
    # two new tokens (set below): the why-this-token caption shows the last 40 characters of the prompt
    Box("Generate", "generate", "prompt", lambda p: "ROMEO:\n" + p, ("#why-caption", "#surprise"),
        run="#generate-btn", mark=last_word, link_echo="#surprise"),
    Box("Attention", "attention", "attn-text", same, ("#attn-compare",)),
    Box("Forward pass", "inside", "inside-text", same, ("#inside-attn",), run="Shift+Enter",
        subtabs=(("Logit lens", "#inside-lens-plot"), ("Switch parts off", "#inside-comparison"),
                 ("What each head does", None), ("LSTM step", "#inside-lstm-plot"),
                 ("Step through", "#inside-attn"))),
    # without digits the units are refused with a message that quotes the text
    Box("Forward pass", "inside", "inside-lstm-units", lambda p: re.sub(r"\d", "", p), ("toast",),
        run="#inside-lstm-btn", inside="LSTM step", link_echo=None),
    Box("Embeddings", "embeddings", "hidden-text", same, ("#hidden-plot",)),
    # the token box shows its last token's neighbours, the tokenizer its text as chips (a token each,
    # ids between): neither shows the text in one piece, so only the page's safety is checked there
    Box("Embeddings", "embeddings", "emb-token", same, (), link_echo=None),
    Box("Tokenizer", "tokenizer", "tok-text", same, (), link_echo=None),
    Box("Inside the LSTM", "lstm", "lstm-text", same, ("#lstm-units-text",)),
    Box("Encoder-decoder", "seq2seq", "s2s-source", lambda p: p[:40], ("#s2s-step-html",)),   # its model reads 40
    Box("GPT vs BERT", "gpt-vs-bert", "bert-text", lambda p: p + " b_", ("#bert-filled",)),
    # a pasted text, repeated past the 200 characters a training needs: the pair learns it, writes it
    # back from its first characters, and its attention's title quotes it; then stopped
    Box("Train live", "train", "live-text", lambda p: "\n".join([p] * (210 // len(p) + 1)),
        ("#live-sample-transformer", "#live-sample-lstm"), run="#live-train", link_echo=None,
        then=("#live-stop", "#live-status", "Stopped"), status="#live-status"),
]

# the payload each tab's link carries as its text (the known holes first)
LINK_TEXT = {"gpt-vs-bert": "fence, heading, link, list", "generate": "direction controls and entities",
             "attention": "HTML tags", "inside": "form and script", "embeddings": "closing tags", "lstm": "KaTeX",
             "seq2seq": "fence, image, quote, table", "tokenizer": "HTML tags"}


# --------------------------------------------------------------------------------------- fixtures

# the server and the browser: the same module fixtures as the share test
from test_browser import open_tab  # noqa: E402
from test_browser_share import app, browser  # noqa: E402,F401


class Watch:
    """One browser context and what went wrong in it: ``check(what)`` scans the page and files every new
    finding (and any request to evil.invalid since the last check) under ``what``."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page: Page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.url = url
        self.requests: list[str] = []
        self.context.on("request", self._request)
        self.failures: list[str] = []
        self.known: Optional[list] = None

    def _request(self, request) -> None:
        host = urlparse(request.url).hostname or ""
        if host == EVIL or host.endswith("." + EVIL):
            self.requests.append(request.url)

    def open(self, query: str = "") -> None:
        """Open the page (with ``query``) and wait until it has read its link (page.js)."""
        self.page.goto(self.url + query)
        self.page.wait_for_function("() => window.sfLinks && window.sfLinks.ready")
        if self.known is None:
            self.known = self.page.evaluate(KNOWN_JS)

    def tab(self, label: str) -> None:
        open_tab(self.page, label)

    def idle(self) -> None:
        """Wait while a view on screen shows Gradio's progress, then a moment more."""
        try:
            self.page.wait_for_function(IDLE_JS, timeout=IDLE_MS)
        except PlaywrightTimeout:
            pass
        self.page.wait_for_timeout(300)

    def check(self, what: str, culprits: Optional[Callable[[str], str]] = None) -> None:
        """File every new finding under ``what`` (``culprits(finding)``: which payloads it may come from)."""
        new = self.page.evaluate(SCAN_JS, self.known)        # each element is reported once
        new += [f"the browser asked {EVIL} for {u}" for u in self.requests]
        self.requests.clear()
        self.failures += [f"{what}: {f}" + (culprits(f) if culprits else "") for f in new]

    def shown(self, selector: str) -> str:
        """What ``selector`` shows now, for a failure's message (its first 160 characters)."""
        text = self.page.evaluate("s => { const el = document.querySelector(s); return el ? el.innerText : null; }",
                                  selector)
        return f"; {selector} showed " + (repr(text[:160]) if text is not None else "nothing (no such element)")

    def echo(self, what: str, selector: str, mark: str, status: str = "") -> bool:
        """Wait until ``selector`` shows ``mark`` as text; a failure (naming ``what``, quoting what
        ``selector`` and ``status`` show) when it never does."""
        js, arg = (TOAST_JS, mark) if selector == "toast" else (ECHO_JS, [selector, mark])
        try:
            self.page.wait_for_function(js, arg=arg, timeout=WAIT_MS)
            return True
        except PlaywrightTimeout:
            where = "a message" if selector == "toast" else selector
            said = self.page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=toast-text]'),
                                                          el => el.innerText)""")
            self.failures.append(f"{what}: {mark!r} never appeared as text in {where} (the view did not "
                                 "show the text, or was not redrawn)" + (f"; the page said {said}" if said else "")
                                 + ("" if selector == "toast" else self.shown(selector))
                                 + (self.shown(status) if status and status != selector else ""))
            return False

    def close_toasts(self) -> None:
        self.page.evaluate("() => document.querySelectorAll('[data-testid=toast-close]').forEach(b => b.click())")

    def close(self) -> None:
        self.context.close()


def report(failures: list[str]) -> str:
    return f"{len(failures)} finding(s):\n" + "\n".join(f"  - {f}" for f in failures)


def _slider(page: Page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    box.blur()


# ------------------------------------------------------------------------------------------ tests

def test_every_text_box_is_listed(app):
    """BOXES covers every visible text box that feeds an event (a new tab's box must be added)."""
    built, _ = app
    inputs = {c.elem_id for fn in built.demo.fns.values() for c in fn.inputs
              if isinstance(c, gr.Textbox) and c.visible is True}
    assert inputs == {b.elem_id for b in BOXES}
    assert {row.tab_id for row in built.links.rows} - {"models", "learn"} <= set(LINK_TEXT)   # no text to carry


def test_hostile_text_typed_into_every_box_stays_text(app, browser):
    built, url = app
    w = Watch(browser, url)
    page = w.page
    w.open()
    page.locator("#why-caption").get_by_text("step 200 of 200").wait_for()     # the first tab's example
    w.check("the page as it opens (no payload yet)")
    assert not w.failures, "the check flags the app's own page: " + report(w.failures)
    _slider(page, "max-new", 2)    # quick; and the why-this-token caption then shows the prompt's end

    for box in BOXES:
        w.tab(box.tab)
        if box.inside:
            w.tab(box.inside)
        field = page.locator(f"#{box.elem_id} textarea, #{box.elem_id} input").first
        for name, payload in PAYLOADS.items():
            what = f"tab {box.tab!r}, text box #{box.elem_id}, payload {name!r}"
            text = box.fit(payload)
            field.fill(text)
            if box.run == "Shift+Enter":
                field.press("Shift+Enter")
            elif box.run:
                page.locator(box.run).click()
            for selector in box.echoes:
                w.echo(what, selector, box.mark(text), box.status)
            if box.then:
                button, selector, said = box.then
                page.locator(button).click()
                w.echo(f"{what}, after {button}", selector, said, box.status)
            w.idle()
            w.check(what)
            for sub, selector in box.subtabs:
                w.tab(sub)
                if selector:
                    w.echo(f"{what}, sub-tab {sub!r}", selector, box.mark(text))
                w.idle()
                w.check(f"{what}, sub-tab {sub!r}")
            w.close_toasts()
    w.close()
    assert not w.failures, report(w.failures)


def _query(pairs) -> str:
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _shown(text: str, s: str) -> bool:
    """``s`` appears in ``text`` as typed or as Python writes it (repr, as the link notes quote it)."""
    return s in text or repr(s)[1:-1] in text


def test_hostile_links_stay_text(app, browser):
    built, url = app
    w = Watch(browser, url)
    page = w.page
    note = page.locator("#link-note")
    boxes = {}
    for b in BOXES:
        boxes.setdefault(b.tab_id, b)
    shorts = list(SHORT.items())

    # 1. every tab's link, every setting hostile: its text a payload (which its view must show), every
    #    other value a short payload (refused, and quoted in the note)
    for t, row in enumerate(built.links.rows):
        tab = row.tab_id
        pairs, used, refused = [("tab", tab)], {}, {}
        text = None
        for i, (setting, _) in enumerate(row.settings):
            if setting.kind == "text":
                name = LINK_TEXT.get(tab, list(PAYLOADS)[t % len(PAYLOADS)])
                value = text = boxes[tab].fit(PAYLOADS[name])
            else:
                name, value = shorts[(t * 3 + i) % len(shorts)]
                refused[setting.name] = (name, value)
            used[f"{setting.name}={name}"] = value
            pairs.append((setting.name, value))
        if not row.settings:
            continue
        what = f"link to tab {tab!r} with every setting hostile"
        w.open(_query(pairs))
        if refused:
            note.get_by_text("opened with changes").wait_for()
        box = boxes.get(tab)
        if text is not None and box.link_echo is not None:
            w.echo(f"{what} (the view of its text)", box.link_echo or box.echoes[0], box.mark(text))
        w.idle()
        w.check(what, culprits(used))
        shown = note.inner_text()
        for key, (name, value) in refused.items():
            if not _shown(shown, value):
                w.failures.append(f"{what}: the link note does not show the refused value of {key} "
                                  f"({name}: {value!r}) as text; it reads {shown[:300]!r}…")
        w.close_toasts()

    # 2. hostile unknown keys, each twice (a repeated key has a note of its own)
    what = "link with hostile unknown keys (each twice)"
    w.open(_query([("tab", "lstm")] + [(key, v) for key in SHORT.values() for v in ("1", "2")]))
    note.get_by_text("opened with changes").wait_for()
    page.locator("#lstm-units-text").wait_for()             # the linked tab's view (its default text)
    w.idle()
    w.check(what, culprits({f"key {name!r}": key for name, key in SHORT.items()}))
    shown = note.inner_text()
    for name, key in SHORT.items():
        if not _shown(shown, key):
            w.failures.append(f"{what}: the link note does not show the key {name!r} ({key!r}) as text")

    # 3. hostile tab names: the page's own link reader (page.js reads window.sfLinks.initialQuery when it
    #    clicks the hidden #sf-apply-link), run again on this page for each: what opening the link does
    for name, tab in SHORT.items():
        what = f"link with tab={tab!r} ({name})"
        before = note.inner_html()
        page.evaluate("""q => { window.sfLinks.initialQuery = q; document.getElementById('sf-apply-link').click(); }""",
                      _query([("tab", tab)]))
        try:
            page.wait_for_function("""([b]) => { const n = document.querySelector('#link-note');
                return n.innerHTML !== b && n.innerText.includes('is not a tab of this page'); }""",
                                   arg=[before], timeout=WAIT_MS)
        except PlaywrightTimeout:
            w.failures.append(f"{what}: the link note never said the tab is not one of this page")
            continue
        w.idle()
        w.check(what)
        if not _shown(note.inner_text(), tab):
            w.failures.append(f"{what}: the link note does not show the tab name as text; it reads "
                              f"{note.inner_text()[:300]!r}")
        w.close_toasts()
    w.close()
    assert not w.failures, report(w.failures)
