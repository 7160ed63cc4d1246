"""Command-line entry point only: ``python -m scratchformer.evaluate checkpoints/NAME …``, the command README
gives. The evaluation code lives in :mod:`scratchformer.training.evaluate`; import it from there."""
from .training.evaluate import main

if __name__ == "__main__":
    main()
