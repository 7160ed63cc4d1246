"""Plot the shipped models' learning curves: validation loss against training tokens seen.

    python scripts/plot_curves.py [--out checkpoints/learning_curves.png] [CHECKPOINT ...]

Reads the ``curve`` of each checkpoint's metrics.json (default: checkpoints/gpt-shakespeare and
checkpoints/lstm-shakespeare) and writes one PNG. Solid lines: validation loss; dotted: training loss
(both estimated on the same fixed batches at every evaluation). The final whole-split validation loss
from metrics.json is marked with a dot and written in the legend.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = [ROOT / "checkpoints" / "gpt-shakespeare", ROOT / "checkpoints" / "lstm-shakespeare"]


def plot(checkpoints: list[Path], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for ck, color in zip(checkpoints, ["tab:blue", "tab:orange", "tab:green", "tab:red"]):
        m = json.loads((ck / "metrics.json").read_text())
        curve = m["curve"]
        tokens = [c["tokens"] / 1e6 for c in curve]
        name = f"{ck.name} ({m['model_type']}, {m['params'] / 1e6:.2f}M params)"
        ax.plot(tokens, [c["val_loss"] for c in curve], color=color, label=f"{name}: validation")
        ax.plot(tokens, [c["train_loss"] for c in curve], color=color, linestyle=":", alpha=0.7,
                label=f"{name}: training")
        ax.plot([m["tokens_seen"] / 1e6], [m["val_loss"]], "o", color=color,
                label=f"best checkpoint, whole validation split: {m['val_loss']:.3f}")
    ax.axhline(1.70, color="gray", linestyle="--", linewidth=0.8)
    ax.text(0, 1.70, " bar 1.70", va="bottom", color="gray", fontsize=8)
    ax.set_xlabel("training tokens seen (millions of characters)")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title("tiny Shakespeare: learning curves")
    ax.set_ylim(1.2, 4.4)
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
