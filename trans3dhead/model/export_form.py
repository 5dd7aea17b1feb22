"""The export form of the shipped networks: the same function as a trained Trans3DHeadPredictor
(or ReferenceMB05), rewritten from its parameters for onnxruntime at batch 1.

At batch 1 the decoder costs more in operators than in arithmetic (docs/results.md, "Export
speed"), so the export form keeps the arithmetic and drops operators:

* layer 0's query exchange depends only on learned constants (query content and position, the
  mean face's embedding), so its output and layer 0's QAMem queries are computed here once; its
  read becomes one matmul of a constant (H, Q, D) matrix with the memory tokens;
* every reshape has static sizes (-1 for the batch), so no Shape/Gather/Concat chain is exported;
* QAMem's per-query projections are one batched MatMul (Q, B, D) @ (Q, D, D), not an Einsum;
* keys are made straight in the (B, H, d_head, T) layout the attention needs from the conv's
  channel-major map; the attention scale, the position of the memory tokens, the crop size and
  the parameter de-normalisation are folded into weights and biases;
* the 68-landmark decode of the 62 parameters is two small matmuls (homogeneous mean shape).

Inputs and outputs are those of the source network: crops (B, 3, S, S) float32 BGR 0..255 ->
landmarks (B, 68, 3) package crop frame, pixels; params (B, 62) un-normalised; with a visibility
head also visibility (B, 68, 3) class probabilities. The folds change
only the rounding: onnx_parity / tests/test_export.py hold it within 1e-4 of the source network.
Built with no_grad from an eval-mode network; not for training.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trans3dhead.face_model.bfm import FaceModel
from trans3dhead.face_model.frames import ZERO_BASED_TO_PKG
from trans3dhead.model.backbone import PIXEL_MEAN, PIXEL_STD, MobileNetV1
from trans3dhead.model.trans3dhead import head_outputs, output_names_of


def _const(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone().contiguous(), requires_grad=False)


class LandmarkDecode(nn.Module):
    """(B, 62) un-normalised parameters -> (B, 68, 3) landmarks, package crop frame, pixels.

    FaceModel.landmarks_crop folded: shape = u + w @ alpha in homogeneous coordinates (B, 68, 4),
    then one matmul with the 3x4 pose whose y row is mirrored into the crop frame."""

    def __init__(self, face_model: FaceModel, crop_size: int):
        super().__init__()
        u, w = face_model.u_lm.double(), face_model.w_lm.double()  # (68, 3), (68, 3, K)
        n, k = u.shape[0], w.shape[-1]
        u_h = torch.cat([u, torch.ones(n, 1, dtype=u.dtype)], 1)  # (68, 4)
        w_h = torch.cat([w, torch.zeros(n, 1, k, dtype=w.dtype)], 1)  # (68, 4, K)
        self.num_points = n
        self.mean_shape = _const(u_h.reshape(-1).float())  # (68*4,)
        self.basis = _const(w_h.reshape(n * 4, k).T.float())  # (K, 68*4)
        self.row_sign = _const(torch.tensor([[1.0], [-1.0], [1.0]]))  # crop y = size - y_bfm
        self.offset = _const(torch.tensor([ZERO_BASED_TO_PKG - 1.0, crop_size + ZERO_BASED_TO_PKG, -1.0]))

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        shape = (params[:, 12:] @ self.basis + self.mean_shape).reshape(-1, self.num_points, 4)
        pose = params[:, :12].reshape(-1, 3, 4) * self.row_sign  # (B, 3, 4)
        return shape @ pose.transpose(1, 2) + self.offset


class ReferenceExportForm(nn.Module):
    """ReferenceMB05 with its parameter de-normalisation folded into fc_param and the fast decode."""

    def __init__(self, net: nn.Module):
        super().__init__()
        fm = net.face_model
        self.backbone: MobileNetV1 = net.backbone
        w, b = net.fc_param.weight.double(), net.fc_param.bias.double()
        std, mean = fm.param_std.double(), fm.param_mean.double()
        self.fc_weight = _const((w * std[:, None]).T.float())  # (C, 62)
        self.fc_bias = _const((b * std + mean).float())
        self.decode = LandmarkDecode(fm, net.crop_size)

    def forward(self, crops: torch.Tensor):
        feat = self.backbone((crops - PIXEL_MEAN) * (1.0 / PIXEL_STD))  # 1/128: exact, as the division
        params = feat.mean((2, 3)) @ self.fc_weight + self.fc_bias
        return self.decode(params), params


def _heads_cols(w: torch.Tensor, num_heads: int) -> torch.Tensor:
    """A Linear weight (D_out, D_in) -> per-head (H, D_in, d_head), so x @ it gives (.., H, N, d_head)."""
    d_out, d_in = w.shape
    return w.reshape(num_heads, d_out // num_heads, d_in).transpose(1, 2)


class _Layer(nn.Module):
    """One decoder layer after layer 0 (queries depend on the image)."""

    def __init__(self, layer: nn.Module, memory_pos: torch.Tensor, num_heads: int, num_queries: int,
                 qamem: bool):
        super().__init__()
        d = layer.norm1.normalized_shape[0]
        self.h, self.dh, self.q, self.d, self.qamem = num_heads, d // num_heads, num_queries, d, qamem
        scale = 1.0 / math.sqrt(self.dh)
        mha = layer.exchange.attn
        wq, wk, wv = mha.in_proj_weight.chunk(3)
        bq, bk, bv = mha.in_proj_bias.chunk(3)
        self.ex_qk_w = _const(torch.cat([wq * scale, wk]).T)  # (D, 2D): q scaled, then k
        self.ex_qk_b = _const(torch.cat([bq * scale, bk]))
        self.ex_v_w, self.ex_v_b = _const(wv.T), _const(bv)
        self.ex_o_w, self.ex_o_b = _const(mha.out_proj.weight.T), _const(mha.out_proj.bias)
        mask = None if layer.exchange.cross_branch else layer.exchange.attn_mask
        self.ex_mask = None if mask is None else _const(mask)
        read = layer.read
        self.rd_q_w, self.rd_q_b = _const(read.q_proj.weight.T * scale), _const(read.q_proj.bias * scale)
        # keys (B, H, dh, T) = Wk_h (H, dh, D) @ memory_t (B, 1, D, T) + (Wk_h pos_t + b_k)
        wk_h = read.k_proj.weight.reshape(num_heads, self.dh, d)
        self.rd_k_w = _const(wk_h)
        self.rd_k_b = _const(wk_h @ memory_pos[0].T + read.k_proj.bias.reshape(num_heads, self.dh, 1))
        if qamem:
            self.rd_w = _const(read.query_weight)  # (Q, D, D)
            self.read_bias = _const(read.query_bias)
        else:
            self.rd_v_w = _const(read.v_proj.weight.reshape(num_heads, self.dh, d))
            self.rd_v_b = _const(read.v_proj.bias.reshape(num_heads, self.dh, 1))
            self.rd_o_w, self.read_bias = _const(read.out_proj.weight.T), _const(read.out_proj.bias)
        self.norm1, self.norm2, self.norm3, self.ffn = layer.norm1, layer.norm2, layer.norm3, layer.ffn

    def split_heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """(B, N, H*dh) -> (B, H, N, dh)."""
        return x.reshape(-1, n, self.h, self.dh).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, Q, dh) -> (B, Q, D)."""
        return x.transpose(1, 2).reshape(-1, self.q, self.d)

    def exchange(self, x, pos):
        qk = (x + pos) @ self.ex_qk_w + self.ex_qk_b  # (B, Q, 2D)
        qk = qk.reshape(-1, self.q, 2 * self.h, self.dh).transpose(1, 2)  # (B, 2H, Q, dh)
        logits = qk[:, :self.h] @ qk[:, self.h:].transpose(-1, -2)
        if self.ex_mask is not None:
            logits = logits + self.ex_mask
        v = self.split_heads(x @ self.ex_v_w + self.ex_v_b, self.q)
        return self.merge_heads(torch.softmax(logits, -1) @ v) @ self.ex_o_w + self.ex_o_b

    def forward(self, x, pos, memory_t4, memory_heads, read_fn):
        x = self.norm1(x + self.exchange(x, pos))
        q = self.split_heads((x + pos) @ self.rd_q_w + self.rd_q_b, self.q)  # (B, H, Q, dh), scaled
        keys = self.rd_k_w @ memory_t4 + self.rd_k_b  # (B, H, dh, T)
        x = self.norm2(x + self.read_bias + read_fn(self, torch.softmax(q @ keys, -1), memory_t4, memory_heads))
        return self.norm3(x + self.ffn(x))


