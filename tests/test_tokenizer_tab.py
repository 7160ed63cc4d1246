"""The Tokenizer tab: its callbacks called directly (no server) on tiny checkpoints with the character
pair and the word (BPE) pair. Every number on the page is recomputed here from the tokenizer itself."""
import html
import re
from pathlib import Path

import gradio as gr
import pytest

from app_checkpoints import make_checkpoints, make_word_checkpoints
from scratchformer.app import tokenizer_tab as T
from scratchformer.app.arrival import ArrivalViews
from scratchformer.app.bank import PAIRS, TRANSFORMER, WORD_PAIR, ModelBank
from scratchformer.app.links import SharedLinks
from scratchformer.tokenizers import BPETokenizer, CharTokenizer
from scratchformer.views import tokens as V

HOSTILE = '<img src=x onerror=alert(1)> </div><script>alert(2)</script> "q" \'a\' &amp; \u202egpj.exe'


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpts")
    make_checkpoints(folder)
    make_word_checkpoints(folder)
    return folder


@pytest.fixture(scope="module")
def bank(folder) -> ModelBank:
    return ModelBank.load(folder)


@pytest.fixture(scope="module")
def char_bank(tmp_path_factory) -> ModelBank:
    return ModelBank.open(make_checkpoints(tmp_path_factory.mktemp("chars")))


@pytest.fixture(scope="module")
def bpe(bank) -> BPETokenizer:
    tok = bank.tokenizer(PAIRS[WORD_PAIR][TRANSFORMER])
    assert isinstance(tok, BPETokenizer)
    return tok


# ------------------------------------------------------------------------------ reading the HTML back

def counts(panel: str) -> tuple[int, int, str]:
    """(tokens, characters, characters per token) as the panel states them."""
    n = re.search(r'class="sf-count">([\d,]+)<', panel).group(1)
    c = re.search(r'class="sf-chars">([\d,]+)<', panel).group(1)
    per = re.search(r'class="sf-per">([^<]+)<', panel).group(1)
    return int(n.replace(",", "")), int(c.replace(",", "")), per


CHIP = re.compile(r'<span class="sf-k sf-k\d( sf-merging)?" title="([^"]*)"><span>(.*?)</span>(?:<small>(\d+)</small>)?</span>')


def chips(fragment: str) -> list[tuple[str, int | None, str, bool]]:
    """Every chip of ``fragment``: (its text, its id, its tooltip, outlined as merging)."""
    return [(html.unescape(text), None if not i else int(i), html.unescape(tip), bool(merging))
            for merging, tip, text, i in CHIP.findall(fragment)]


def no_markup_from(fragment: str) -> None:
    """What a person typed came out as text only: no tag, no attribute, no direction override."""
    assert "<img" not in fragment
    assert "<script" not in fragment
    assert "\u202e" not in fragment
    assert re.search(r"<(?!/?(span|small|b|div|br|style|table|tr|td|th)\b)", fragment) is None


# ------------------------------------------------------------------------------------ which tokenizers

def test_offers_each_pair_tokenizer_by_what_it_is(bank, char_bank, bpe):
    choices = T.tokenizer_choices(bank)
    assert [c.name for c in choices] == ["characters (65)", f"BPE ({bpe.vocab_size:,} tokens)"]
    assert [c.bpe for c in choices] == [False, True]
    assert choices[1].get() is bpe and isinstance(choices[0].get(), CharTokenizer)
    assert [c.name for c in T.tokenizer_choices(char_bank)] == ["characters (65)"]


def test_gpt2_files_in_the_checkpoint_folder_are_offered_too(tmp_path, bpe):
    make_checkpoints(tmp_path)
    bpe.save_gpt2_files(tmp_path / T.GPT2_FOLDER)
    bank = ModelBank.open(tmp_path)
    choices = T.tokenizer_choices(bank)
    assert [c.name for c in choices] == ["characters (65)", "GPT-2's BPE"]
    notes, _, panel = T.tokenize(bank, "O Romeo, Romeo!")
    assert f"BPE ({bpe.vocab_size:,} tokens)" in panel
    assert counts(panel)[0] == len(bpe.encode("O Romeo, Romeo!"))
    assert step_rows(T.bpe_merges(bank, " Romeo")) and table_rows(T.vocabulary_search(bank, "th"))
    # broken files: that panel says why, the others still show
    (tmp_path / T.GPT2_FOLDER / "merges.txt").write_text("#version: 0.2\nnot a merge line at all\n")
    T.read_gpt2.cache_clear()
    _, chars, broken = T.tokenize(bank, "O Romeo")
    assert counts(chars)[0] == 7 and "merges.txt" in broken and "sf-count" not in broken
    T.read_gpt2.cache_clear()


