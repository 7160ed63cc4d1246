"""Command-line entry point only: ``python -m scratchformer.train …`` (and ``torchrun … -m scratchformer.train``),
the command README gives. The training code lives in :mod:`scratchformer.training.train`; import it from there."""
from .training.train import main

if __name__ == "__main__":
    main()
