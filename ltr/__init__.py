"""ltr: learning-to-rank reranking with permutation-equivariant Transformers."""

__version__ = "0.1.0"
