"""The Trans3DHead decoder: layers that update the landmark and 3DMM queries, the stack that
returns every layer's estimate, and the MARR update from the mean face.

One layer, for the union of the two branches' queries (68 landmark + 62 parameter = Q):
1. query exchange: one multi-head attention over all Q queries. Its L x L and P x P blocks are
   the self-attention within each branch, its off-diagonal blocks the cross-attention between
   branches; computing them in one softmax costs one operator instead of four at batch 1.
   ``cross_branch=False`` masks the off-diagonal blocks, so no information crosses.
2. image read: QAMem (or the shared-value read when ``qamem=False``).
3. a small feed-forward network. Post-norm residuals throughout, as in DETR's decoder.

MARR (multi-layer additive residual regression): the estimate starts from the mean face (mean
68 landmarks in the crop frame, the mean parameters, i.e. zeros when normalised); layer k adds
head_k(queries_k) to layer k-1's estimate. With ``marr=False`` each layer regresses the absolute
value head_k(queries_k). Every layer's estimate is returned (K first) and supervised.
"""
from __future__ import annotations

import torch
from torch import nn

from trans3dhead.model.qamem import QAMemRead, SharedValueRead


class QueryExchange(nn.Module):
    """Self-attention within branches + cross-attention between them, as one masked attention."""

    def __init__(self, dim: int, num_heads: int, num_landmarks: int, num_params: int, cross_branch: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        q = num_landmarks + num_params
        branch = torch.zeros(q, dtype=torch.long)
        branch[num_landmarks:] = 1
        blocked = branch[:, None] != branch[None, :]
        mask = torch.zeros(q, q).masked_fill(blocked, float("-inf")) if not cross_branch else torch.zeros(q, q)
        self.register_buffer("attn_mask", mask, persistent=False)
        self.cross_branch = cross_branch

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        qk = x + pos
        mask = None if self.cross_branch else self.attn_mask
        return self.attn(qk, qk, x, attn_mask=mask, need_weights=False)[0]


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_landmarks: int, num_params: int,
                 qamem: bool = True, cross_branch: bool = True, dropout: float = 0.0):
        super().__init__()
        nq = num_landmarks + num_params
        self.exchange = QueryExchange(dim, num_heads, num_landmarks, num_params, cross_branch)
        self.read = QAMemRead(dim, nq, num_heads) if qamem else SharedValueRead(dim, num_heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, query_pos, memory, memory_pos):
        x = self.norm1(x + self.drop(self.exchange(x, query_pos)))
        x = self.norm2(x + self.drop(self.read(x + query_pos, memory, memory_pos)))
        return self.norm3(x + self.drop(self.ffn(x)))


class MARRHeads(nn.Module):
    """Per-layer regression heads and the additive update of MARR.

    Landmark estimate: (B, 68, 3) in crop units (pixels / crop size, origin at the corner);
    parameter estimate: (B, 62) normalised. Heads start at zero, so layer 0's MARR estimate is the
    mean face. The current estimate is embedded back into the queries before each layer.
    """

    def __init__(self, dim: int, num_layers: int, num_landmarks: int, num_params: int, marr: bool = True):
        super().__init__()
        self.marr = marr
        self.num_landmarks = num_landmarks
        self.lm_heads = nn.ModuleList(nn.Linear(dim, 3) for _ in range(num_layers))
        self.param_heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(num_layers if num_params else 0))
        for head in [*self.lm_heads, *self.param_heads]:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.lm_embed = nn.Linear(3, dim)
        self.param_embed = nn.Parameter(torch.zeros(num_params, dim))

    def embed(self, lm: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """(B, 68, 3), (B, 62) -> (B, Q, D) query offsets carrying the current estimate."""
        if self.param_embed.shape[0] == 0:  # no 3DMM branch
            return self.lm_embed(lm - 0.5)
        return torch.cat([self.lm_embed(lm - 0.5), params[..., None] * self.param_embed], 1)

    def step(self, k: int, x: torch.Tensor, lm: torch.Tensor, params: torch.Tensor):
        d_lm = self.lm_heads[k](x[:, :self.num_landmarks])
        if self.param_embed.shape[0] == 0:  # no 3DMM branch: parameters stay at the mean
            return (lm + d_lm if self.marr else d_lm), params
        d_par = self.param_heads[k](x[:, self.num_landmarks:]).squeeze(-1)
        if self.marr:
            return lm + d_lm, params + d_par
        return d_lm, d_par


class Decoder(nn.Module):
    """K decoder layers with MARR heads; returns every layer's estimate."""

    def __init__(self, dim: int = 64, num_layers: int = 2, num_heads: int = 4, ffn_dim: int = 128,
                 num_landmarks: int = 68, num_params: int = 62, qamem: bool = True, cross_branch: bool = True,
                 marr: bool = True, dropout: float = 0.0):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.layers = nn.ModuleList(
            DecoderLayer(dim, num_heads, ffn_dim, num_landmarks, num_params, qamem, cross_branch, dropout)
            for _ in range(num_layers))
        self.heads = MARRHeads(dim, num_layers, num_landmarks, num_params, marr)
        self.query_content = nn.Parameter(torch.randn(num_landmarks + num_params, dim) * 0.02)
        self.query_pos = nn.Parameter(torch.randn(num_landmarks + num_params, dim) * 0.02)

    def forward(self, memory, memory_pos, mean_lm, mean_params):
        """memory (B, T, D), memory_pos (1, T, D), mean_lm (68, 3) crop units, mean_params (62,)
        normalised -> lm (K, B, 68, 3) crop units, params (K, B, 62) normalised, and the last layer's
        query states (B, Q, D) (the visibility head reads the landmark queries' rows)."""
        b = memory.shape[0]
        x = self.query_content.expand(b, -1, -1)
        lm = mean_lm.expand(b, -1, -1)
        params = mean_params.expand(b, -1)
        lms, pars = [], []
        for k, layer in enumerate(self.layers):
            pos = self.query_pos + self.heads.embed(lm, params)
            x = layer(x, pos, memory, memory_pos)
            lm, params = self.heads.step(k, x, lm, params)
            lms.append(lm)
            pars.append(params)
        return torch.stack(lms), torch.stack(pars), x