def _qamem_project(layer, attn, memory_t4, memory_heads):
    """attn (B, H, Q, T) pools the memory itself per head; query i's (D, D) projection as one
    batched MatMul over queries: (Q, B, D) @ (Q, D, D) (the bias is added by the caller)."""
    pooled = attn @ memory_heads  # (B, H, Q, dh)
    pooled = pooled.permute(2, 0, 1, 3).reshape(layer.q, -1, layer.d)  # (Q, B, D)
    return (pooled @ layer.rd_w).transpose(0, 1)


def _shared_value_project(layer, attn, memory_t4, memory_heads):
    values = (layer.rd_v_w @ memory_t4 + layer.rd_v_b).transpose(-1, -2)  # (B, H, T, dh)
    return layer.merge_heads(attn @ values) @ layer.rd_o_w


class Trans3DHeadExportForm(nn.Module):
    """A Trans3DHeadPredictor with layer 0's constants precomputed and static-size reshapes."""

    def __init__(self, predictor: nn.Module):
        super().__init__()
        model = predictor.model
        dec = model.decoder
        heads = dec.heads
        cfg = predictor.config
        if heads.param_embed.shape[0] == 0:
            raise ValueError("the export form needs the 3DMM branch (model.param_branch=true)")
        self.source = cfg.landmark_source
        self.branch_weight = float(cfg.branch_weight)
        self.marr = heads.marr
        self.num_lm = dec.num_landmarks
        self.backbone, self.input_proj = model.backbone, model.input_proj
        first = dec.layers[0]
        d = dec.query_pos.shape[1]
        h = first.exchange.attn.num_heads
        nq = dec.query_pos.shape[0]
        dh = d // h
        self.d, self.h, self.dh, self.nq = d, h, dh, nq
        self.read_fn = _qamem_project if cfg.qamem else _shared_value_project
        size = float(model.crop_size)
        self.crop_size = size
        mem_pos = model.memory_pos.detach()  # (1, T, D)
        self.num_tokens = mem_pos.shape[1]

        # Layer 0 from constants: its exchange output and its read's queries.
        mean_lm, mean_par = model.mean_lm[None], model.mean_params[None]  # crop units, normalised
        pos0 = dec.query_pos[None] + heads.embed(mean_lm, mean_par)  # (1, Q, D)
        x0 = dec.query_content[None]
        x1 = first.norm1(x0 + first.exchange(x0, pos0))  # (1, Q, D)
        q0 = first.read.q_proj(x1 + pos0)[0].reshape(nq, h, dh).transpose(0, 1) / math.sqrt(dh)  # (H, Q, dh)
        wk = first.read.k_proj.weight.reshape(h, dh, d)
        kb = wk @ mem_pos[0].T + first.read.k_proj.bias.reshape(h, dh, 1)  # (H, dh, T)
        self.l0 = _Layer(first, mem_pos, h, nq, cfg.qamem)  # its read projection, norms, FFN
        self.l0_residual = _const(x1[0] + self.l0.read_bias)  # layer 0's read adds its bias here
        self.l0_logit_w = _const(q0 @ wk)  # (H, Q, D): logits = it @ memory_t + bias
        self.l0_logit_b = _const(q0 @ kb)  # (H, Q, T)
        self.layers = nn.ModuleList(_Layer(layer, mem_pos, h, nq, cfg.qamem) for layer in dec.layers[1:])

        # MARR in pixels: heads scaled by the crop size, the embedding of lm / size - 0.5 folded.
        self.lm_head_w = _const(torch.stack([hd.weight.T for hd in heads.lm_heads]) * size)  # (K, D, 3)
        self.lm_head_b = _const(torch.stack([hd.bias for hd in heads.lm_heads]) * size)  # (K, 3)
        self.par_head_w = _const(torch.stack([hd.weight.T for hd in heads.param_heads]))  # (K, D, 1)
        self.par_head_b = _const(torch.stack([hd.bias for hd in heads.param_heads]))  # (K, 1)
        self.lm_embed_w = _const(heads.lm_embed.weight.T / size)  # (3, D)
        self.lm_embed_b = _const(heads.lm_embed.bias - 0.5 * heads.lm_embed.weight.sum(1))
        self.param_embed = _const(heads.param_embed)  # (P, D)
        self.query_pos = _const(dec.query_pos)
        self.mean_lm_px = _const(model.mean_lm * size)  # (68, 3)
        self.mean_params = _const(model.mean_params[:, None])  # (P, 1), normalised
        fm = model.face_model
        self.param_std, self.param_mean = _const(fm.param_std), _const(fm.param_mean)
        self.decode = LandmarkDecode(fm, model.crop_size) if self.source != "branch" else None
        self.visibility_head = model.visibility_head
        self.face_score_head = model.face_score_head

    def marr_step(self, k: int, x, lm, par):
        d_lm = x[:, :self.num_lm] @ self.lm_head_w[k] + self.lm_head_b[k]  # (B, 68, 3) pixels
        d_par = x[:, self.num_lm:] @ self.par_head_w[k] + self.par_head_b[k]  # (B, P, 1)
        if not self.marr:
            return d_lm, d_par
        return lm + d_lm, par + d_par

    def embed(self, lm, par):
        return self.query_pos + torch.cat([lm @ self.lm_embed_w + self.lm_embed_b, par * self.param_embed], 1)

    def forward(self, crops: torch.Tensor):
        feat = self.input_proj(self.backbone((crops - PIXEL_MEAN) * (1.0 / PIXEL_STD)))  # (B, D, h, w)
        memory_t4 = feat.reshape(-1, 1, self.d, self.num_tokens)  # (B, 1, D, T) channel-major tokens
        memory_heads = memory_t4.reshape(-1, self.h, self.dh, self.num_tokens).transpose(-1, -2)  # (B, H, T, dh)
        attn = torch.softmax(self.l0_logit_w @ memory_t4 + self.l0_logit_b, -1)  # (B, H, Q, T)
        x = self.l0.norm2(self.l0_residual + self.read_fn(self.l0, attn, memory_t4, memory_heads))
        x = self.l0.norm3(x + self.l0.ffn(x))
        lm, par = self.marr_step(0, x, self.mean_lm_px, self.mean_params)
        for k, layer in enumerate(self.layers, start=1):
            x = layer(x, self.embed(lm, par), memory_t4, memory_heads, self.read_fn)
            lm, par = self.marr_step(k, x, lm, par)
        params = par.reshape(-1, self.nq - self.num_lm) * self.param_std + self.param_mean
        if self.decode is not None:
            lm_3dmm = self.decode(params)
            w = self.branch_weight
            lm = lm_3dmm if self.source == "3dmm" else lm * w + lm_3dmm * (1.0 - w)
        return (lm, params, *head_outputs(x, self.visibility_head, self.face_score_head))

    @property
    def output_names(self) -> tuple[str, ...]:
        return output_names_of(self.visibility_head, self.face_score_head)


def export_form(net: nn.Module) -> nn.Module:
    """The export form of a shipped network kind (Trans3DHeadPredictor with its 3DMM branch,
    ReferenceMB05), or net itself for anything else."""
    from trans3dhead.model.reference import ReferenceMB05
    from trans3dhead.model.trans3dhead import Trans3DHeadPredictor

    with torch.no_grad():
        if isinstance(net, ReferenceMB05):
            return ReferenceExportForm(net.eval()).eval()
        if isinstance(net, Trans3DHeadPredictor) and net.model.decoder.heads.param_embed.shape[0]:
            return Trans3DHeadExportForm(net.eval()).eval()
    return net
