import subprocess
import sys

FORBIDDEN = {"server", "fastapi", "pydantic", "torch", "vllm", "httpx", "starlette", "transformers"}


def test_search_imports_no_http_and_no_engine() -> None:
    code = (
        "import sys, search, search.methods.mcts, search.methods\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {FORBIDDEN!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
