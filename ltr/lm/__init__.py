"""The language-model core: GPT-style causal and BERT-style masked LMs on the :mod:`ltr.nn` blocks.

``ltr pretrain`` trains one on plain text (tokenizer included), ``ltr generate`` writes text with
a causal model or fills ``[MASK]`` slots with a masked one; :mod:`ltr.lm.model` holds the model.
"""
