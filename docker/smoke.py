"""Image build smoke check: the transformers and vLLM the image holds load a model together.

A tiny Llama-shaped model with random weights is written to a temporary folder (no download
at build time); transformers loads it back and runs it, and vLLM parses it through its own
config path, which is where a transformers release vLLM was not built against breaks first.
Exits non-zero, failing the build, when either does not work.
"""

from __future__ import annotations

import tempfile

import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from vllm.transformers_utils.config import get_config

import server.engines.vllm_engine  # noqa: F401  (ponder's adapter imports against this vLLM)

config = LlamaConfig(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
with tempfile.TemporaryDirectory() as folder:
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 256)
    parsed = get_config(folder, trust_remote_code=False)
    assert parsed.num_hidden_layers == 2
print("smoke check: transformers and vLLM load a Llama-shaped model")
