"""Training tasks beyond next-character prediction.

1. **Dates** for the encoder-decoder: a date written one of many ways → the same date in ISO form.

       "3rd of March 1999", "03.03.1999", "MAR 3 1999", "Wednesday, March 3, 1999"  →  "1999-03-03"

   The output copies digits from the input (the year, the day) and translates a month name into two
   digits, so the cross-attention of a trained model shows a clear alignment: while writing the
   year it looks at the year, while writing the month at the month.

   Conventions that keep every source unambiguous (a model cannot learn a coin toss):

   * dates run from 1900-01-01 to 2099-12-31;
   * a number-only date that *starts* with the year is year/month/day ("1999/03/03", "1999-3-3",
     "19990303");
   * dots are day.month.year, as in German and most of Europe ("03.03.1999", "3.3.1999");
   * slashes with the year last are month/day/year, as in the United States ("03/03/1999");
   * two-digit years follow POSIX / Python's ``%y``: 69–99 → 1969–1999, 00–68 → 2000–2068, and are
     only generated for dates in 1969–2068 ("03/03/99" is 1999-03-03, "03.03.05" is 2005-03-03);
   * a weekday, when written, is the true one; the model may ignore it;
   * month and weekday names appear in Title case, lower case or UPPER case.

   The held-out test set is disjoint from training **by date**: a fixed, seeded 10% of all calendar
   days is never shown in training in any format, so exact match on it measures generalisation, not
   memory.

2. **Masked characters** for the BERT-style model (BERT, Devlin et al. 2019, §3.1): 15% of the
   characters of a window are chosen; of those 80% become ``<mask>``, 10% a random character and 10%
   stay as they are (``rule_80_10_10=False``: all chosen become ``<mask>``). The loss is computed on
   the chosen positions only (targets are −100 elsewhere). The random and unchanged 20% keep the model
   from trusting that every visible character is right, which is what lets it read a sentence
   without blanks; in the app every blank is ``<mask>``.

Everything random here is drawn from a ``torch.Generator`` or a seed, never from the global RNG.
"""
from __future__ import annotations

import datetime as dt
import random
import string
from typing import Callable, Optional

import torch
from torch import Tensor

from ..tokenizers import CharTokenizer

# ------------------------------------------------------------------------------------------- dates

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(2099, 12, 31)
TWO_DIGIT_YEARS = (1969, 2068)      # the years a two-digit year can stand for (POSIX %y pivot)
TEST_FRACTION = 0.1                 # share of calendar days held out
SPLIT_SEED = 1999                   # fixes which days are held out, whatever the training seed
DATE_CHARS = string.digits + string.ascii_letters + " ,./-"
DATE_SPECIALS = ("<pad>", "<bos>", "<eos>")
TARGET_LEN = len("1999-03-03")


