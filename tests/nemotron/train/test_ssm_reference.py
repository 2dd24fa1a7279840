"""The pure-PyTorch Mamba kernels against naive step-by-step recurrences written out here.

Every reference is computed in float64 from the same inputs; the implementations run in fp32
(measured max abs errors are around 1e-6, the tolerances leave some room: ATOL = 1e-5 on O(1)
values). The naive recurrences are deliberately the textbook form -- a python loop over time --
so that they share no code, and no chunking, with the implementation under test.

Over 400 lines on purpose: each kernel against its naive recurrence, case by case; one file per kernel would
repeat the recurrences.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nemotron.train.ssm_reference import (
    RMSNormGated,
    causal_conv1d_fn,
    mamba_chunk_scan_combined,
    mamba_split_conv1d_scan_combined,
    rmsnorm_fn,
)

ATOL = 1e-5
RTOL = 1e-5


def assert_close(actual, expected, atol=ATOL, rtol=RTOL):
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=rtol)


# --------------------------------------------------------------------------- naive references


def naive_dt(dt, dt_bias=None, dt_softplus=False, dt_limit=(0.0, float("inf"))):
    dt = dt.double()
    if dt_bias is not None:
        dt = dt + dt_bias.double()
    if dt_softplus:
        dt = torch.log1p(torch.exp(dt))
    return dt.clamp(dt_limit[0], dt_limit[1])


def naive_scan(x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False,
               dt_limit=(0.0, float("inf")), initial_states=None, seq_idx=None):
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T ;  y_t = h_t C_t + D x_t ;  y *= silu(z).

    With seq_idx the state is zeroed whenever the id differs from the previous position's (the
    initial state belongs to id 0). Returns (y, final state), float64.
    """
    batch, seqlen, nheads, headdim = x.shape
    ngroups, dstate = B.shape[2], B.shape[3]
    ratio = nheads // ngroups
    x, A, B, C = (t.double() for t in (x, A, B, C))
    dt = naive_dt(dt, dt_bias, dt_softplus, dt_limit)
    if initial_states is None:
        state = torch.zeros(batch, nheads, headdim, dstate, dtype=torch.float64)
    else:
        state = initial_states.double().clone()
    ys = []
    prev = torch.zeros(batch, dtype=torch.long)
    for t in range(seqlen):
        if seq_idx is not None:
            restart = seq_idx[:, t].long() != prev
            state = torch.where(restart[:, None, None, None], torch.zeros_like(state), state)
            prev = seq_idx[:, t].long()
        heads, outs = [], []  # lists, not in-place writes, so autograd can differentiate this
        for hd in range(nheads):
            gi = hd // ratio
            decay = torch.exp(dt[:, t, hd] * A[hd])[:, None, None]
            inp = dt[:, t, hd, None, None] * x[:, t, hd, :, None] * B[:, t, gi, None, :]
            heads.append(decay * state[:, hd] + inp)
            outs.append((heads[-1] * C[:, t, gi, None, :]).sum(-1))
        state = torch.stack(heads, dim=1)
        y_t = torch.stack(outs, dim=1)
        if D is not None:
            Dd = D.double()
            y_t = y_t + x[:, t] * (Dd[:, None] if Dd.dim() == 1 else Dd)
        if z is not None:
            y_t = y_t * F.silu(z[:, t].double())
        ys.append(y_t)
    return torch.stack(ys, dim=1), state


def naive_conv(x, weight, bias=None, seq_idx=None, initial_states=None, activation=None):
    """out[d, t] = bias[d] + sum_k weight[d, w-1-k] x[d, t-k], taps restricted to t's sequence."""
    batch, dim, seqlen = x.shape
    width = weight.shape[1]
    x, weight = x.double(), weight.double()
    hist = (torch.zeros(batch, dim, width - 1, dtype=torch.float64) if initial_states is None
            else initial_states.double())
    rows = []
    for b in range(batch):
        cols = []
        for t in range(seqlen):
            acc = torch.zeros(dim, dtype=torch.float64)
            if bias is not None:
                acc = acc + bias.double()
            for k in range(width):
                s = t - k
                if seq_idx is not None and (s < 0 or seq_idx[b, s] != seq_idx[b, t]):
                    continue
                val = x[b, :, s] if s >= 0 else hist[b, :, width - 1 + s]
                acc = acc + weight[:, width - 1 - k] * val
            if activation in ("silu", "swish"):
                acc = F.silu(acc)
            if seq_idx is not None and seq_idx[b, t] < 0:
                acc = torch.zeros_like(acc)
            cols.append(acc)
        rows.append(torch.stack(cols, dim=-1))
    return torch.stack(rows)


