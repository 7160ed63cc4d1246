"""The byte-level BPE (scratchformer/tokenizers/bpe.py) against the `tokenizers` library on the same
vocab.json + merges.txt, both ways: files our trainer wrote, and files the library's trainer wrote."""
import json
import random
import time

import pytest

from scratchformer.tokenizers import tokenizer_from_dict
from scratchformer.tokenizers.bpe import (BPETokenizer, bytes_to_unicode, merge_long_piece, merge_piece)

hf = pytest.importorskip("tokenizers")

CORPUS = open("data/tinyshakespeare.txt", encoding="utf-8").read()
UNICODE = ("Ünïcödé naïve café Straße façade. Привет, как дела? 你好，世界。こんにちは 안녕하세요 "
           "مرحبا שלום 😀🎉👍🏽 👨‍👩‍👧 ∑∫√∞ ≠ ≤ 1,234.56 3.14159 10⁶ ½ ① \t tabs\ttoo  ")


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer.train(CORPUS[:300_000] + UNICODE * 20, 700, specials=["<|endoftext|>"])


def random_strings(n: int, seed: int = 0) -> list[str]:
    """Strings mixing what pre-splitting and byte merging must get right."""
    rng = random.Random(seed)
    parts = ["the", " the", "King", " RICHARD", "'s", "'ll", "'re", "'ve", "'d", "'m", "'t", " don't",
             "123", " 4567", "3.14", "  ", "   ", "\n", "\n\n", "\t", " \n ", "!!", "?!", "...", "—", "’s",
             "😀", "🎉👍🏽", "👨‍👩‍👧", "你好", "世界", "Привет", "ß", "é", "e\u0301", "ﬁ", "\u200b", "\u202e",
             "\x00", "\x07", "\r\n", "¡", "ÿ", "Ā", " ﬀ", "a" * 70, "😀" * 30, " " * 100, "x1y2z3"]
    words = CORPUS[:50_000].split()
    out = []
    for _ in range(n):
        k = rng.randint(1, 12)
        s = "".join(rng.choice(parts) if rng.random() < 0.5 else " " * rng.randint(0, 2) + rng.choice(words)
                    for _ in range(k))
        if rng.random() < 0.2:
            s += "".join(chr(rng.randint(0x20, 0x2FFFF)) for _ in range(rng.randint(1, 8)))
        out.append(s.encode("utf-8", "replace").decode("utf-8"))
    return out


def hf_from_files(folder):
    from tokenizers import ByteLevelBPETokenizer
    return ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def test_same_ids_as_the_tokenizers_library_on_our_files(trained, tmp_path):
    trained.save_gpt2_files(tmp_path)
    ref = hf_from_files(tmp_path)
    ours = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert ours.tokens == trained.tokens and ours.merges == trained.merges
    assert ours.specials == ["<|endoftext|>"] and ours.special_id("<|endoftext|>") == trained.vocab_size - 1
    texts = random_strings(3000) + [CORPUS[:5000], UNICODE]
    for text in texts:
        ids = ours.encode(text)
        assert ids == ref.encode(text).ids, text
        assert ours.decode(ids) == text


