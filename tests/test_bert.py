"""The BERT-style masked-character model: masking, fill-in-the-blanks, the causal toggle, metrics."""
import json
from pathlib import Path

import pytest
import torch

from scratchformer.inference.blanks import fill_blanks, gpt_fill_blanks
from scratchformer.training.evaluate import masked_char_metrics
from scratchformer.training.tasks import mask_tokens, masked_batch_fn
from scratchformer.tokenizers import CharTokenizer
from scratchformer.model.config import TransformerConfig
from scratchformer.model.transformer import GPT, BertLM

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "bert-shakespeare"
CHARS = "abcdefgh ,.\n"


def tiny_bert(seed=0, chars=CHARS, **kw):
    tok = CharTokenizer(list(chars), specials=("<mask>",))
    torch.manual_seed(seed)
    cfg = dict(model_type="bert", vocab_size=tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32,
               mask_id=tok.special_id("<mask>"))
    cfg.update(kw)
    return BertLM(TransformerConfig(**cfg)).eval(), tok


# -------------------------------------------------------------------------------------- masking

def test_masking_chooses_15_percent_and_follows_80_10_10():
    x = torch.randint(0, 60, (64, 256))
    inputs, targets = mask_tokens(x, mask_id=99, n_chars=60, generator=torch.Generator().manual_seed(0))
    chosen = targets != -100
    assert 0.14 < chosen.float().mean() < 0.16
    assert torch.equal(targets[chosen], x[chosen])
    assert torch.equal(inputs[~chosen], x[~chosen])            # nothing else is touched
    masked = inputs[chosen] == 99
    kept = inputs[chosen] == x[chosen]
    assert 0.77 < masked.float().mean() < 0.83
    assert 0.08 < (kept & ~masked).float().mean() < 0.13      # 10% kept (+ random ids equal by chance)
    assert (inputs[chosen] < 60).sum() + masked.sum() == chosen.sum()  # random ids are characters
    plain, _ = mask_tokens(x, 99, 60, torch.Generator().manual_seed(0), rule_80_10_10=False)
    assert (plain[chosen] == 99).all()


def test_masking_and_batches_are_deterministic_by_seed():
    x = torch.randint(0, 60, (4, 50))
    a = mask_tokens(x, 99, 60, torch.Generator().manual_seed(5))
    b = mask_tokens(x, 99, 60, torch.Generator().manual_seed(5))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    fn = masked_batch_fn(torch.arange(1000) % 60, 32, 99, 60)
    a, b = fn(8, torch.Generator().manual_seed(1)), fn(8, torch.Generator().manual_seed(1))
    assert all(torch.equal(s, t) for s, t in zip(a, b)) and a[0].shape == (8, 32)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(x, 99, 60, mask_prob=0.0)


# ------------------------------------------------------------------------------------ fill-in

def test_fill_gives_top_k_guesses_per_blank_with_probabilities():
    model, tok = tiny_bert()
    result = fill_blanks(model, tok, "ab_de f_h, _", top_k=4)
    assert [b.position for b in result.blanks] == [2, 7, 11]
    assert result.tokens[2] == "<mask>" and result.tokens.count("<mask>") == 3
    for b in result.blanks:
        probs = [p for _, p in b.guesses]
        assert len(b.guesses) == 4 and all(c in CHARS for c, _ in b.guesses)   # never a special token
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert len(result.filled) == len("ab_de f_h, _") and "_" not in result.filled
    assert result.filled[2] == result.blanks[0].best
    assert len(result.trace.self_attn) == 2 and result.trace.causal is False


def test_causal_toggle_hides_the_right_of_each_blank():
    model, tok = tiny_bert(seed=1)
    left = "abc_"
    a, b = left + "hhhh", left + "aaaa"
    # bidirectional: the text after the blank changes the guess ...
    assert fill_blanks(model, tok, a).blanks[0].guesses != fill_blanks(model, tok, b).blanks[0].guesses
    # ... with the causal mask it cannot
    ca, cb = fill_blanks(model, tok, a, causal=True), fill_blanks(model, tok, b, causal=True)
    assert ca.blanks[0].guesses == pytest.approx(cb.blanks[0].guesses)
    assert ca.blanks[0].guesses != fill_blanks(model, tok, a).blanks[0].guesses
    assert (ca.trace.self_attn[0][0].triu(1) == 0).all()