def naive_rmsnorm(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
    x = x.double()
    if z is not None and not norm_before_gate:
        x = x * F.silu(z.double())
    gs = group_size or x.shape[-1]
    parts = [x[..., i:i + gs] for i in range(0, x.shape[-1], gs)]
    out = torch.cat([p / torch.sqrt(p.pow(2).mean(-1, keepdim=True) + eps) for p in parts], -1)
    out = out * weight.double()
    if z is not None and norm_before_gate:
        out = out * F.silu(z.double())
    return out


def scan_inputs(batch=2, seqlen=37, nheads=4, headdim=3, ngroups=2, dstate=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(batch, seqlen, nheads, headdim, generator=g),
        dt=torch.rand(batch, seqlen, nheads, generator=g) * 0.5 + 0.05,
        A=-(torch.rand(nheads, generator=g) + 0.3),
        B=torch.randn(batch, seqlen, ngroups, dstate, generator=g),
        C=torch.randn(batch, seqlen, ngroups, dstate, generator=g),
    )


# --------------------------------------------------------------------------- chunk scan


@pytest.mark.parametrize(
    "seqlen,chunk,nheads,ngroups,d_shape",
    [
        (37, 16, 4, 2, "h"),    # not a multiple of the chunk, groups shared by 2 heads
        (64, 16, 4, 1, "hp"),   # exact multiple, one group for all heads, D per channel
        (5, 16, 2, 2, None),    # shorter than one chunk, one head per group, no D
        (37, 8, 6, 3, "hp"),
    ],
)
def test_chunk_scan_matches_recurrence(seqlen, chunk, nheads, ngroups, d_shape):
    inp = scan_inputs(seqlen=seqlen, nheads=nheads, ngroups=ngroups)
    headdim = inp["x"].shape[-1]
    D = {"h": torch.randn(nheads), "hp": torch.randn(nheads, headdim), None: None}[d_shape]
    out = mamba_chunk_scan_combined(**inp, chunk_size=chunk, D=D)
    ref, _ = naive_scan(**inp, D=D)
    assert out.shape == inp["x"].shape and out.dtype == torch.float32
    assert_close(out, ref)


def test_chunk_scan_z_gate_dt_softplus_bias_and_limit():
    inp = scan_inputs()
    inp["dt"] = torch.randn_like(inp["dt"])  # raw dt, as the mixer passes it before softplus
    z = torch.randn_like(inp["x"])
    dt_bias = torch.randn(4) * 0.5
    for limit in [(0.0, float("inf")), (0.2, 0.9)]:
        kw = dict(D=torch.randn(4), z=z, dt_bias=dt_bias, dt_softplus=True, dt_limit=limit)
        out = mamba_chunk_scan_combined(**inp, chunk_size=16, **kw)
        ref, _ = naive_scan(**inp, **kw)
        assert_close(out, ref)
    # Without softplus the default limit still clamps: negative dt counts as 0 (the kernel's clamp).
    out = mamba_chunk_scan_combined(**inp, chunk_size=16)
    ref, _ = naive_scan(**{**inp, "dt": inp["dt"].clamp(min=0)})
    assert_close(out, ref)


def test_chunk_scan_initial_and_final_states():
    inp = scan_inputs()
    init = torch.randn(2, 4, 3, 5)
    D = torch.randn(4)
    out, final = mamba_chunk_scan_combined(**inp, chunk_size=16, D=D, initial_states=init,
                                           return_final_states=True)
    ref, ref_final = naive_scan(**inp, D=D, initial_states=init)
    assert final.shape == init.shape and final.dtype == torch.float32
    assert_close(out, ref)
    assert_close(final, ref_final)
    # Splitting a sequence in two and feeding the first half's final state to the second half
    # gives the same as the whole sequence (chunking and state passing agree).
    first = {k: v[:, :20] for k, v in inp.items() if k != "A"} | {"A": inp["A"]}
    second = {k: v[:, 20:] for k, v in inp.items() if k != "A"} | {"A": inp["A"]}
    whole, whole_final = mamba_chunk_scan_combined(**inp, chunk_size=16, return_final_states=True)
    y1, s1 = mamba_chunk_scan_combined(**first, chunk_size=16, return_final_states=True)
    y2, s2 = mamba_chunk_scan_combined(**second, chunk_size=16, initial_states=s1,
                                       return_final_states=True)
    assert_close(torch.cat([y1, y2], dim=1), whole)
    assert_close(s2, whole_final)


def _pack(a, b):
    """Concatenate two inputs along time and build the matching seq_idx (0 for a, 1 for b)."""
    packed = {k: (torch.cat([a[k], b[k]], dim=1) if k != "A" else a[k]) for k in a}
    la, lb = a["x"].shape[1], b["x"].shape[1]
    seq_idx = torch.cat([torch.zeros(1, la), torch.ones(1, lb)], dim=1).to(torch.int32)
    return packed, seq_idx


@pytest.mark.parametrize("len_a,len_b", [(21, 27), (16, 21), (3, 40)])
def test_chunk_scan_seq_idx_restarts_the_state(len_a, len_b):
    # (21, 27): the boundary falls inside a chunk; (16, 21): exactly on a chunk boundary;
    # (3, 40): B spans several chunks after a short A.
    a = scan_inputs(batch=1, seqlen=len_a, seed=1)
    b = scan_inputs(batch=1, seqlen=len_b, seed=2)
    b["A"] = a["A"]
    packed, seq_idx = _pack(a, b)
    D = torch.randn(4, 3)
    z = torch.randn_like(packed["x"])
    kw = dict(chunk_size=16, D=D, dt_softplus=True, dt_bias=torch.randn(4) * 0.3)
    out, final = mamba_chunk_scan_combined(**packed, z=z, seq_idx=seq_idx,
                                           return_final_states=True, **kw)
    alone_a = mamba_chunk_scan_combined(**a, z=z[:, :len_a], **kw)
    alone_b, final_b = mamba_chunk_scan_combined(**b, z=z[:, len_a:], return_final_states=True,
                                                 **kw)
    assert_close(out[:, :len_a], alone_a)
    assert_close(out[:, len_a:], alone_b)
    assert_close(final, final_b)
    ref, ref_final = naive_scan(**packed, z=z, seq_idx=seq_idx, D=D, dt_softplus=True,
                                dt_bias=kw["dt_bias"])
    assert_close(out, ref)
    assert_close(final, ref_final)
    # The check means something: without seq_idx, A's state leaks into B's outputs.
    leaky = mamba_chunk_scan_combined(**packed, z=z, **kw)
    assert (leaky[:, len_a:] - alone_b).abs().max() > 1e-2


def test_chunk_scan_seq_idx_in_batch_with_initial_states():
    # Row 0 is one sequence continuing initial_states; row 1 restarts at position 10, so only its
    # first sequence (id 0) sees the initial state.
    inp = scan_inputs(batch=2, seqlen=37)
    seq_idx = torch.zeros(2, 37, dtype=torch.int32)
    seq_idx[1, 10:] = 1
    init = torch.randn(2, 4, 3, 5)
    out, final = mamba_chunk_scan_combined(**inp, chunk_size=16, seq_idx=seq_idx,
                                           initial_states=init, return_final_states=True)
    ref, ref_final = naive_scan(**inp, seq_idx=seq_idx, initial_states=init)
    assert_close(out, ref)
    assert_close(final, ref_final)


def test_chunk_scan_varlen_states_are_each_sequences_final_state():
    lens = [21, 11, 16, 9]  # ends mid-chunk, inside one chunk, on a chunk boundary, last
    parts = [scan_inputs(batch=1, seqlen=n, seed=10 + i) for i, n in enumerate(lens)]
    for p in parts[1:]:
        p["A"] = parts[0]["A"]
    packed = {k: (torch.cat([p[k] for p in parts], dim=1) if k != "A" else parts[0]["A"])
              for k in parts[0]}
    seq_idx = torch.cat([torch.full((1, n), i) for i, n in enumerate(lens)], dim=1).to(torch.int32)
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int32)
    out, final, varlen = mamba_chunk_scan_combined(
        **packed, chunk_size=16, seq_idx=seq_idx, cu_seqlens=cu,
        return_final_states=True, return_varlen_states=True)
    assert varlen.shape == (len(lens), 4, 3, 5)
    for i, p in enumerate(parts):
        _, alone_final = naive_scan(**p)
        assert_close(varlen[i], alone_final[0])
    assert_close(final, varlen[-1:])
    out2, varlen2 = mamba_chunk_scan_combined(**packed, chunk_size=16, seq_idx=seq_idx,
                                              cu_seqlens=cu, return_varlen_states=True)
    assert torch.equal(out2, out) and torch.equal(varlen2, varlen)
    with pytest.raises(NotImplementedError, match="batch size 1"):
        mamba_chunk_scan_combined(**scan_inputs(batch=2), chunk_size=16, cu_seqlens=cu,
                                  return_varlen_states=True)


