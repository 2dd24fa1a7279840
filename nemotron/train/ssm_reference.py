"""Pure-PyTorch reference implementations of the mamba_ssm / causal_conv1d kernel functions that
Megatron-Core's ``MambaMixer`` (``megatron/core/ssm/mamba_mixer.py``) calls.

Each function has the signature and the semantics of the CUDA/Triton original, so it can stand in
for it where those kernels do not exist (CPU runs), and the GPU check uses them as the ground truth
against which the real kernels are validated. Everything is plain differentiable torch (autograd
gives the backward), computed in fp32 where the kernels accumulate in fp32 (fp64 when given fp64,
so ``torch.autograd.gradcheck`` can run on them), and returned in the dtype the kernels return.

- :func:`mamba_chunk_scan_combined` -- ``mamba_ssm.ops.triton.ssd_combined``: the chunked SSD scan.
- :func:`mamba_split_conv1d_scan_combined` -- same file: split ``zxbcdt``, causal conv, scan, and
  optionally gated RMSNorm and the output projection, in one call.
- :func:`causal_conv1d_fn` -- ``causal_conv1d.causal_conv1d_interface``: depthwise causal conv.
- :class:`RMSNormGated` / :func:`rmsnorm_fn` -- ``mamba_ssm.ops.triton.layernorm_gated``
  (``RMSNorm`` there): group-wise RMSNorm with an optional ``silu(z)`` gate.

Where the kernels have a quirk that a caller could observe, the reference follows the kernel and
says so next to the code (``seq_idx`` handling in particular).

Over 400 lines on purpose: one function per kernel the mixer calls, with the shared segsum/mask helpers; they are
imported together by cpu_compat and the GPU check, so they stay in one file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "RMSNormGated",
    "causal_conv1d_fn",
    "mamba_chunk_scan_combined",
    "mamba_split_conv1d_scan_combined",
    "rmsnorm_fn",
    "segsum",
]


def _acc_dtype(*tensors) -> torch.dtype:
    """fp32, the kernels' accumulation dtype -- or fp64 when an input is fp64 (gradcheck)."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def segsum(cumsum: torch.Tensor) -> torch.Tensor:
    """Pairwise log-decays ``cumsum[..., i] - cumsum[..., j]`` (shape ``(..., T, T)``).

    The kernels form the intra-chunk decay as a difference of the in-chunk cumulative sums (not
    the more stable masked cumsum of the SSD paper's listing, which costs T^3 memory) and clamp
    it at 0 before ``exp``. The clamp is a no-op on the causal part when ``A <= 0`` and it keeps
    the non-causal part (masked afterwards) from overflowing, so its gradient stays finite.
    """
    diff = cumsum[..., :, None] - cumsum[..., None, :]
    return diff.clamp(max=0.0)


def _process_dt(dt, dt_bias, dt_softplus, dt_limit, acc):
    """dt as the kernels' ``_chunk_cumsum_fwd`` makes it: fp32, + bias, softplus, clamp.

    The clamp is applied unconditionally, like the kernel: with the default limit (0, inf) a
    negative dt given without softplus becomes 0.
    """
    dt = dt.to(acc)
    if dt_bias is not None:
        dt = dt + dt_bias.to(acc)
    if dt_softplus:
        # F.softplus's threshold=20 is the kernel's `where(dt <= 20, softplus(dt), dt)`.
        dt = F.softplus(dt, threshold=20.0)
    return dt.clamp(min=dt_limit[0], max=dt_limit[1])


