"""``python -m scratchformer.train …``: the training command. The code is in :mod:`scratchformer.training.train`."""
from .training.train import main

if __name__ == "__main__":
    main()
