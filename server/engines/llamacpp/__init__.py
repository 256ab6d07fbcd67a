"""The CPU default engine: llama.cpp through llama-cpp-python's low-level API.

``context`` holds llama.cpp's C objects and their lifecycle, ``scheduler`` the thread that
batches every call in flight on them, and ``engine`` the :class:`LlamaCppEngine` that callers
see.
"""