def mamba_chunk_scan_combined(
    x,
    dt,
    A,
    B,
    C,
    chunk_size,
    D=None,
    z=None,
    dt_bias=None,
    initial_states=None,
    seq_idx=None,
    cu_seqlens=None,
    dt_softplus=False,
    dt_limit=(0.0, float("inf")),
    return_final_states=False,
    return_varlen_states=False,
    state_dtype=None,
):
    """The Mamba-2 SSD scan, computed chunk by chunk like the Triton kernel.

    Shapes: x (b, l, h, p); dt (b, l, h); A (h,); B, C (b, l, g, n) with h % g == 0 (head ``i``
    reads group ``i // (h // g)``); D (h, p) or (h,); z (b, l, h, p); dt_bias (h,);
    initial_states (b, h, p, n); seq_idx (b, l) int; cu_seqlens (num_seqs + 1,), only read when
    ``return_varlen_states``.

    Recurrence: ``dt' = clamp(softplus?(dt + dt_bias), *dt_limit)``,
    ``h_t = exp(dt'_t A) h_{t-1} + dt'_t x_t B_t^T`` and ``y_t = h_t C_t + D x_t``, then
    ``y * silu(z)`` when z is given. With seq_idx, the state restarts wherever seq_idx changes;
    ``initial_states`` is the state of seq_idx 0 before position 0. That reading assumes
    non-decreasing ids (Megatron's are); for others this follows the kernel's masks exactly
    (same id within a chunk, the previous chunk's last id across chunks), not a restart rule.

    Returns ``out`` (b, l, h, p) in x's dtype; ``(out, final_states)`` with return_final_states;
    ``(out, varlen_states)`` / ``(out, final_states, varlen_states)`` with return_varlen_states.
    final_states (b, h, p, n) is the state after the last position; varlen_states
    (num_seqs, h, p, n) the state at the end of each cu_seqlens sequence. Both come in
    ``state_dtype`` if given, else C's dtype (what the kernel stores them in).
    ``state_dtype`` only exists in newer mamba_ssm; it changes nothing but that dtype here.
    """
    batch, seqlen, nheads, headdim = x.shape
    _, _, ngroups, dstate = B.shape
    if nheads % ngroups:
        raise ValueError(f"nheads ({nheads}) must be a multiple of ngroups ({ngroups})")
    if B.shape != (batch, seqlen, ngroups, dstate) or C.shape != B.shape:
        raise ValueError(f"B and C must have shape {(batch, seqlen, ngroups, dstate)}")
    if dt.shape != (batch, seqlen, nheads) or A.shape != (nheads,):
        raise ValueError("dt must be (batch, seqlen, nheads) and A (nheads,)")
    if z is not None and z.shape != x.shape:
        raise ValueError("z must have the shape of x")
    if D is not None and D.shape not in ((nheads, headdim), (nheads,)):
        raise ValueError("D must be (nheads, headdim) or (nheads,)")
    if seq_idx is not None and seq_idx.shape != (batch, seqlen):
        raise ValueError("seq_idx must be (batch, seqlen)")
    if initial_states is not None and initial_states.shape != (batch, nheads, headdim, dstate):
        raise ValueError("initial_states must be (batch, nheads, headdim, dstate)")
    if return_varlen_states:
        if cu_seqlens is None:
            raise ValueError("cu_seqlens must be provided if return_varlen_states is True")
        if batch != 1:
            # Upstream asserts the same: cu_seqlens indexes one packed row.
            raise NotImplementedError(
                "return_varlen_states with cu_seqlens is only supported for batch size 1"
            )

    ratio = nheads // ngroups
    nchunks = -(-seqlen // chunk_size)
    pad = nchunks * chunk_size - seqlen
    out_dtype = x.dtype
    states_out_dtype = state_dtype if state_dtype is not None else C.dtype

    # The padded tail of the last chunk gets dt = 0 (after bias/softplus/clamp, as the kernel
    # zeroes it): no decay and no input, so it neither changes the final state nor any output.
    acc = _acc_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states)
    dt = F.pad(_process_dt(dt, dt_bias, dt_softplus, dt_limit, acc), (0, 0, 0, pad))
    xf = F.pad(x.to(acc), (0, 0, 0, 0, 0, pad))
    Bf = F.pad(B.to(acc), (0, 0, 0, 0, 0, pad))
    Cf = F.pad(C.to(acc), (0, 0, 0, 0, 0, pad))

    # Heads as (group, head-in-group) so B and C are shared by the heads of a group without
    # being copied per head.
    xc = xf.reshape(batch, nchunks, chunk_size, ngroups, ratio, headdim)
    Bc = Bf.reshape(batch, nchunks, chunk_size, ngroups, dstate)
    Cc = Cf.reshape(batch, nchunks, chunk_size, ngroups, dstate)
    # (b, c, g, r, t): time last, the layout the cumsum and the decay matrices want.
    dtc = dt.reshape(batch, nchunks, chunk_size, ngroups, ratio).permute(0, 1, 3, 4, 2)
    dA_cs = torch.cumsum(dtc * A.to(acc).reshape(ngroups, ratio, 1), dim=-1)
    dA_last = dA_cs[..., -1]  # (b, c, g, r): total log-decay of each chunk

    # seq_idx, padded by repeating the last id so that the padded tail counts as the same
    # sequence (the kernel reads the last *real* position's id as the chunk's id).
    if seq_idx is None:
        seq = torch.zeros(batch, nchunks * chunk_size, dtype=torch.long, device=x.device)
    else:
        seq = seq_idx.long()
        if pad:
            seq = torch.cat([seq, seq[:, -1:].expand(batch, pad)], dim=1)
    seq = seq.reshape(batch, nchunks, chunk_size)
    seq_last = seq[:, :, -1]  # (b, c)
    # Id of the position just before each chunk; the kernel uses 0 before the first chunk, which
    # is what makes initial_states the state of seq_idx 0.
    seq_prev = F.pad(seq_last[:, :-1], (1, 0), value=0)

    # 1. Intra-chunk (diagonal blocks): y_i += sum_{j<=i, same seq} C_i.B_j exp(cs_i-cs_j) dt_j x_j
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=x.device).tril()
    same_seq = seq[:, :, :, None] == seq[:, :, None, :]  # (b, c, i, j)
    mask = (causal & same_seq)[:, :, None, None]  # (b, c, 1, 1, i, j)
    decay = torch.exp(segsum(dA_cs)) * mask  # (b, c, g, r, i, j)
    CB = torch.einsum("bcign,bcjgn->bcgij", Cc, Bc)
    weights = CB[:, :, :, None] * decay * dtc[..., None, :]
    y = torch.einsum("bcgrij,bcjgrp->bcigrp", weights, xc)

    # 2. Each chunk's own contribution to the state at its end. Only positions of the chunk's last
    # sequence count; the kernel also drops the chunk entirely when that id is negative (padding).
    state_mask = (seq == seq_last[..., None]) & (seq_last[..., None] >= 0)  # (b, c, t)
    state_w = torch.exp((dA_last[..., None] - dA_cs).clamp(max=0.0)) * dtc
    state_w = state_w * state_mask[:, :, None, None]
    chunk_states = torch.einsum("bcgrt,bctgn,bctgrp->bcgrpn", state_w, Bc, xc)

    # 3. Inter-chunk state passing: sequential over chunks (few of them). The carried state is
    # dropped when a chunk's last id differs from the previous chunk's.
    if initial_states is None:
        state = xf.new_zeros(batch, ngroups, ratio, headdim, dstate)
    else:
        state = initial_states.to(acc).reshape(batch, ngroups, ratio, headdim, dstate)
    carry = torch.exp(dA_last) * (seq_last == seq_prev)[..., None, None]  # (b, c, g, r)
    entering = []
    for c in range(nchunks):
        entering.append(state)
        state = carry[:, c, ..., None, None] * state + chunk_states[:, c]
    final_state = state
    entering = torch.stack(entering, dim=1)  # (b, c, g, r, p, n): state before each chunk

    # 4. Inter-chunk output (off-diagonal blocks): the entering state, decayed to position i, read
    # by C_i -- for positions that continue the sequence the entering state belongs to.
    off_w = torch.exp(dA_cs) * (seq == seq_prev[..., None])[:, :, None, None]  # (b, c, g, r, t)
    y = y + torch.einsum("bcign,bcgrpn,bcgri->bcigrp", Cc, entering, off_w)

    y = y.reshape(batch, nchunks * chunk_size, nheads, headdim)[:, :seqlen]
    if D is not None:
        Df = D.to(acc)
        y = y + x.to(acc) * (Df[:, None] if Df.dim() == 1 else Df)
    if z is not None:
        y = y * F.silu(z.to(acc))
    out = y.to(out_dtype)

    final_states = final_state.reshape(batch, nheads, headdim, dstate).to(states_out_dtype)
    if not return_varlen_states:
        return (out, final_states) if return_final_states else out

    varlen_states = _varlen_states(
        cu_seqlens, chunk_size, dA_cs[0], dtc[0], Bc[0], xc[0], entering[0]
    ).to(states_out_dtype)
    if return_final_states:
        return out, final_states, varlen_states
    return out, varlen_states


