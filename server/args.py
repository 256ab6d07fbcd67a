"""Process-wide settings: one pydantic-settings class, read from CLI flags and ``PONDER_*``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from search.formats import AUTO_FALLBACK, ReasoningFormat
from server.openai.search_options import SearchOptions

FlashAttention = Literal["auto", "on", "off"]  # llama.cpp's attention kernel
KvCacheDtype = Literal["auto", "q8_0"]  # llama.cpp's KV cache cells (auto: 16-bit floats)


class ServerArgs(BaseSettings):
    """Everything ``ponder serve`` is configured by.  Flags are the field names in kebab case
    (``--served-model-name``), named like ``vllm serve``'s where they mean the same; each field
    is also read from ``PONDER_<NAME>`` (``PONDER_SEARCH_DEFAULTS__ITERATIONS=8`` for nested)."""

    model_config = SettingsConfigDict(
        env_prefix="PONDER_", env_nested_delimiter="__", protected_namespaces=()
    )

    model: str | None = Field(
        None,
        description="catalogue name (`ponder models`), hub id, local HF folder or .gguf file "
        "(default: qwen2.5-coder-0.5b-instruct, fetched into the cache on first use)",
    )
    served_model_name: str | None = Field(
        None, description="name clients use (default: derived from --model)"
    )
    engine: Literal["auto", "vllm", "llamacpp", "transformers", "upstream"] = Field(
        "auto",
        description="inference engine (auto: upstream when --upstream is given, vLLM when it "
        "is installed and a GPU is present, llama.cpp for a GGUF model on CPU, else "
        "transformers)",
    )
    upstreams: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="base URL of an OpenAI-compatible server to generate on (vllm serve, "
        "another ponder); repeatable (PONDER_UPSTREAMS: comma-separated)",
    )
    upstream_probe_seconds: float = Field(
        5.0, gt=0, description="upstream engine: how often each replica's /health is probed"
    )
    verifier: str | None = Field(
        None,
        description="model that judges whole answers for requests with search.verifier "
        "'judge' (its P(True)): catalogue name, hub id, local HF folder or .gguf file, loaded "
        "beside --model on the same engine, or served by --verifier-upstream",
    )
    verifier_upstreams: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="base URL of an OpenAI-compatible server that serves --verifier (its "
        "tokenizer is --verifier's); repeatable (PONDER_VERIFIER_UPSTREAMS: comma-separated)",
    )
    tokenizer: str | None = Field(
        None, description="upstream engine: the fleet's tokenizer, local (default: --model's)"
    )
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype (auto: float32 on CPU, the checkpoint's on GPU)"
    )
    device: str = Field("auto", description="torch device (auto: cuda when present, else cpu)")
    max_model_len: int | None = Field(
        None, ge=1, description="context length (default: the model's)"
    )
    kv_cache_tokens: int = Field(
        8192, ge=256, description="llama.cpp: KV cache cells shared by all running sequences"
    )
    prefix_cache_tokens: int = Field(
        4096,
        ge=0,
        description="tokens of finished sequences kept for reuse by later prompts (0: off)",
    )
    default_temperature: float = Field(
        0.3,
        ge=0,
        le=2,
        description="temperature of a chat or Responses request that sets none (OpenAI's is 1: "
        "the default model answers better cooler, README 'Accuracy')",
    )
    flash_attn: FlashAttention = Field(
        "auto",
        description="llama.cpp: flash attention (auto: llama.cpp's choice, on for CPU)",
    )
    kv_cache_dtype: KvCacheDtype = Field(
        "auto",
        description="llama.cpp: KV cache cells' type (auto: 16-bit floats; q8_0: 8-bit, half "
        "the memory, needs flash attention)",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="llama.cpp: CPU threads (default: the CPUs this process may use, from its "
        "CPU mask and its cgroup's cpu.max quota)",
    )
    threads_batch: int | None = Field(
        None,
        ge=1,
        description="llama.cpp: CPU threads for decode steps of more than one token (default: "
        "--threads)",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM: GPUs each layer is split over")
    pipeline_parallel_size: int = Field(
        1, ge=1, description="vLLM: pipeline stages (GPUs or nodes the layers are split over)"
    )
    # vLLM's external_launcher is for offline LLM use only: AsyncLLM cannot start with it
    distributed_executor_backend: Literal["mp", "ray", "uni"] | None = Field(
        None, description="vLLM: how workers are run (ray for several nodes; default: vLLM's)"
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="vLLM: share of GPU memory for weights and KV cache"
    )
    quantization: str | None = Field(
        None, description="vLLM: quantisation method (awq, gptq, fp8, ...; default: the model's)"
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="server log lines: text, or one JSON object per line"
    )
    uvicorn_log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="uvicorn's log level"
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API key clients must send as a Bearer token; repeatable "
        "(PONDER_API_KEYS: comma-separated); none: no auth",
    )
    api_key_file: str | None = Field(None, description="file with one API key per line")
    metrics_require_key: bool = Field(False, description="require an API key on /metrics too")
    max_concurrent_searches: int = Field(8, ge=1, description="searches running at once")
    max_queued_searches: int = Field(
        64, ge=0, description="searches waiting for a slot (429 beyond)"
    )
    max_request_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="largest request body accepted (413 beyond)"
    )
    max_n: int = Field(
        8,
        ge=1,
        description="cap on a chat request's n (400 beyond); a request of n choices takes n "
        "search slots (all of them when n is above --max-concurrent-searches)",
    )
    max_iterations: int | None = Field(None, ge=1, description="cap on search.iterations")
    max_branching: int | None = Field(None, ge=1, description="cap on search.branching")
    max_search_tokens: int | None = Field(None, ge=1, description="cap on search.max_search_tokens")
    max_search_seconds: float | None = Field(
        None, gt=0, description="cap on search.max_seconds (and the default when unset)"
    )
    drain_seconds: float = Field(
        30.0,
        ge=0,
        description="on SIGTERM, how long running searches may go on before they are cut "
        "short and answered with their best path so far",
    )
    reasoning_format: ReasoningFormat = Field(
        "auto",
        description="how chat requests ask the model to lay out its reasoning, unless a "
        "request names its own: plain (no system prompt), marco (Marco-o1's system prompt, "
        "answer after <Output>), think (<think>...</think>, answer after </think>), auto "
        f"(think for a thinking chat template, else {AUTO_FALLBACK})",
    )
    adaptive_parallel: bool = Field(
        True,
        description="a chat search that would run alone (no other search running or waiting, "
        "n 1, no search.parallel of its own) expands a round's iterations together "
        "(search.parallel = search.iterations, at most 64 rows a call): one search then fills "
        "more of the engine's batch (--no-adaptive-parallel: every search sequential)",
    )
    search_defaults: SearchOptions = Field(
        default_factory=SearchOptions,
        description="JSON object of search defaults, e.g. '{\"iterations\": 8}'",
    )

    @model_validator(mode="after")
    def _judge_is_named(self) -> ServerArgs:
        """A judge fleet is read with --verifier's tokenizer, and a default that asks for the
        judge needs one: both must name it."""
        if self.verifier_upstreams and self.verifier is None:
            raise ValueError("--verifier-upstream needs --verifier (the judge's model)")
        if self.search_defaults.verifier == "judge" and self.verifier is None:
            raise ValueError("search_defaults' verifier 'judge' needs --verifier (a judge model)")
        return self

    @model_validator(mode="after")
    def _quantised_cache_has_flash_attention(self) -> ServerArgs:
        """llama.cpp quantises the V cache only inside its flash-attention kernel: without it,
        the context would fail to load after the model, with a less helpful message."""
        if self.kv_cache_dtype != "auto" and self.flash_attn == "off":
            raise ValueError(
                f"kv_cache_dtype {self.kv_cache_dtype} needs flash attention "
                "(flash_attn auto or on)"
            )
        return self

    @field_validator("api_keys", "upstreams", "verifier_upstreams", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """``PONDER_API_KEYS=a,b`` is two keys (and the same for the upstream lists)."""
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value
