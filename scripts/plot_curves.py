"""Plot the shipped models' learning curves: validation loss in bits per character against
characters seen in training, so the character pair and the word (BPE) pair share one scale.

    python scripts/plot_curves.py [--out checkpoints/learning_curves.png] [CHECKPOINT ...]

Reads the ``curve`` of each checkpoint's metrics.json (default: the character pair and the word pair)
and writes one PNG. A curve's loss is in nats per token; with c = characters per token of the
validation text (read off metrics.json: val_loss ÷ (bits_per_char × ln 2); 1 for characters):
bits per character = loss ÷ c ÷ ln 2 and characters seen = tokens × c. Solid lines: validation loss;
dotted: training loss (both estimated on the same fixed batches at every evaluation). The final
whole-split validation loss is marked with a dot and written in the legend.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = [ROOT / "checkpoints" / name for name in ("gpt-shakespeare", "lstm-shakespeare", "gpt-shakespeare-bpe",
                                                   "lstm-shakespeare-bpe")]


def plot(checkpoints: list[Path], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for ck, color in zip(checkpoints, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]):
        m = json.loads((ck / "metrics.json").read_text())
        curve = m["curve"]
        c = m["val_loss"] / (m["bits_per_char"] * math.log(2))       # characters per token
        bits = lambda nats: nats / c / math.log(2)                   # noqa: E731
        chars = [p["tokens"] * c / 1e6 for p in curve]
        name = f"{ck.name} ({m['model_type']}, {m['params'] / 1e6:.2f}M params)"
        ax.plot(chars, [bits(p["val_loss"]) for p in curve], color=color, label=f"{name}: validation")
        ax.plot(chars, [bits(p["train_loss"]) for p in curve], color=color, linestyle=":", alpha=0.7,
                label=f"{name}: training")
        ax.plot([m["tokens_seen"] * c / 1e6], [m["bits_per_char"]], "o", color=color,
                label=f"best checkpoint, whole validation split: {m['bits_per_char']:.3f} bits/char")
    ax.set_xlabel("characters seen in training (millions)")
    ax.set_ylabel("loss (bits per character)")
    ax.set_title("tiny Shakespeare: learning curves, characters and words (BPE)")
    ax.set_ylim(1.6, 5.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*", type=Path, default=DEFAULT)
    p.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "learning_curves.png")
    args = p.parse_args()
    print(plot(args.checkpoints, args.out))


if __name__ == "__main__":
    main()