# --------------------------------------------------------------------------------------------- tokens

@pytest.mark.parametrize("text", ["JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?", "a", "  \n\n  x",
                                  "naïve café — “quoted” 😀 日本", HOSTILE])
def test_counts_and_chips_are_the_tokenizers_own(bank, text):
    notes, *panels = T.tokenize(bank, text)
    assert notes == ""
    assert len(panels) == len(T.tokenizer_choices(bank))
    for choice, panel in zip(T.tokenizer_choices(bank), panels):
        tok = choice.get()
        ids = tok.encode(text)
        n, c, per = counts(panel)
        assert (n, c, per) == (len(ids), len(text), f"{len(text) / len(ids):.2f}")
        shown = chips(panel)
        assert [i for _, i, _, _ in shown] == ids
        assert [t for t, _, _, _ in shown] == [V.visible(tok.token_text(i)) for i in ids]
        # the tooltip: the id and the token's bytes
        for (_, i, tip, _) in shown:
            raw = tok.token_bytes(i) if isinstance(tok, BPETokenizer) else tok.token_text(i).encode()
            assert tip == f"id {i} · {len(raw)} byte{'' if len(raw) == 1 else 's'}: {V.byte_hex(raw)}"


def test_chips_escape_hostile_text(bank):
    notes, *panels = T.tokenize(bank, HOSTILE)
    for panel in panels:
        no_markup_from(panel)
    chars, words = panels
    # shown as text: '<' and 'img' are tokens; the override's three bytes are three byte tokens
    assert "<span>&lt;</span>" in words and "<span>\\xe2</span>" in words
    # the character model replaced what it cannot read (the override, '<'…), and says so, escaped
    assert "replaced by &#x27;?&#x27;" in chars and "\\u202e" in chars


def test_a_line_break_in_the_text_breaks_the_row_of_chips(bank):
    _, chars, _ = T.tokenize(bank, "ab\ncd")
    assert "⏎" in chars and "<small>0</small></span><br>" in chars      # "\n" is id 0 among the 65


def test_long_text_is_cropped_before_it_is_encoded_and_the_note_says_so(bank, monkeypatch):
    long = "To be, or not to be: " * 500
    seen = []
    original = CharTokenizer.encode_with_report
    monkeypatch.setattr(CharTokenizer, "encode_with_report", lambda self, t: seen.append(len(t)) or original(self, t))
    notes, chars, words = T.tokenize(bank, long)
    assert seen == [T.MAX_TOKENIZED_CHARS]
    assert f"{len(long):,} characters" in notes and f"first {T.MAX_TOKENIZED_CHARS:,}" in notes
    assert notes.notes                                         # shown as a toast too
    assert counts(chars)[:2] == (T.MAX_TOKENIZED_CHARS, T.MAX_TOKENIZED_CHARS)
    assert len(chips(chars)) == T.MAX_CHIPS


def test_chips_beyond_the_limit_are_counted_not_drawn(bank, monkeypatch):
    monkeypatch.setattr(T, "MAX_CHIPS", 10)
    _, chars, _ = T.tokenize(bank, "abcdefghijklmnopqrstuvwxyz")
    assert counts(chars)[0] == 26 and len(chips(chars)) == 10 and "the first 10 of the 26 tokens" in chars


def test_empty_and_wrong_text(bank):
    notes, *panels = T.tokenize(bank, "")
    assert all(counts(p)[0] == 0 and "type something" in p for p in panels)
    assert T.tokenize(bank, None)[1:] == T.tokenize(bank, "")[1:]
    with pytest.raises(ValueError, match="text must be text"):
        T.tokenize(bank, 42)


# --------------------------------------------------------------------------------------------- merges

def step_rows(fragment: str) -> list[str]:
    return fragment.split('class="sf-step"')[1:]


