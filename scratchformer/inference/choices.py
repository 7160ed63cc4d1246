"""The choices and limits offered to callers of inference/: plain constants, no torch.

They live apart from the code that uses them so that the app can lay out its controls (radio
options, slider ranges) before it imports torch (see scratchformer/app/bank.py).
"""
MAX_NEW_TOKENS = 2000      # the most tokens one request may ask for (``max_new_tokens`` in 1…2000)
MAX_SEED = 2**63 - 1       # seeds are integers in 0…2⁶³−1
METHODS = ("greedy", "sample", "beam")     # seq2seq decoding
MAX_BEAM_SIZE = 32
MODES = ("zero", "mean")   # ablation: a switched-off part outputs 0, or its mean over the text
BLANK = "_"                # fill-in-the-blanks: the character that marks a blank
