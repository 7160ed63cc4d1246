"""``python -m scratchformer.evaluate checkpoints/NAME``: the evaluation command. The code is in
:mod:`scratchformer.training.evaluate`."""
from .training.evaluate import main

if __name__ == "__main__":
    main()