@pytest.mark.parametrize("word", [" Romeo", " the", "thee", " wherefore", "é", " 😀"])
def test_merge_steps_are_the_tokenizers_own(bank, bpe, word):
    page = T.bpe_merges(bank, word)
    steps = bpe.merge_steps(word)
    rows = step_rows(page)
    assert len(rows) == len(steps)
    for k, (row, (tokens, rank)) in enumerate(zip(rows, steps)):
        shown = chips(row)
        assert [t for t, _, _, _ in shown] == [V.visible(t) for t in tokens]
        if rank is None:
            assert "done" in row and k == len(steps) - 1
            assert [i for _, i, _, _ in shown] == bpe.encode(word)        # the last row is what encode gives
            continue
        assert f"#{rank:,}</b>" in row
        a, b = bpe.merges[rank]
        merging = [j for j, c in enumerate(shown) if c[3]]
        assert merging and len(merging) % 2 == 0
        for j in merging[::2]:                                             # each outlined pair is (a, b)
            assert shown[j][1] == bpe.id_of[a] and shown[j + 1][1] == bpe.id_of[b]
        assert len(steps[k + 1][0]) == len(tokens) - len(merging) // 2     # and the next row has them merged


def test_a_word_of_several_pieces_is_merged_piece_by_piece(bank, bpe):
    word = " Romeo, thee!"
    page = T.bpe_merges(bank, word)
    pieces = bpe.split_pieces(word)
    assert len(pieces) > 1 and "never merges across them" in page
    assert len(re.findall(r"piece \d+ of", page)) == len(pieces)
    rows = step_rows(page)
    finals = [chips(r) for r in rows if "done" in r]
    assert [i for row in finals for _, i, _, _ in row] == bpe.encode(word)
    assert len(rows) == sum(len(bpe.merge_steps(p)) for p in pieces)


def test_the_word_is_capped_and_escaped(bank, bpe):
    page = T.bpe_merges(bank, "x" * 200)
    assert "200 bytes" in page and f"first {T.MAX_WORD_BYTES}" in page
    assert sum(len(c[0]) for c in chips(step_rows(page)[0])) == T.MAX_WORD_BYTES
    page = T.bpe_merges(bank, "😀" * 40)                        # 4 bytes a character: 16 whole ones
    assert "160 bytes" in page
    first = chips(step_rows(page)[0])
    assert len(first) == T.MAX_WORD_BYTES and first[0][2] == f"id {bpe.id_of[bytes([0xF0])]} · 1 byte: f0"
    no_markup_from(T.bpe_merges(bank, "<img src=x onerror=alert(1)>"))
    no_markup_from(T.bpe_merges(bank, "</div><script>"))
    assert "U+202E" in T.bpe_merges(bank, "a\u202eb c")              # quoted in a title: made visible
    assert "Type a word" in T.bpe_merges(bank, "")
    with pytest.raises(ValueError, match="word must be text"):
        T.bpe_merges(bank, ["x"])
    with pytest.raises(ValueError, match=r"bpe must be one of BPE \(320 tokens\)"):
        T.bpe_merges(bank, " Romeo", "GPT-5")


# --------------------------------------------------------------------------------------------- search

def table_rows(fragment: str) -> list[str]:
    return fragment.split("<tr>")[2:]


def test_search_finds_the_tokens_that_contain_the_text(bank, bpe):
    page = T.vocabulary_search(bank, "th")
    expected = [i for i in range(bpe.vocab_size) if "th" in bpe.token_text(i).lower()]
    rows = table_rows(page)
    assert f"{len(expected)} token" in page and len(rows) == len(expected) > 0
    assert sorted(chips(r)[0][1] for r in rows) == expected
    for row in rows:
        token, left, right = chips(row)
        rank = int(re.search(r"#([\d,]+)</b>", row).group(1))
        a, b = bpe.merges[rank]
        assert bpe.token_bytes(token[1]) == a + b                        # the merge that made it
        assert (left[0], right[0]) == (V.visible(bpe.token_text(bpe.id_of[a])), V.visible(bpe.token_text(bpe.id_of[b])))
        assert rank == min(r for r, m in enumerate(bpe.merges) if m[0] + m[1] == a + b)


def test_search_puts_the_exact_token_first_and_reads_visible_spaces(bank, bpe):
    page = T.vocabulary_search(bank, "␣the")
    first = chips(table_rows(page)[0])[0]
    assert first[1] == bpe.id_of[b" the"]
    assert T.vocabulary_search(bank, " the") == page