def test_chunk_scan_dtypes_follow_the_kernel():
    inp = {k: v.to(torch.bfloat16) if k != "A" else v for k, v in scan_inputs().items()}
    out, final = mamba_chunk_scan_combined(**inp, chunk_size=16, D=torch.ones(4),
                                           return_final_states=True)
    assert out.dtype == torch.bfloat16 and final.dtype == torch.bfloat16  # C's dtype
    _, final32 = mamba_chunk_scan_combined(**inp, chunk_size=16, return_final_states=True,
                                           state_dtype=torch.float32)
    assert final32.dtype == torch.float32
    ref, _ = naive_scan(**inp, D=torch.ones(4))
    assert_close(out, ref, atol=5e-2, rtol=2e-2)  # bf16 output rounding only


# --------------------------------------------------------------------------- causal conv1d


def conv_inputs(batch=2, dim=6, seqlen=19, width=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, dim, seqlen, generator=g), torch.randn(dim, width, generator=g),
            torch.randn(dim, generator=g))


@pytest.mark.parametrize("width", [2, 3, 4])
@pytest.mark.parametrize("activation", [None, "silu", "swish"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_matches_loop(width, activation, with_bias):
    x, w, bias = conv_inputs(width=width)
    bias = bias if with_bias else None
    out = causal_conv1d_fn(x, w, bias, activation=activation)
    assert out.shape == x.shape
    assert_close(out, naive_conv(x, w, bias, activation=activation))


def test_conv_initial_and_final_states():
    x, w, bias = conv_inputs()
    init = torch.randn(2, 6, 3)
    out, final = causal_conv1d_fn(x, w, bias, initial_states=init, return_final_states=True,
                                  activation="silu")
    assert_close(out, naive_conv(x, w, bias, initial_states=init, activation="silu"))
    assert torch.equal(final, x[..., -3:])
    # Chained halves reproduce the whole sequence.
    y1, s1 = causal_conv1d_fn(x[..., :7], w, bias, return_final_states=True)
    y2 = causal_conv1d_fn(x[..., 7:], w, bias, initial_states=s1)
    assert_close(torch.cat([y1, y2], dim=-1), causal_conv1d_fn(x, w, bias))
    # Shorter than the window: the state is the left-zero-padded history, written into the
    # buffer passed as final_states_out.
    buf = torch.empty(2, 6, 3)
    _, short = causal_conv1d_fn(x[..., :2], w, initial_states=init, return_final_states=True,
                                final_states_out=buf)
    assert short is buf
    assert torch.equal(short, torch.cat([init[..., 2:], x[..., :2]], dim=-1))
    _, short0 = causal_conv1d_fn(x[..., :2], w, return_final_states=True)
    assert torch.equal(short0, F.pad(x[..., :2], (1, 0)))


def test_conv_seq_idx_restarts_and_negative_ids_are_zero():
    x, w, bias = conv_inputs(batch=1, seqlen=20)
    seq_idx = torch.tensor([[0] * 7 + [1] * 2 + [2] * 8 + [-1] * 3], dtype=torch.int32)
    out = causal_conv1d_fn(x, w, bias, seq_idx=seq_idx, activation="silu")
    assert_close(out, naive_conv(x, w, bias, seq_idx=seq_idx, activation="silu"))
    assert torch.equal(out[..., -3:], torch.zeros(1, 6, 3))
    # Each packed sequence gives what it gives alone.
    for lo, hi in [(0, 7), (7, 9), (9, 17)]:
        alone = causal_conv1d_fn(x[..., lo:hi], w, bias, activation="silu")
        assert_close(out[..., lo:hi], alone)
    # Meaningful: without seq_idx the first positions of a later sequence differ.
    leaky = causal_conv1d_fn(x, w, bias, activation="silu")
    assert (leaky[..., 9:12] - out[..., 9:12]).abs().max() > 1e-2
    with pytest.raises(ValueError):
        causal_conv1d_fn(x, w, seq_idx=seq_idx, initial_states=torch.zeros(1, 6, 3))
    with pytest.raises(NotImplementedError):
        causal_conv1d_fn(x, w, activation="relu")


def test_conv_keeps_input_dtype():
    x, w, bias = conv_inputs()
    out = causal_conv1d_fn(x.bfloat16(), w.bfloat16(), bias.bfloat16(), activation="silu")
    assert out.dtype == torch.bfloat16
    assert_close(out, naive_conv(x.bfloat16(), w.bfloat16(), bias.bfloat16(), activation="silu"),
                 atol=3e-2, rtol=2e-2)


# --------------------------------------------------------------------------- gated RMSNorm


@pytest.mark.parametrize("norm_before_gate", [True, False])
@pytest.mark.parametrize("group_size", [None, 4, 12])
def test_rmsnorm_matches_formula(norm_before_gate, group_size):
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(3, 5, 12, generator=g), torch.randn(3, 5, 12, generator=g)
    w = torch.randn(12, generator=g)
    out = rmsnorm_fn(x, w, None, z=z, eps=1e-5, group_size=group_size,
                     norm_before_gate=norm_before_gate)
    assert_close(out, naive_rmsnorm(x, w, z, 1e-5, group_size, norm_before_gate))
    assert_close(rmsnorm_fn(x, w, None, eps=1e-5, group_size=group_size),
                 naive_rmsnorm(x, w, None, 1e-5, group_size))
    bias = torch.randn(12, generator=g)
    assert_close(rmsnorm_fn(x, w, bias, group_size=group_size),
                 naive_rmsnorm(x, w, None, 1e-6, group_size) + bias.double())


def test_rmsnorm_module_like_upstream():
    norm = RMSNormGated(12, eps=1e-5, group_size=4, norm_before_gate=False, dtype=torch.bfloat16)
    assert norm.bias is None and "bias" not in dict(norm.named_parameters())
    assert norm.weight.dtype == torch.bfloat16
    assert torch.equal(norm.weight, torch.ones(12, dtype=torch.bfloat16))
    x, z = torch.randn(2, 7, 12), torch.randn(2, 7, 12)
    out = norm(x.bfloat16(), z.bfloat16())
    assert out.dtype == torch.bfloat16
    assert_close(out, naive_rmsnorm(x.bfloat16(), norm.weight, z.bfloat16(), 1e-5, 4, False),
                 atol=3e-2, rtol=2e-2)
    assert_close(RMSNormGated(12)(x), naive_rmsnorm(x, torch.ones(12), eps=1e-5))


# --------------------------------------------------------------------------- split + conv + scan


def split_inputs(batch=1, seqlen=37, nheads=4, headdim=3, ngroups=2, dstate=5, width=4,
                 d_nonssm=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = nheads * headdim
    conv_dim = dim + 2 * ngroups * dstate
    return dict(
        zxbcdt=torch.randn(batch, seqlen, 2 * d_nonssm + dim + conv_dim + nheads, generator=g),
        conv1d_weight=torch.randn(conv_dim, width, generator=g) * 0.5,
        conv1d_bias=torch.randn(conv_dim, generator=g) * 0.1,
        dt_bias=torch.randn(nheads, generator=g) * 0.3 - 1.0,
        A=-(torch.rand(nheads, generator=g) + 0.3),
    )


def naive_split(zxbcdt, conv1d_weight, conv1d_bias, dt_bias, A, D, headdim, ngroups, dstate,
                seq_idx=None, rmsnorm_weight=None, norm_before_gate=True, d_nonssm=0,
                dt_limit=(0.0, float("inf")), eps=1e-6, initial_states=None):
    batch, seqlen, _ = zxbcdt.shape
    nheads = A.shape[0]
    dim = nheads * headdim
    split = [2 * d_nonssm, dim, dim + 2 * ngroups * dstate, nheads]
    zx0, z, xBC, dt = torch.split(zxbcdt, split, dim=-1)
    xBC = naive_conv(xBC.transpose(1, 2), conv1d_weight, conv1d_bias, seq_idx=seq_idx,
                     activation="silu").transpose(1, 2)
    x, B, C = torch.split(xBC, [dim, ngroups * dstate, ngroups * dstate], -1)
    x = x.reshape(batch, seqlen, nheads, headdim)
    z = z.reshape(batch, seqlen, nheads, headdim)
    y, final = naive_scan(x, dt, A, B.reshape(batch, seqlen, ngroups, dstate),
                          C.reshape(batch, seqlen, ngroups, dstate), D=D,
                          z=z if rmsnorm_weight is None else None, dt_bias=dt_bias,
                          dt_softplus=True, dt_limit=dt_limit, seq_idx=seq_idx,
                          initial_states=initial_states)
    y = y.reshape(batch, seqlen, dim)
    if rmsnorm_weight is not None:
        y = naive_rmsnorm(y, rmsnorm_weight, z.reshape(batch, seqlen, dim), eps, dim // ngroups,
                          norm_before_gate)
    if d_nonssm:
        a, b = zx0.double().chunk(2, dim=-1)
        y = torch.cat([F.silu(a) * b, y], dim=-1)
    return y, final


def test_split_conv1d_scan_matches_composition_of_naive_parts():
    inp = split_inputs(batch=2)
    D = torch.randn(4)
    init = torch.randn(2, 4, 3, 5)
    out, final = mamba_split_conv1d_scan_combined(**inp, D=D, chunk_size=16, headdim=3, ngroups=2,
                                                  initial_states=init, dt_limit=(0.05, 2.0),
                                                  return_final_states=True)
    ref, ref_final = naive_split(**inp, D=D, headdim=3, ngroups=2, dstate=5, initial_states=init,
                                 dt_limit=(0.05, 2.0))
    assert out.shape == (2, 37, 12)
    assert_close(out, ref)
    assert_close(final, ref_final)


@pytest.mark.parametrize("norm_before_gate", [True, False])
def test_split_conv1d_scan_with_rmsnorm_d_nonssm_and_outproj(norm_before_gate):
    inp = split_inputs(d_nonssm=2)
    D = torch.randn(4, 3)
    rms_w = torch.randn(12)
    out = mamba_split_conv1d_scan_combined(**inp, D=D, chunk_size=16, ngroups=2,
                                           rmsnorm_weight=rms_w, rmsnorm_eps=1e-5,
                                           norm_before_gate=norm_before_gate)
    ref, _ = naive_split(**inp, D=D, headdim=3, ngroups=2, dstate=5, rmsnorm_weight=rms_w,
                         norm_before_gate=norm_before_gate, d_nonssm=2, eps=1e-5)
    assert out.shape == (1, 37, 2 + 12)
    assert_close(out, ref)
    proj_w, proj_b = torch.randn(7, 14), torch.randn(7)
    projected = mamba_split_conv1d_scan_combined(**inp, D=D, chunk_size=16, ngroups=2,
                                                 rmsnorm_weight=rms_w, rmsnorm_eps=1e-5,
                                                 norm_before_gate=norm_before_gate,
                                                 outproj_weight=proj_w, outproj_bias=proj_b)
    assert_close(projected, ref @ proj_w.double().T + proj_b.double(), atol=5e-5)


def test_split_conv1d_scan_seq_idx_packed_equals_alone():
    a, b = split_inputs(seqlen=21, seed=1), split_inputs(seqlen=27, seed=2)
    zxbcdt = torch.cat([a["zxbcdt"], b["zxbcdt"]], dim=1)
    seq_idx = torch.cat([torch.zeros(1, 21), torch.ones(1, 27)], dim=1).to(torch.int32)
    params = {k: v for k, v in a.items() if k != "zxbcdt"}
    kw = dict(D=torch.randn(4), chunk_size=16, headdim=3, ngroups=2)
    packed = mamba_split_conv1d_scan_combined(zxbcdt, **params, seq_idx=seq_idx, **kw)
    alone_a = mamba_split_conv1d_scan_combined(a["zxbcdt"], **params, **kw)
    alone_b = mamba_split_conv1d_scan_combined(b["zxbcdt"], **params, **kw)
    assert_close(packed[:, :21], alone_a)
    assert_close(packed[:, 21:], alone_b)
    ref, _ = naive_split(zxbcdt, **params, D=kw["D"], headdim=3, ngroups=2, dstate=5,
                         seq_idx=seq_idx)
    assert_close(packed, ref)
    leaky = mamba_split_conv1d_scan_combined(zxbcdt, **params, **kw)
    assert (leaky[:, 21:] - alone_b).abs().max() > 1e-2


# --------------------------------------------------------------------------- gradients


def test_chunk_scan_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    b, l, h, p, ng, n = 1, 7, 2, 2, 1, 2
    x = torch.randn(b, l, h, p, generator=g, dtype=torch.float64, requires_grad=True)
    dt = (torch.randn(b, l, h, generator=g, dtype=torch.float64) * 0.5).requires_grad_()
    A = (-(torch.rand(h, generator=g, dtype=torch.float64) + 0.3)).requires_grad_()
    B = torch.randn(b, l, ng, n, generator=g, dtype=torch.float64, requires_grad=True)
    C = torch.randn(b, l, ng, n, generator=g, dtype=torch.float64, requires_grad=True)
    D = torch.randn(h, p, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(b, l, h, p, generator=g, dtype=torch.float64, requires_grad=True)
    dt_bias = torch.randn(h, generator=g, dtype=torch.float64, requires_grad=True)
    init = torch.randn(b, h, p, n, generator=g, dtype=torch.float64, requires_grad=True)
    seq_idx = torch.tensor([[0, 0, 0, 1, 1, 1, 1]], dtype=torch.int32)

    def f(x, dt, A, B, C, D, z, dt_bias, init):
        out, final = mamba_chunk_scan_combined(x, dt, A, B, C, 3, D=D, z=z, dt_bias=dt_bias,
                                               initial_states=init, seq_idx=seq_idx,
                                               dt_softplus=True, return_final_states=True)
        return out, final

    assert torch.autograd.gradcheck(f, (x, dt, A, B, C, D, z, dt_bias, init))


def test_conv_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    init = torch.randn(1, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    seq_idx = torch.tensor([[0, 0, 1, 1, 1, 2]], dtype=torch.int32)
    assert torch.autograd.gradcheck(
        lambda x, w, b: causal_conv1d_fn(x, w, b, seq_idx=seq_idx, activation="silu"), (x, w, bias))
    assert torch.autograd.gradcheck(
        lambda x, w, b, s: causal_conv1d_fn(x, w, b, initial_states=s, activation="silu"),
        (x, w, bias, init))


def test_split_conv1d_scan_fp32_gradients_match_naive():
    inp = split_inputs(seqlen=20)
    D = torch.randn(4)
    rms_w = torch.randn(12)
    leaves = {k: v.clone().requires_grad_() for k, v in inp.items()}
    out = mamba_split_conv1d_scan_combined(**leaves, D=D, chunk_size=8, headdim=3, ngroups=2,
                                           rmsnorm_weight=rms_w)
    ref_leaves = {k: v.double().clone().requires_grad_() for k, v in inp.items()}
    ref, _ = naive_split(**ref_leaves, D=D, headdim=3, ngroups=2, dstate=5, rmsnorm_weight=rms_w)
    cot = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(out, list(leaves.values()), cot)
    ref_grads = torch.autograd.grad(ref, list(ref_leaves.values()), cot.double())
    for got, want in zip(grads, ref_grads):
        assert_close(got, want, atol=5e-5, rtol=1e-4)
