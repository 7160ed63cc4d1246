"""Views: pure functions from numbers (Traces, Steps, tensors) to plotly figures and HTML.

Nothing here runs a model or imports Gradio. One module per topic; the names are gathered here so
that ``from scratchformer import views; views.attention_heatmap(...)`` reads well.

A module is imported when one of its names is first used (PEP 562), not with this package: the app
imports ``views`` while it lays out its page, before torch and plotly are needed (see
scratchformer/app/bank.py for why that matters).
"""
import importlib

# name -> the module of this package that defines it
_HOME = {
    **dict.fromkeys(['hide_first_key', 'attention_grid', 'attention_heatmap', 'grid_page', 'GRID_LAYERS'], 'attention'),
    **dict.fromkeys(['display_token', 'to_numpy', 'figure', 'message_figure', 'export_name', 'as_figure', 'PlainFigure', 'LAYOUT', 'ATTN_SCALE', 'GRID_MAX_CELLS'], 'common'),
    **dict.fromkeys(['learning_curves_figure'], 'curves'),
    **dict.fromkeys(['curves_at_step_figure', 'head_history_figure', 'live_curves_figure', 'live_heads_figure'], 'learning'),
    **dict.fromkeys(['characters_vs_words_figure', 'characters_vs_words_caption'], 'compare'),
    **dict.fromkeys(['pca_2d', 'embedding_pca_figure', 'positional_figure', 'hidden_states_figure'], 'embeddings'),
    **dict.fromkeys(['top_varying_units', 'unit_text_html', 'lstm_gates_figure'], 'lstm'),
    **dict.fromkeys(['distribution_figure'], 'sampling'),
    **dict.fromkeys(['token_label', 'cross_attention_heatmap', 'source_focus_html', 'blanks_table_html', 'blank_bars_figure'], 'seq2seq'),
    **dict.fromkeys(['surprise_html'], 'text'),
    **dict.fromkeys(['model_diagram_html', 'vector_strips_figure', 'attention_step_figure', 'ffn_figure', 'stage_markdown'], 'inside'),
    **dict.fromkeys(['context_html', 'newest_attention_figure', 'next_char_figure'], 'watch'),
    **dict.fromkeys(['logit_lens_figure', 'ablation_figure', 'head_worth_figure', 'comparison_markdown', 'head_table_html', 'lstm_unit_figure', 'lstm_step_markdown'], 'interventions'),
}
__all__ = list(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value          # the next access is a plain lookup
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