def _varlen_states(cu_seqlens, chunk_size, dA_cs, dt, B, x, entering):
    """State at the end of each ``[cu_seqlens[i], cu_seqlens[i+1])`` sequence of one packed row.

    Like the kernel's ``chunk_state_varlen``: the sequence's positions inside the chunk where it
    ends, plus that chunk's entering state when the sequence started before the chunk. The
    entering state is the scan's, so it is only the sequence's own state when seq_idx kept the
    previous sequences out of it (upstream requires seq_idx with cu_seqlens for the same reason).
    Shapes (no batch dim): dA_cs, dt (c, g, r, t); B (c, t, g, n); x (c, t, g, r, p);
    entering (c, g, r, p, n). Returns (num_seqs, h, p, n) fp32.
    """
    bounds = [int(v) for v in cu_seqlens.tolist()]
    states = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        c = (end - 1) // chunk_size
        first = max(start - c * chunk_size, 0)
        last = end - 1 - c * chunk_size
        cs = dA_cs[c, ..., first : last + 1]  # (g, r, k)
        w = torch.exp((cs[..., -1:] - cs).clamp(max=0.0)) * dt[c, ..., first : last + 1]
        state = torch.einsum(
            "grk,kgn,kgrp->grpn", w, B[c, first : last + 1], x[c, first : last + 1]
        )
        if start < c * chunk_size:
            state = state + entering[c] * torch.exp(cs[..., -1])[..., None, None]
        states.append(state.reshape(-1, *state.shape[-2:]))
    return torch.stack(states)