def test_fill_reports_unknown_characters_and_rejects_bad_requests():
    model, tok = tiny_bert()
    assert fill_blanks(model, tok, "ab_Z").unknown_chars == ["Z"]
    with pytest.raises(ValueError, match="blank"):
        fill_blanks(model, tok, "no blanks here")
    with pytest.raises(ValueError, match="block_size"):
        fill_blanks(model, tok, "a" * 40 + "_")
    with pytest.raises(ValueError, match="top_k"):
        fill_blanks(model, tok, "a_", top_k=0)
    gpt, _ = tiny_bert(model_type="gpt", mask_id=None)
    with pytest.raises(ValueError, match="mask"):
        fill_blanks(gpt, tok, "a_")


def test_gpt_guesses_are_its_next_character_after_the_left_context():
    tok = CharTokenizer(list(CHARS))
    torch.manual_seed(0)
    gpt = GPT(TransformerConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    guesses = gpt_fill_blanks(gpt, tok, "_bc_ef", top_k=3)
    assert guesses[0] is None                                   # nothing to the left of it
    with torch.no_grad():
        logits = gpt(torch.tensor([tok.encode(" bc")])).logits[0, -1]
    probs = torch.softmax(logits, -1)
    assert guesses[1].guesses[0][0] == tok.itos[int(probs.argmax())]
    assert guesses[1].guesses[0][1] == pytest.approx(float(probs.max()), abs=1e-6)


# ------------------------------------------------------------------------------------- learning

def test_tiny_bert_learns_a_pattern_and_the_causal_mask_costs_it():
    """Text "abcdefgh" repeated: a masked letter follows from both neighbours."""
    model, tok = tiny_bert(seed=0, n_layer=1)
    model.train()
    ids = torch.tensor(tok.encode("abcdefgh" * 200))
    fn = masked_batch_fn(ids, 32, model.config.mask_id, len(tok.chars))
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(100):
        loss = model(*fn(32, gen)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval()
    both = masked_char_metrics(model, ids, 32, model.config.mask_id, len(tok.chars), seed=1)
    assert both["masked_char_accuracy"] > 0.9 and both["masked_chars"] > 100
    assert masked_char_metrics(model, ids, 32, model.config.mask_id, len(tok.chars), seed=1) == both
    causal = masked_char_metrics(model, ids, 32, model.config.mask_id, len(tok.chars), seed=1, causal=True)
    assert causal["masked_char_accuracy"] < both["masked_char_accuracy"] - 0.05
    assert fill_blanks(model, tok, "abcd_fgh").blanks[0].best == "e"


# -------------------------------------------------------------------------------- the shipped model

@pytest.mark.skipif(not (CHECKPOINT / "model.safetensors").exists(),
                    reason="checkpoints/bert-shakespeare is not shipped in this tree")
def test_shipped_bert_fills_blanks_and_beats_its_causal_self():
    from scratchformer.checkpoint import load_checkpoint
    from scratchformer.training import data as D
    loaded = load_checkpoint(CHECKPOINT)
    model, tok = loaded.model, loaded.tokenizer
    result = fill_blanks(model, tok, "My l_rd, the k_ng is d_ad.")
    assert result.filled == "My lord, the king is dead."
    _, val = D.split(torch.tensor(tok.encode(D.load_corpus()), dtype=torch.long))
    args = (model, val, model.config.block_size, model.config.mask_id, len(tok.chars))
    bidirectional = masked_char_metrics(*args, max_batches=4)
    causal = masked_char_metrics(*args, max_batches=4, causal=True)
    assert bidirectional["masked_char_accuracy"] > causal["masked_char_accuracy"] + 0.1
    metrics = json.loads((CHECKPOINT / "metrics.json").read_text())
    assert abs(bidirectional["masked_char_accuracy"] - metrics["masked_char_accuracy"]) < 0.08


def test_evaluate_prints_masked_char_accuracy_as_its_last_json_line(tmp_path, capsys):
    from scratchformer.training import data as D
    from scratchformer.checkpoint import save_checkpoint
    from scratchformer.training.evaluate import main
    chars = D.default_tokenizer().chars
    model, tok = tiny_bert(chars="".join(chars), block_size=64)
    save_checkpoint(tmp_path / "bert", model, tok, {"iters": 0})
    main([str(tmp_path / "bert"), "--max-batches", "1", "--batch-size", "8"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["model_type"] == "bert" and last["masked_chars"] > 0
    assert 0.0 <= last["masked_char_accuracy"] <= 1.0 and 0.0 <= last["masked_char_accuracy_causal"] <= 1.0
