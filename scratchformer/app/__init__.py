"""The Gradio app: one model bank, the input policy, event plumbing, one module per tab or group of
tabs, and the Blocks assembly (``blocks.build_app``). The only layer that imports Gradio."""