def causal_conv1d_fn(
    x,
    weight,
    bias=None,
    seq_idx=None,
    initial_states=None,
    return_final_states=False,
    final_states_out=None,
    activation=None,
):
    """Depthwise causal conv: ``out[:, d, t] = bias[d] + sum_k weight[d, w-1-k] * x[:, d, t-k]``.

    x (b, d, l); weight (d, w); bias (d,); seq_idx (b, l) int; initial_states (b, d, w-1), the
    inputs before position 0. With seq_idx, a tap only reads positions of the same sequence (the
    conv restarts at every change of id), and positions with a negative id (padding) output 0
    without bias or activation, as in the CUDA kernel. ``activation`` None, "silu" or "swish".

    Returns ``out`` (b, d, l) in x's dtype, or ``(out, final_states)`` with return_final_states:
    the last w-1 inputs (initial_states in front, zeros if still short), (b, d, w-1), written into
    ``final_states_out`` when given. Like upstream, seq_idx excludes initial_states and
    return_final_states.
    """
    if activation not in (None, "silu", "swish"):
        raise NotImplementedError("activation must be None, silu, or swish")
    if seq_idx is not None and initial_states is not None:
        raise ValueError("initial_states must be None if seq_idx is not None")
    if seq_idx is not None and return_final_states:
        raise ValueError("If seq_idx is not None, we don't return final_states_out")
    batch, dim, seqlen = x.shape
    width = weight.shape[1]

    acc = _acc_dtype(x, weight, bias, initial_states)
    xf = x.to(acc)
    if initial_states is None:
        history = xf.new_zeros(batch, dim, width - 1)
    else:
        history = initial_states.to(acc)
    full = torch.cat([history, xf], dim=-1)  # (b, d, w-1+l): index t+w-1 is position t

    out = xf.new_zeros(batch, dim, seqlen)
    if bias is not None:
        out = out + bias.to(acc)[:, None]
    if seq_idx is not None:
        # Positions before 0 get id -1, so they never match a real sequence.
        seq = F.pad(seq_idx.long(), (width - 1, 0), value=-1)
        cur = seq[:, width - 1 :]
    # Weight column j multiplies the input (w-1-j) steps back; column w-1 the current one.
    for j in range(width):
        tap = full[..., j : j + seqlen] * weight[:, j].to(acc)[:, None]
        if seq_idx is not None:
            tap = tap * (seq[:, j : j + seqlen] == cur)[:, None]
        out = out + tap
    if activation is not None:
        out = F.silu(out)
    if seq_idx is not None:
        out = out * (cur >= 0)[:, None]
    out = out.to(x.dtype)
    if not return_final_states:
        return out

    # `full` already starts with w-1 columns of history (zeros without initial_states), so its
    # tail is upstream's left-zero-padded "last w-1 inputs" even when l < w-1.
    final_states = full[..., full.shape[-1] - (width - 1) :].to(x.dtype)
    if final_states_out is not None:
        final_states_out.copy_(final_states)
        final_states = final_states_out
    return out, final_states


