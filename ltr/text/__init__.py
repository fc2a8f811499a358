"""Text reranking: text collections, a BM25 first stage, features for the reranker, fine-tuned
text encoders."""
