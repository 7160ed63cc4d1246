"""The character tokenizer: round trips, the unknown-character policy, specials, serialisation."""
import json
from pathlib import Path

import pytest

from scratchformer.tokenizers import CharTokenizer

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tinyshakespeare.txt"


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.from_text(CORPUS.read_text(encoding="utf-8"))


def test_corpus_vocabulary_and_round_trip(tok):
    assert tok.vocab_size == 65
    text = "".join(tok.chars)
    ids = tok.encode(text)
    assert ids == list(range(65))
    assert tok.decode(ids) == text
    passage = CORPUS.read_text(encoding="utf-8")[:2000]
    assert tok.decode(tok.encode(passage)) == passage
    assert tok.encode_with_report(passage)[1] == []


def test_empty_string(tok):
    assert tok.encode("") == []
    assert tok.encode_with_report("") == ([], [])
    assert tok.decode([]) == ""


def test_unknown_characters_become_unk_and_are_reported(tok):
    q = tok.stoi["?"]
    assert tok.unk_id == q  # the corpus has '?', so it is the stand-in
    ids, unknown = tok.encode_with_report("Straße 中文 😀!")
    assert len(ids) == len("Straße 中文 😀!")
    assert ids[4] == q and ids[7] == q and ids[8] == q and ids[10] == q
    assert tok.decode(ids) == "Stra?e ?? ?!"
    assert unknown == ["ß", "中", "文", "😀"]  # distinct, in order of appearance, as typed
    ids2, unknown2 = tok.encode_with_report("ßßß")
    assert ids2 == [q, q, q] and unknown2 == ["ß"]


def test_typographic_characters_and_accents_fold_to_ascii(tok):
    ids, unknown = tok.encode_with_report("\u2018Tis na\u00efve \u2014 caf\u00e9\u2019s r\u00f4le\u2026")
    assert tok.decode(ids) == "'Tis naive - cafe's role..."
    assert unknown == []
    assert tok.decode(tok.encode("a\r\nb\tc\u00a0d")) == "a\nb c d"
    assert tok.decode(tok.encode("e\u0301")) == "e"  # a combining accent on its own disappears
    # a double quote folds to '"', which this corpus lacks: it becomes '?' and is reported as typed
    ids, unknown = tok.encode_with_report("\u201cHo\u201d")
    assert tok.decode(ids) == "?Ho?" and unknown == ["\u201c", "\u201d"]


def test_vocabulary_characters_are_not_folded():
    tok = CharTokenizer.from_text("caf\u00e9 na\u00efve\t\u2019")
    text = "\u00e9\t\u2019 caf"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode_with_report(text)[1] == []


def test_decode_out_of_range_raises(tok):
    for bad in (65, -1, 10_000):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([0, bad])


def test_specials_are_never_produced_from_text_and_can_be_skipped():
    tok = CharTokenizer.from_text("ab<>padsk", specials=["<pad>", "<bos>", "<unk>"])
    assert tok.vocab_size == len(set("ab<>padsk")) + 3
    assert tok.unk_id == tok.special_id("<unk>")
    ids = tok.encode("<pad>")
    assert len(ids) == 5 and all(i < len(tok.chars) for i in ids)
    assert tok.encode_with_report("z") == ([tok.unk_id], ["z"])
    bos = tok.special_id("<bos>")
    assert tok.decode([bos] + ids) == "<pad>"
    assert tok.decode([bos], skip_specials=False) == "<bos>"
    with pytest.raises(KeyError, match="<mask>"):
        tok.special_id("<mask>")


def test_to_dict_from_dict_round_trip(tok):
    d = json.loads(json.dumps(tok.to_dict()))  # survives JSON
    back = CharTokenizer.from_dict(d)
    assert back.itos == tok.itos and back.unk_id == tok.unk_id
    text = "Hark, ye \u2018gentle\u2019 Stra\u00dfe!"
    assert back.encode_with_report(text) == tok.encode_with_report(text)
    sp = CharTokenizer.from_text("xyz ", specials=["<pad>", "<eos>"])
    sp2 = CharTokenizer.from_dict(sp.to_dict())
    assert sp2.itos == sp.itos and sp2.special_id("<eos>") == sp.special_id("<eos>")
    with pytest.raises(ValueError, match="tokenizer type"):
        CharTokenizer.from_dict({"type": "bpe", "chars": "ab"})


def test_bad_vocabularies_are_rejected():
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="unk_char"):
        CharTokenizer(["a"], unk_char="?")


def test_the_tokenizer_interface_of_characters(tok):
    from scratchformer.tokenizers import Tokenizer, tokenizer_from_dict
    assert isinstance(tok, Tokenizer) and tok.unit == "character" and tok.count(65) == "65 characters"
    assert tokenizer_from_dict(tok.to_dict()).texts == tok.texts
    assert tokenizer_from_dict({"chars": "ab"}).texts == ("a", "b")   # the first checkpoints wrote no type
    ids = tok.encode("To be,\nor")
    assert tok.pieces(ids) == list("To be,\nor")
    assert [tok.label(i) for i in ids[2:7]] == ["␣", "b", "e", ",", "⏎"]
    assert tok.texts == tuple(tok.chars) and tok.text_vocab_size == 65
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.token_text(65)
    sp = CharTokenizer.from_text("ab", specials=["<mask>"])
    assert sp.is_special(2) and not sp.is_special(1) and sp.label(2) == "<mask>" and sp.text_vocab_size == 2


def test_display_token_makes_spaces_and_controls_visible():
    from scratchformer.tokenizers import display_token
    assert display_token(" the") == "␣the"
    assert display_token("\n\n") == "⏎⏎" and display_token("\t") == "⇥"
    assert display_token("\x07") == "\\x07" and display_token("\u202e") == "U+202E"
    assert display_token("Straße") == "Straße"