def test_search_shows_at_most_the_limit_and_says_how_many_matched(bank, bpe):
    n_merged = len(bpe.merges)
    assert n_merged > T.MAX_MATCHES
    page = T.vocabulary_search(bank, "")                         # empty: the tokens made by merges
    assert len(table_rows(page)) == T.MAX_MATCHES
    assert f"{n_merged} tokens made by merges; the first {T.MAX_MATCHES} are shown" in page
    page = T.vocabulary_search(bank, "e")
    total = sum("e" in t.lower() for t in bpe.texts)
    assert len(table_rows(page)) == min(total, T.MAX_MATCHES) and f"{total} tokens contain" in page
    bytes_row = chips(table_rows(T.vocabulary_search(bank, "Q"))[0])
    assert "0x51" in table_rows(T.vocabulary_search(bank, "Q"))[0] and bytes_row[0][1] == ord("Q")


def test_search_is_capped_and_escaped(bank):
    page = T.vocabulary_search(bank, "a" * 500)
    assert "500 characters" in page and "0 tokens contain" in page
    for q in (HOSTILE, "<img src=x onerror=alert(1)>", "</div><script>"):
        no_markup_from(T.vocabulary_search(bank, q))
    with pytest.raises(ValueError, match="search must be text"):
        T.vocabulary_search(bank, 3.5)


# ------------------------------------------------------------------------------------ no BPE in the app

def test_without_a_bpe_the_merges_and_search_say_so(char_bank):
    assert "None of this app's models reads BPE" in html.unescape(T.bpe_merges(char_bank, " Romeo"))
    assert "None of this app's models reads BPE" in html.unescape(T.vocabulary_search(char_bank, "th"))
    notes, chars = T.tokenize(char_bank, "O Romeo")
    assert counts(chars)[0] == 7


# ------------------------------------------------------------------------------------------- the tab

def build(bank):
    with gr.Blocks() as demo, ArrivalViews() as arrival, SharedLinks() as links:
        with gr.Tabs():
            T.build_tokenizer_tab(bank, None)
    return demo, arrival, links


@pytest.mark.parametrize("which", ["bank", "char_bank"])
def test_the_tab_exposes_its_api_and_opens_on_its_defaults(which, request):
    bank = request.getfixturevalue(which)
    demo, arrival, links = build(bank)
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert {"tokenize", "bpe_merges", "vocabulary_search"} <= public
    (outputs, default), = arrival.entries
    values = default()
    assert tuple(values) == T.tokenizer_views(bank, T.DEFAULT_TEXT, T.DEFAULT_WORD, T.DEFAULT_QUERY, None)
    assert len(outputs) == len(values) == 1 + len(T.tokenizer_choices(bank)) + 2
    row, = links.rows
    assert row.tab_id == "tokenizer" and row.names == ["text", "word", "search"]


def test_the_events_call_the_callbacks_as_gradio_does(bank, bpe):
    demo, _, _ = build(bank)
    fns = {fn.api_name: fn.fn for fn in demo.fns.values()}
    notes, chars, words = fns["tokenize"]("O Romeo")
    assert counts(words)[0] == len(bpe.encode("O Romeo"))
    assert fns["bpe_merges"](" Romeo", "BPE (320 tokens)") == T.bpe_merges(bank, " Romeo")
    assert fns["vocabulary_search"]("th", None) == T.vocabulary_search(bank, "th")
    with pytest.raises(gr.Error, match="word must be text"):
        fns["bpe_merges"](7, None)


# -------------------------------------------------------------------------------------- the pure views

def test_visible_shows_what_draws_nothing():
    assert V.visible(" a\n\t") == "␣a⏎⇥"
    assert V.visible("\u200b\u00a0\ufeff\u202e") == "U+200BU+00A0U+FEFFU+202E"
    assert V.prose("two words\n<b>") == "two words⏎&lt;b&gt;"


def test_chips_need_one_text_per_id():
    with pytest.raises(ValueError, match="2 texts for 3 ids"):
        V.token_chips_html(["a", "b"], [1, 2, 3])
    html_ = V.token_chips_html(["a", "b", "c"], [1, 2, 3])
    assert [c[1] for c in chips(html_)] == [1, 2, 3]
    classes = re.findall(r'class="sf-k (sf-k\d)"', html_)
    assert len(set(classes)) == 3                              # neighbours never share a colour