def _swiglu(xy):
    """``silu(x) * y`` for the two halves of the last dim (mamba_ssm's ``_swiglu_fwd``)."""
    x, y = xy.to(_acc_dtype(xy)).chunk(2, dim=-1)
    return (F.silu(x) * y).to(xy.dtype)


def mamba_split_conv1d_scan_combined(
    zxbcdt,
    conv1d_weight,
    conv1d_bias,
    dt_bias,
    A,
    D,
    chunk_size,
    initial_states=None,
    seq_idx=None,
    dt_limit=(0.0, float("inf")),
    return_final_states=False,
    activation="silu",
    rmsnorm_weight=None,
    rmsnorm_eps=1e-6,
    outproj_weight=None,
    outproj_bias=None,
    headdim=None,
    ngroups=1,
    norm_before_gate=True,
    state_dtype=None,
):
    """Split ``zxbcdt``, conv ``xBC``, scan, then gate/norm and optionally project.

    zxbcdt (b, l, 2*d_nonssm + 2*dim + 2*ngroups*dstate + nheads) is split along the last dim as
    ``[zx0 (2*d_nonssm), z (dim), xBC (dim + 2*ngroups*dstate), dt (nheads)]``, dim = nheads *
    headdim; Megatron passes d_nonssm = 0. dstate comes from conv1d_weight
    (dim + 2*ngroups*dstate, width). D (nheads, headdim), or (nheads,) with ``headdim`` given.
    xBC goes through :func:`causal_conv1d_fn` (with seq_idx), then x, B, C through
    :func:`mamba_chunk_scan_combined` with ``dt_softplus=True``. Without rmsnorm_weight the scan
    gates with ``silu(z)``; with it the ungated scan output goes through the gated RMSNorm with
    ``group_size = dim // ngroups``. A non-empty zx0 contributes ``silu(zx0[:d]) * zx0[d:]`` in
    front of the result. outproj_weight/bias, when given, are applied last.

    Returns ``out`` (b, l, d_nonssm + dim), or (b, l, out_dim) after the projection; with
    return_final_states ``(out, final_states)``, final_states (b, nheads, headdim, dstate).
    """
    if activation not in (None, "silu", "swish"):
        raise NotImplementedError("activation must be None, silu, or swish")
    if D.dim() == 1:
        if headdim is None:
            raise ValueError("headdim must be passed when D is 1-D")
        (nheads,) = D.shape
    else:
        nheads, headdim = D.shape
    batch, seqlen, width_in = zxbcdt.shape
    dim = nheads * headdim
    if nheads % ngroups:
        raise ValueError(f"nheads ({nheads}) must be a multiple of ngroups ({ngroups})")
    dstate = (conv1d_weight.shape[0] - dim) // ngroups // 2
    d_nonssm = (width_in - 2 * dim - 2 * ngroups * dstate - nheads) // 2
    if d_nonssm < 0 or width_in != 2 * d_nonssm + 2 * dim + 2 * ngroups * dstate + nheads:
        raise ValueError(f"zxbcdt's last dim {width_in} does not split as [zx0, z, xBC, dt]")
    if dt_bias.shape != (nheads,) or A.shape != (nheads,):
        raise ValueError("dt_bias and A must be (nheads,)")
    if rmsnorm_weight is not None and rmsnorm_weight.shape != (dim,):
        raise ValueError("rmsnorm_weight must be (dim,)")
    if outproj_weight is None and outproj_bias is not None:
        raise ValueError("outproj_bias without outproj_weight")

    zx0, z, xBC, dt = torch.split(
        zxbcdt, [2 * d_nonssm, dim, dim + 2 * ngroups * dstate, nheads], dim=-1
    )
    xBC = causal_conv1d_fn(
        xBC.transpose(1, 2), conv1d_weight, conv1d_bias, seq_idx=seq_idx, activation=activation
    ).transpose(1, 2)
    x, B, C = torch.split(xBC, [dim, ngroups * dstate, ngroups * dstate], dim=-1)
    x = x.reshape(batch, seqlen, nheads, headdim)
    B = B.reshape(batch, seqlen, ngroups, dstate)
    C = C.reshape(batch, seqlen, ngroups, dstate)
    z = z.reshape(batch, seqlen, nheads, headdim)

    out, final_states = mamba_chunk_scan_combined(
        x,
        dt,
        A,
        B,
        C,
        chunk_size,
        D=D,
        z=z if rmsnorm_weight is None else None,
        dt_bias=dt_bias,
        initial_states=initial_states,
        seq_idx=seq_idx,
        dt_softplus=True,
        dt_limit=dt_limit,
        return_final_states=True,
        state_dtype=state_dtype,
    )
    out = out.reshape(batch, seqlen, dim)
    if rmsnorm_weight is not None:
        out = rmsnorm_fn(
            out,
            rmsnorm_weight,
            None,
            z=z.reshape(batch, seqlen, dim),
            eps=rmsnorm_eps,
            group_size=dim // ngroups,
            norm_before_gate=norm_before_gate,
        )
    if d_nonssm > 0:
        out = torch.cat([_swiglu(zx0).to(out.dtype), out], dim=-1)
    if outproj_weight is not None:
        out = F.linear(out, outproj_weight, outproj_bias)
    return (out, final_states) if return_final_states else out


