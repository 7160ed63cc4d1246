"""Using a trained model: sampling, streaming generation (KV cache), seq2seq decoding, fill-in-the-blanks,
and traced forward passes. Imports only the model, the tokenizer and the device helpers."""
