"""Build the scratchformer app and launch it (honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)."""
import gradio as gr

with gr.Blocks(title="scratchformer") as demo:
    gr.Markdown("# scratchformer\nThe full app is being built.")

if __name__ == "__main__":
    demo.launch()