def rmsnorm_fn(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
    """Gated RMSNorm over the last dim, in groups of ``group_size`` (None: one group).

    ``norm(x) * silu(z)`` if norm_before_gate, else ``norm(x * silu(z))``; norm(v) =
    ``v / sqrt(mean_group(v^2) + eps) * weight (+ bias)``. Computed in fp32, returned in x's dtype.
    """
    hidden = x.shape[-1]
    group_size = hidden if group_size is None else group_size
    if hidden % group_size:
        raise ValueError(f"hidden size {hidden} is not a multiple of group_size {group_size}")
    if z is not None and z.shape != x.shape:
        raise ValueError("z must have the shape of x")
    acc = _acc_dtype(x, weight, bias, z)
    xf = x.to(acc)
    if z is not None and not norm_before_gate:
        xf = xf * F.silu(z.to(acc))
    grouped = xf.reshape(*xf.shape[:-1], hidden // group_size, group_size)
    rstd = torch.rsqrt(grouped.square().mean(dim=-1, keepdim=True) + eps)
    out = (grouped * rstd).reshape(xf.shape) * weight.to(acc)
    if bias is not None:
        out = out + bias.to(acc)
    if z is not None and norm_before_gate:
        out = out * F.silu(z.to(acc))
    return out.to(x.dtype)


class RMSNormGated(torch.nn.Module):
    """``mamba_ssm.ops.triton.layernorm_gated.RMSNorm``: weight (ones), no bias, optional gate.

    ``group_size=None`` is one group over the whole hidden size. ``forward(x, z=None)`` is
    :func:`rmsnorm_fn` with this module's eps, group_size and norm_before_gate.
    """

    def __init__(
        self, hidden_size, eps=1e-5, group_size=None, norm_before_gate=True, device=None, dtype=None
    ):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.empty(hidden_size, device=device, dtype=dtype))
        # Registered (as None) like upstream, so code that reads self.bias keeps working.
        self.register_parameter("bias", None)
        self.group_size = group_size
        self.norm_before_gate = norm_before_gate
        self.reset_parameters()

    def reset_parameters(self):
        torch.nn.init.ones_(self.weight)

    def forward(self, x, z=None):
        return rmsnorm_fn(
            x,
            self.weight,
            self.bias,
            z=z,
            eps=self.eps,
            group_size=self.group_size,
            norm_before_gate=self.norm_before_gate,
        )
