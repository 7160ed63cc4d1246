"""What every model here shares: the loss it is trained on and how its size is counted."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100   # a target of −100 (padding, unmasked BERT positions) adds nothing to the loss


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats over the positions whose target is not −100:

        loss = −(1/N) Σ_t log softmax(z_t)[y_t]

    logits [B, T, V], targets [B, T] → a scalar.
    """
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def num_params(model: nn.Module) -> int:
    """Number of trainable numbers; a tied matrix (embedding = output head) is counted once."""
    return sum(p.numel() for p in model.parameters())
