"""Views: pure functions from numbers (Traces, Steps, tensors) to plotly figures and HTML.

Nothing here runs a model or imports Gradio. One module per topic; the names are gathered here so
that ``from scratchformer import views; views.attention_heatmap(...)`` reads well.
"""
# flake8: noqa
from .attention import (hide_first_key, attention_grid, attention_heatmap)  # noqa: F401
from .common import (display_char, to_numpy, figure, message_figure, export_name, LAYOUT, ATTN_SCALE, GRID_MAX_CELLS)  # noqa: F401
from .curves import (learning_curves_figure)  # noqa: F401
from .embeddings import (pca_2d, embedding_pca_figure, positional_figure, hidden_states_figure)  # noqa: F401
from .lstm import (top_varying_units, unit_text_html, lstm_gates_figure)  # noqa: F401
from .sampling import (distribution_figure)  # noqa: F401
from .seq2seq import (token_label, cross_attention_heatmap, source_focus_html, blanks_table_html, blank_bars_figure)  # noqa: F401
from .text import (surprise_html)  # noqa: F401
from .inside import (model_diagram_html, vector_strips_figure, attention_step_figure, ffn_figure, stage_markdown)  # noqa: F401
from .interventions import (logit_lens_figure, ablation_figure, head_worth_figure, comparison_markdown, head_table_html, lstm_unit_figure, lstm_step_markdown)  # noqa: F401