def ordinal(n: int) -> str:
    """1 → "1st", 2 → "2nd", 3 → "3rd", 4 → "4th", 11 → "11th", 22 → "22nd"."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _fields(d: dt.date) -> dict:
    month, weekday = MONTHS[d.month - 1], WEEKDAYS[d.weekday()]
    return dict(Y=d.year, yy=f"{d.year % 100:02d}", m=d.month, mm=f"{d.month:02d}", d=d.day,
                dd=f"{d.day:02d}", nth=ordinal(d.day), Month=month, Mon=month[:3], Weekday=weekday,
                Wkd=weekday[:3])


# Every surface form, as a str.format pattern over _fields. The comment shows 1999-03-03.
WORD_FORMATS = [
    "{Month} {d}, {Y}",                    # March 3, 1999
    "{Month} {nth}, {Y}",                  # March 3rd, 1999
    "{d} {Month} {Y}",                     # 3 March 1999
    "{nth} of {Month} {Y}",                # 3rd of March 1999
    "the {nth} of {Month}, {Y}",           # the 3rd of March, 1999
    "{Mon} {d} {Y}",                       # Mar 3 1999
    "{Mon}. {d}, {Y}",                     # Mar. 3, 1999
    "{d} {Mon} {Y}",                       # 3 Mar 1999
    "{dd}-{Mon}-{Y}",                      # 03-Mar-1999
    "{Weekday}, {Month} {d}, {Y}",         # Wednesday, March 3, 1999
    "{Weekday} the {nth} of {Month} {Y}",  # Wednesday the 3rd of March 1999
    "{Wkd} {d} {Mon} {Y}",                 # Wed 3 Mar 1999
]
NUMBER_FORMATS = [
    "{Y}-{mm}-{dd}",                       # 1999-03-03 (already the target)
    "{Y}/{mm}/{dd}",                       # 1999/03/03   year first → year/month/day
    "{Y}-{m}-{d}",                         # 1999-3-3
    "{Y}{mm}{dd}",                         # 19990303
    "{dd}.{mm}.{Y}",                       # 03.03.1999   dots → day.month.year
    "{d}.{m}.{Y}",                         # 3.3.1999
    "{mm}/{dd}/{Y}",                       # 03/03/1999   slashes, year last → month/day/year
    "{m}/{d}/{Y}",                         # 3/3/1999
]
TWO_DIGIT_FORMATS = [
    "{mm}/{dd}/{yy}",                      # 03/03/99     only for 1969–2068
    "{dd}.{mm}.{yy}",                      # 03.03.99
]
FORMATS = WORD_FORMATS + NUMBER_FORMATS + TWO_DIGIT_FORMATS
MAX_SOURCE_LEN = len("Wednesday the 23rd of September 1999")


def format_date(d: dt.date, pattern: str, case: str = "title") -> str:
    """``d`` written with ``pattern`` (one of :data:`FORMATS`); case "title", "lower" or "upper"."""
    if pattern in TWO_DIGIT_FORMATS and not TWO_DIGIT_YEARS[0] <= d.year <= TWO_DIGIT_YEARS[1]:
        raise ValueError(f"two-digit years stand for {TWO_DIGIT_YEARS[0]}–{TWO_DIGIT_YEARS[1]} only; "
                         f"got {d.isoformat()}")
    text = pattern.format(**_fields(d))
    if case == "lower":
        return text.lower()
    if case == "upper":
        return text.upper()
    if case != "title":
        raise ValueError(f"case must be 'title', 'lower' or 'upper', got {case!r}")
    return text


def all_dates() -> list[dt.date]:
    """Every calendar day from FIRST_DATE to LAST_DATE, in order (73,049 days)."""
    n = (LAST_DATE - FIRST_DATE).days + 1
    return [FIRST_DATE + dt.timedelta(days=i) for i in range(n)]


def split_dates(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
                ) -> tuple[list[dt.date], list[dt.date]]:
    """(train days, test days): a seeded shuffle of all days, the first ``test_fraction`` held out.

    The two lists are disjoint and together cover every day; both are returned sorted.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    days = all_dates()
    order = list(range(len(days)))
    random.Random(seed).shuffle(order)
    n_test = int(round(test_fraction * len(days)))
    test = sorted(order[:n_test])
    train = sorted(order[n_test:])
    return [days[i] for i in train], [days[i] for i in test]


def random_date_example(d: dt.date, rng: random.Random) -> tuple[str, str]:
    """(source, target) for day ``d`` in a random format and case, drawn with ``rng``."""
    patterns = FORMATS if TWO_DIGIT_YEARS[0] <= d.year <= TWO_DIGIT_YEARS[1] else \
        WORD_FORMATS + NUMBER_FORMATS
    pattern = rng.choice(patterns)
    case = rng.choices(["title", "lower", "upper"], weights=[0.6, 0.2, 0.2])[0]
    return format_date(d, pattern, case), d.isoformat()


