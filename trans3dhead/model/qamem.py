"""QAMem, query-aware memory (Trans3DHead, Jiang et al. 2026): the read of image features in
which every query owns its value projection.

Ordinary cross-attention pools ``memory @ W_v`` with one W_v shared by all queries. QAMem pools
the memory itself with each query's attention weights, then maps query i's pooled vector with a
projection W_i of its own (a grouped 1x1 convolution with one group per query, written here as a
batched matmul). With few memory tokens (a 4x4 map) this lets each landmark or parameter query
pull out what it needs from the same pooled features.

Shapes: queries (B, Q, D), memory (B, T, D) with T = h*w tokens; output (B, Q, D).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _attention_weights(q: torch.Tensor, k: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Softmax(q k^T / sqrt(d_head)) per head: q (B, Q, D), k (B, T, D) -> (B, H, Q, T)."""
    b, nq, d = q.shape
    dh = d // num_heads
    q = q.reshape(b, nq, num_heads, dh).transpose(1, 2)
    k = k.reshape(b, k.shape[1], num_heads, dh).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)


def _pool_heads(attn: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """attn (B, H, Q, T) and values (B, T, D) -> (B, Q, D), head h pooling channel slice h."""
    b, h, nq, t = attn.shape
    v = values.reshape(b, t, h, -1).transpose(1, 2)  # (B, H, T, D/H)
    return (attn @ v).transpose(1, 2).reshape(b, nq, -1)


class QAMemRead(nn.Module):
    """Cross-attention from queries to memory whose value projection belongs to each query."""

    def __init__(self, dim: int, num_queries: int, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        # One (D x D) projection and bias per query: a grouped 1x1 conv with num_queries groups.
        self.query_weight = nn.Parameter(torch.empty(num_queries, dim, dim))
        self.query_bias = nn.Parameter(torch.zeros(num_queries, dim))
        nn.init.xavier_uniform_(self.query_weight.view(num_queries * dim, dim))
        with torch.no_grad():
            self.query_weight.mul_(math.sqrt(num_queries))  # undo the fan-out of the flattened init

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        attn = _attention_weights(self.q_proj(queries), self.k_proj(memory + memory_pos), self.num_heads)
        pooled = _pool_heads(attn, memory)  # (B, Q, D), the memory itself, not a shared projection of it
        return torch.einsum("bqd,qde->bqe", pooled, self.query_weight) + self.query_bias


class SharedValueRead(nn.Module):
    """The ordinary cross-attention read (QAMem switched off): one value and output projection
    shared by all queries."""

    def __init__(self, dim: int, num_heads: int = 4):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor) -> torch.Tensor:
        attn = _attention_weights(self.q_proj(queries), self.k_proj(memory + memory_pos), self.num_heads)
        return self.out_proj(_pool_heads(attn, self.v_proj(memory)))
