"""The CPU default engine: llama.cpp through llama-cpp-python's low-level API.

``context`` holds llama.cpp's C objects and their lifecycle, ``scheduler`` the thread that
batches every call in flight on them, and ``engine`` the :class:`LlamaCppEngine` that callers
see; ``threads`` picks how many CPU threads it runs.

llama.cpp's threads meet at an OpenMP barrier after every operation, and libgomp's threads
spin there for ~3 ms before they sleep: when another process takes one of the cores, each
barrier waits a scheduler time slice for the thread that shares it (on 2 cores with one kept
busy: 62.8 tokens/s idle, 4.4 busy).  Passive waiting sleeps at once and frees the core
(``bench/studies/contention.py`` measures both).  libgomp reads the policy once, as it is
loaded with llama_cpp: so it is set here, before any module of this package imports
llama_cpp, unless the environment already chose one.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "passive"
