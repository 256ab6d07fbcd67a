"""The OpenAI-compatible surfaces, laid out as vLLM's ``entrypoints/openai``: wire models,
one service module per surface, and thin routers."""
