"""Training and measuring the models: the corpus and its split, the synthetic tasks, the training loop,
and every metric (``evaluate``). The command lines are ``python -m scratchformer.train`` / ``.evaluate``."""