class DatesTask:
    """The dates task: examples, a tokenizer, and padded batches for the encoder-decoder.

    ``split`` is "train" or "test" ("val" is accepted as a synonym of "test": the held-out days are
    what training reports its validation loss on).
    """

    def __init__(self, split_seed: int = SPLIT_SEED):
        self.split_seed = split_seed
        self.train_dates, self.test_dates = split_dates(split_seed)
        self.tokenizer = dates_tokenizer()

    def dates(self, split: str) -> list[dt.date]:
        if split == "train":
            return self.train_dates
        if split in ("test", "val"):
            return self.test_dates
        raise ValueError(f"split must be 'train' or 'test' (or 'val'), got {split!r}")

    def examples(self, split: str, n: int, seed: int = 0) -> list[tuple[str, str]]:
        """``n`` (source, target) pairs from ``split``, the same for the same seed."""
        rng = random.Random(seed)
        days = self.dates(split)
        return [random_date_example(rng.choice(days), rng) for _ in range(n)]

    def held_out(self, n: int = 2000) -> list[tuple[str, str]]:
        """The fixed held-out set that ``scratchformer.evaluate`` reports exact match on."""
        return self.examples("test", n, seed=12345)

    def batch(self, split: str, batch_size: int, generator: Optional[torch.Generator] = None,
              device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
        """A random batch → (src [B, S], tgt_in [B, T], targets [B, T]); see :func:`encode_pairs`."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        pairs = self.examples(split, batch_size, seed)
        return tuple(t.to(device) for t in encode_pairs(pairs, self.tokenizer))


def dates_tokenizer() -> CharTokenizer:
    """Digits, letters, space and ``,./-``, then the specials ``<pad>``, ``<bos>``, ``<eos>``."""
    return CharTokenizer(list(DATE_CHARS), specials=DATE_SPECIALS, unk_char=" ")


def encode_pairs(pairs: list[tuple[str, str]], tokenizer: CharTokenizer) -> tuple[Tensor, Tensor, Tensor]:
    """Sources and targets → padded tensors for teacher forcing.

    src     [B, S]: source ids, right-padded with ``<pad>``
    tgt_in  [B, T]: ``<bos>`` y₁ … y_n  (the decoder's input, the target shifted right)
    targets [B, T]: y₁ … y_n ``<eos>``  (what each decoder position must predict; −100 at padding)
    """
    pad, bos, eos = (tokenizer.special_id(s) for s in DATE_SPECIALS)
    srcs = [tokenizer.encode(s) for s, _ in pairs]
    tgts = [tokenizer.encode(t) + [eos] for _, t in pairs]
    S, T = max(map(len, srcs)), max(map(len, tgts))
    src = torch.full((len(pairs), S), pad, dtype=torch.long)
    targets = torch.full((len(pairs), T), -100, dtype=torch.long)
    tgt_in = torch.full((len(pairs), T), pad, dtype=torch.long)
    for i, (s, t) in enumerate(zip(srcs, tgts)):
        src[i, :len(s)] = torch.tensor(s)
        targets[i, :len(t)] = torch.tensor(t)
        tgt_in[i, :len(t)] = torch.tensor([bos] + t[:-1])
    return src, tgt_in, targets


# --------------------------------------------------------------------------- masked characters

MASK_PROB = 0.15


def mask_tokens(x: Tensor, mask_id: int, n_chars: int, generator: Optional[torch.Generator] = None,
                mask_prob: float = MASK_PROB, rule_80_10_10: bool = True) -> tuple[Tensor, Tensor]:
    """BERT's masked-language-model corruption of a batch of ids ``x`` [B, T] → (inputs, targets).

    Each position is chosen with probability ``mask_prob``. targets = x at chosen positions, −100
    elsewhere (ignored by the loss). inputs = x with the chosen positions replaced: with the 80/10/10
    rule 80% by ``mask_id``, 10% by a random character id in [0, n_chars), 10% left unchanged;
    without it, all by ``mask_id``.
    """
    if not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
    u = torch.rand(x.shape, generator=generator)
    chosen = u < mask_prob
    targets = torch.where(chosen, x, torch.full_like(x, -100))
    inputs = x.clone()
    if not rule_80_10_10:
        inputs[chosen] = mask_id
        return inputs, targets
    # reuse u: within the chosen band [0, p) the first 80% → mask, next 10% → random, last 10% → keep
    to_mask = u < 0.8 * mask_prob
    to_random = (u >= 0.8 * mask_prob) & (u < 0.9 * mask_prob)
    inputs[to_mask] = mask_id
    random_ids = torch.randint(n_chars, x.shape, generator=generator)
    inputs[to_random] = random_ids[to_random]
    return inputs, targets


def masked_batch_fn(data: Tensor, block_size: int, mask_id: int, n_chars: int,
                    rule_80_10_10: bool = True) -> Callable[..., tuple[Tensor, Tensor]]:
    """A batch function for the BERT-style model: random windows of ``data``, masked.

    Returns ``fn(batch_size, generator, device) -> (inputs [B, T], targets [B, T])``.
    """
    def fn(batch_size: int, generator: Optional[torch.Generator] = None,
           device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        if len(data) <= block_size:
            raise ValueError(f"data has {len(data)} tokens; block_size must be below that")
        ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        x = data[ix[:, None] + torch.arange(block_size)]
        inputs, targets = mask_tokens(x, mask_id, n_chars, generator, rule_80_10_10=rule_80_10_10)
        return inputs.to(device), targets.to(device)

    return fn
