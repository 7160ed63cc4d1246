"""Build the scratchformer app and launch it.

    python app.py        # http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change it

Checkpoints come from $SCRATCHFORMER_CHECKPOINTS (default: checkpoints/). The GPU is used when there
is one. On a Hugging Face Space this file is the entry point (README.md's front matter says so).
"""
import os

# Gradio runs every event inside a matplotlib backend guard (``import matplotlib`` and
# ``matplotlib.get_backend()``); the first time, that costs 0.3 s (with no backend named, get_backend
# imports pyplot to pick one), paid by the first visitor's page load. The app draws no matplotlib on
# screen: name a backend, and import matplotlib now, not during that first event.
os.environ.setdefault("MPLBACKEND", "agg")
import matplotlib  # noqa: E402,F401

QUEUE_MAX_SIZE = int(os.environ.get("SCRATCHFORMER_QUEUE_SIZE", "64"))

# A live training runs in a child process made by multiprocessing's fork server, which imports this
# file again in each child under the name "__mp_main__" (scratchformer/training/live_process.py):
# there, nothing is built.
if __name__ != "__mp_main__":
    from scratchformer.app.blocks import build_app, launch_kwargs

    app = build_app()
    demo = app.demo
    # Events that run a model share the "models" concurrency group (limit set in scratchformer/app/events.py);
    # everything else runs at most 4 at a time. Past QUEUE_MAX_SIZE waiting requests, new ones are
    # turned away with a "queue is full" message instead of piling up.
    demo.queue(default_concurrency_limit=4, max_size=QUEUE_MAX_SIZE)

if __name__ == "__main__":
    # No server_name / server_port here: Gradio then reads GRADIO_SERVER_NAME and
    # GRADIO_SERVER_PORT itself, defaulting to 127.0.0.1:7860. The page is served first (laid out
    # from the checkpoints' configs, without torch); then, in the background, torch and the weights
    # are loaded and every tab's default example is computed once (the first visitors wait for it,
    # and so does any request that comes before the weights: scratchformer/app/bank.py).
    demo.launch(prevent_thread_lock=True, **launch_kwargs())
    app.start()               # the default views, then the Train live tab's fork server (in the background)
    demo.block_thread()
