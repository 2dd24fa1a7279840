"""Data pieces of the pipeline: tokenizers, Megatron indexed datasets, text sources, packing."""