def test_reads_files_the_tokenizers_library_trained(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    ref = ByteLevelBPETokenizer()
    ref.train_from_iterator([CORPUS[:200_000], UNICODE * 5], vocab_size=800, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    ref.save_model(str(tmp_path))
    # the library numbers its special token first; GPT-2's files put it last, as ours require
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    if vocab.get("<|endoftext|>") == 0:
        vocab = {k: v - 1 for k, v in vocab.items() if k != "<|endoftext|>"} | {"<|endoftext|>": len(vocab) - 1}
        (tmp_path / "vocab.json").write_text(json.dumps(vocab))
        ref = hf_from_files(tmp_path)
    ours = BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    for text in random_strings(1500, seed=1):
        assert ours.encode(text) == ref.encode(text).ids, text


def test_training_merges_the_most_frequent_pair_first():
    # pieces: "aaab", " aaab", " aab". Pair counts: a+a 5, a+b 3, space+a 2 → merge 1 is a+a.
    # Then: aa+a 2, a+b 2, space+aa 2, aa+b 1 → a tie, broken by the bytes that sort first: space+aa.
    tok = BPETokenizer.train("aaab aaab aab", 256 + 3)
    # Then a+b 2 (in "aa a b" and " aa a b"), every other pair 1.
    assert tok.merges == [(b"a", b"a"), (b" ", b"aa"), (b"a", b"b")]
    assert tok.pieces(tok.encode("aaab aaab aab")) == ["aa", "ab", " aa", "ab", " aa", "b"]


def test_merge_order_is_by_rank_not_by_position():
    tok = BPETokenizer([bytes([b]) for b in range(256)] + [b"he", b"th", b"the"],
                       [(b"h", b"e"), (b"t", b"h"), (b"t", b"he")])
    # "the": rank 0 merges h+e first, so the result is t+he → "the" (rank 2), not th+e
    assert tok.merge_steps("the") == [(["t", "h", "e"], 0), (["t", "he"], 2), (["the"], None)]
    assert tok.encode("the") == [258]


def test_long_pieces_take_the_heap_and_agree_with_the_simple_loop(trained):
    rng = random.Random(3)
    for _ in range(300):
        text = "".join(rng.choice(["a", "aa", "e", "th", "the", "😀", "ing", " "]) for _ in range(rng.randint(2, 90)))
        toks = [bytes([b]) for b in text.encode()]
        assert merge_long_piece(list(toks), trained.ranks) == merge_piece(list(toks), trained.ranks)


def test_json_round_trip_through_the_registry(trained):
    d = json.loads(json.dumps(trained.to_dict()))
    again = tokenizer_from_dict(d)
    assert isinstance(again, BPETokenizer)
    assert again.tokens == trained.tokens and again.merges == trained.merges and again.specials == trained.specials
    text = CORPUS[:2000]
    assert again.encode(text) == trained.encode(text)


def test_pieces_join_to_the_text_and_count_its_characters(trained):
    for text in ["Hello, world!", "café 😀 你好", "a" * 80, "👨‍👩‍👧 x", UNICODE]:
        ids = trained.encode(text)
        pieces = trained.pieces(ids)
        assert len(pieces) == len(ids)
        assert "".join(pieces) == text
    assert trained.token_text(trained.id_of[b"\xf0"]) == "\\xf0"       # a lone lead byte is shown by its value


def test_decode_shows_invalid_utf8_and_never_raises(trained):
    lead = trained.id_of[b"\xf0"]
    assert trained.decode([lead, trained.id_of[b"a"]]) == "\ufffda"
    assert trained.decode([trained.special_id("<|endoftext|>")]) == ""
    assert trained.decode([trained.special_id("<|endoftext|>")], skip_specials=False) == "<|endoftext|>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        trained.decode([trained.vocab_size])


def test_specials_are_never_made_by_encode(trained):
    ids = trained.encode("<|endoftext|>")
    assert trained.special_id("<|endoftext|>") not in ids
    assert trained.decode(ids) == "<|endoftext|>"


def test_hostile_text_in_bounded_time(trained):
    emoji = "".join(chr(0x1F300 + i % 0x500) + chr(0x1F000 + i % 0x300) for i in range(5000))   # 10,000 emoji
    texts = ["\ud800 lone \udfff surrogates", "".join(map(chr, range(0, 0x2000))), emoji,
             "x" * 2_000_000, ("ab " * 10 + "\n") * 50_000]
    for text in texts:
        t0 = time.perf_counter()
        ids, replaced = trained.encode_with_report(text)
        assert time.perf_counter() - t0 < 60
        assert all(0 <= i < trained.vocab_size for i in ids)
    ids, replaced = trained.encode_with_report("\ud800 lone \udfff surrogates")
    assert replaced == ["U+D800", "U+DFFF"]
    assert trained.decode(ids) == "\ufffd lone \ufffd surrogates"


@pytest.mark.parametrize("vocab, merges, message", [
    ("{not json", "#version: 0.2\n", r"vocab\.json: cannot read it as JSON"),
    ('{"a": 0, "b": 2}', "#version: 0.2\n", r"vocab\.json: ids must be"),
    ('["a"]', "#version: 0.2\n", r"vocab\.json: must be a JSON object"),
    (None, "#version: 0.2\nĠ t h\n", r"merges\.txt: line 2"),
    (None, "#version: 0.2\nĠ\n", r"merges\.txt: line 2"),
    (None, "#version: 0.2\nĠ zz\n", r"merges\.txt: merge 1 .* vocab\.json lacks"),
])
def test_broken_files_are_refused_naming_file_and_line(tmp_path, vocab, merges, message):
    names = list(bytes_to_unicode().values())
    if vocab is None:
        vocab = json.dumps({n: i for i, n in enumerate(names)})
    (tmp_path / "vocab.json").write_text(vocab, encoding="utf-8")
    (tmp_path / "merges.txt").write_text(merges, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_a_vocabulary_without_every_byte_is_refused(tmp_path):
    names = list(bytes_to_unicode().values())[:-1]
    (tmp_path / "vocab.json").write_text(json.dumps({n: i for i, n in enumerate(names)}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json: .*lacks the byte token"):
        BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_truncated_merges_file_still_reads_and_broken_last_line_is_named(tmp_path, trained):
    trained.save_gpt2_files(tmp_path)
    text = (tmp_path / "merges.txt").read_text(encoding="utf-8")
    (tmp_path / "merges.txt").write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\nĠ", encoding="utf-8")
    n_lines = len((tmp_path / "merges.txt").read_text(encoding="utf-8").splitlines())
    with pytest.raises(ValueError, match=rf"merges\.txt: line {n_lines}"):
        BPETokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
