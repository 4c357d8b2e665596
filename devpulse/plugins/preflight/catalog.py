"""The model catalog of the product page's workloads, computed by the estimator.

Architecture parameters are the models' published configurations (their `config.json` on
the Hugging Face hub: layer count, attention and KV heads, head size, vocabulary, context);
weights per quantization come from the parameter count times llama.cpp's bits per weight.
No memory total is typed in: every figure is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

from devpulse.plugins.preflight.estimator import Architecture

# Average bits per weight of llama.cpp quantizations (Q4_K_M mixes 4- and 6-bit blocks).
BITS_PER_WEIGHT = {"Q4_K_M": 4.85, "Q8_0": 8.5, "F16": 16.0}


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    ollama: str
    params_b: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    embedding: int
    vocab: int
    context_length: int

    def architecture(self, quant: str) -> Architecture:
        return Architecture(
            name=self.ollama,
            arch="catalog",
            layers=self.layers,
            kv_heads=self.kv_heads,
            key_length=self.head_dim,
            value_length=self.head_dim,
            embedding=self.embedding,
            vocab=self.vocab,
            context_length=self.context_length,
            weights_bytes=int(self.params_b * 1e9 * BITS_PER_WEIGHT[quant] / 8),
        )


WORKLOADS: dict[str, tuple[str, list[CatalogModel]]] = {
    "frontier_reasoning": (
        "frontier-class reasoning, ~19 GB",
        [
            CatalogModel("Qwen3 32B", "qwen3:32b", 32.8, 64, 64, 8, 128, 5120, 151936, 40960),
            CatalogModel(
                "DeepSeek R1 Distill Qwen 32B",
                "deepseek-r1:32b",
                32.8,
                64,
                40,
                8,
                128,
                5120,
                152064,
                131072,
            ),
        ],
    ),
    "volume": (
        "volume calls, ~5.5 GB",
        [
            CatalogModel("Qwen3 8B", "qwen3:8b", 8.2, 36, 32, 8, 128, 4096, 151936, 40960),
            CatalogModel("Llama 3.1 8B", "llama3.1:8b", 8.03, 32, 32, 8, 128, 4096, 128256, 131072),
        ],
    ),
    "long_context": (
        "long context, ~42 GB",
        [
            CatalogModel(
                "Llama 3.3 70B", "llama3.3:70b", 70.6, 80, 64, 8, 128, 8192, 128256, 131072
            ),
        ],
    ),
    "edge": (
        "edge, ~3 GB",
        [
            CatalogModel("Qwen3 4B", "qwen3:4b", 4.02, 36, 32, 8, 128, 2560, 151936, 40960),
            CatalogModel("Llama 3.2 3B", "llama3.2:3b", 3.21, 28, 24, 8, 128, 3072, 128256, 131072),
        ],
    ),
}
