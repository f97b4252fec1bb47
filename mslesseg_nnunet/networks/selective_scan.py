"""Pure-PyTorch selective scan (the S6 recurrence of Mamba), chunked and parallel.

The recurrence, per batch ``b``, channel ``d`` and state ``n``::

    h[t] = exp(delta[t] * A[d, n]) * h[t-1] + delta[t] * B[n, t] * u[t]
    y[t] = sum_n C[n, t] * h[t, n] + D[d] * u[t]          (then * silu(z[t]))

is the same math as ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``.
:func:`selective_scan` cuts the sequence into ``n_chunks`` chunks of ``steps <= chunk``
positions and walks all chunks in lockstep: step ``j`` updates the states at
position ``j`` of every chunk with a few vectorised operations on one
(batch * n_chunks, d_state, d_inner) block, so there are about ``2 * chunk``
Python steps instead of ``L``. Pass 1 gives every chunk's end state started
from 0; the chunk ends are combined by :func:`linear_scan`'s chunked scan on
the ``n_chunks`` times shorter sequence (a chunk's decay is
``exp(A * sum(delta))``); pass 2 rescans every chunk from its carried-in state
and reads each step out with one batched matmul by ``C``. Only decays <= 1 are
multiplied (no division and no cumulative exponent that could overflow; large
time steps just underflow to 0). The decays are ``exp2(delta * A * log2(e))``
(``exp(delta A)`` to rounding; torch's CPU ``exp2`` is several times faster
than ``exp``), computed into one full-size buffer: in training pass 2
overwrites it with the states (kept for the gradient), in inference it keeps
one running state, and recomputes the decays per step instead of storing them
when that buffer would exceed ``STORED_DECAYS_LIMIT``. The gradient (a custom
autograd function, only the states kept) is the same lockstep scan backwards
in time for ``dL/dh``, each step's contributions to the input gradients being
taken while its block is in cache.
:func:`selective_scan_sequential` is the naive one-position-at-a-time
reference used by the tests and the benchmark.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 32
# Inference stores the decays up to this many elements (16 MiB in fp32) and recomputes them per step above:
# measured 8% faster at 2 M elements, 2x slower at 8 M (a buffer over 32 MiB is a fresh mmap, page-faulted every call)
STORED_DECAYS_LIMIT = 2 ** 22
LN2 = math.log(2.0)
LOG2E = 1.0 / LN2


def linear_scan(decay: torch.Tensor, drive: torch.Tensor, chunk: int = DEFAULT_CHUNK,
                reverse: bool = False) -> torch.Tensor:
    """All states of ``h[t] = decay[t] * h[t-1] + drive[t]`` with ``h[-1] = 0`` (no autograd graph).

    Chunked: pass 1 reduces every chunk to its end state and total decay
    (nothing is stored per position); the chunk ends are combined by the same
    scan on the ``chunk`` times shorter sequence of chunks; pass 2 rescans
    every chunk from its carried-in state, writing the states.

    Parameters
    ----------
    decay, drive : torch.Tensor
        Same shape ``(batch, L, ...)``; the scan runs along dimension 1.
    chunk : int
        Positions scanned together per level (>= 2).
    reverse : bool
        Scan from the end: ``h[t] = decay[t] * h[t+1] + drive[t]``.

    Returns
    -------
    torch.Tensor
        ``h`` with the shape of ``drive``.
    """
    if chunk < 2:
        raise ValueError(f"chunk must be >= 2, got {chunk}")
    batch, length, *rest = drive.shape
    if length <= chunk:
        return _scan_positions(decay, drive, None, reverse)
    n_chunks = -(-length // chunk)
    pad = n_chunks * chunk - length
    if pad:  # neutral positions after the end: decay 1, drive 0
        pad_spec = (0, 0) * len(rest) + (0, pad)
        decay = F.pad(decay, pad_spec, value=1.0)
        drive = F.pad(drive, pad_spec, value=0.0)
    decay = decay.reshape(batch * n_chunks, chunk, *rest)
    drive = drive.reshape(batch * n_chunks, chunk, *rest)
    total_decay, end_state = _reduce_positions(decay, drive, reverse)
    ends = linear_scan(total_decay.reshape(batch, n_chunks, *rest), end_state.reshape(batch, n_chunks, *rest),
                       chunk, reverse)
    shift = (0, 1) if reverse else (1, 0)  # each chunk starts from the previous chunk's end
    carried = F.pad(ends[:, 1:] if reverse else ends[:, :-1], (0, 0) * len(rest) + shift)
    states = _scan_positions(decay, drive, carried.reshape(batch * n_chunks, *rest), reverse)
    return states.reshape(batch, n_chunks * chunk, *rest)[:, :length]


def _order(length: int, reverse: bool) -> list[int]:
    return list(range(length - 1, -1, -1) if reverse else range(length))


def _reduce_positions(decay, drive, reverse):
    """Product of the decays and end state of a scan along dim 1 started from 0."""
    first, *others = _order(drive.shape[1], reverse)
    total, state = decay[:, first], drive[:, first]
    for t in others:
        state = torch.addcmul(drive[:, t], decay[:, t], state)
        total = total * decay[:, t]
    return total, state


def _scan_positions(decay, drive, initial, reverse):
    """All states of a scan along dim 1 (short axes only), from state ``initial`` (None: 0)."""
    first, *others = _order(drive.shape[1], reverse)
    states = torch.empty_like(drive)
    state = drive[:, first] if initial is None else torch.addcmul(drive[:, first], decay[:, first], initial)
    states[:, first] = state
    for t in others:
        state = torch.addcmul(drive[:, t], decay[:, t], state)
        states[:, t] = state
    return states


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Selective scan with the signature of ``mamba_ssm``'s ``selective_scan_fn``.

    Parameters
    ----------
    u, delta : torch.Tensor
        (batch, d_inner, L) input and time steps.
    A : torch.Tensor
        (d_inner, d_state) real state matrix (negative for stability).
    B, C : torch.Tensor
        (batch, d_state, L) input-dependent projections.
    D : torch.Tensor, optional
        (d_inner,) skip weights.
    z : torch.Tensor, optional
        (batch, d_inner, L) gate; the output is multiplied by ``silu(z)``.
    delta_bias : torch.Tensor, optional
        (d_inner,) added to ``delta`` before the optional softplus.
    delta_softplus : bool
        Apply softplus to ``delta``.
    chunk : int
        Longest chunk of the lockstep scan (>= 2).

    Returns
    -------
    torch.Tensor
        (batch, d_inner, L) output.
    """
    if chunk < 2:
        raise ValueError(f"chunk must be >= 2, got {chunk}")
    batch, _, length = u.shape
    n_chunks = -(-length // chunk)
    steps = -(-length // n_chunks)  # <= chunk, with as little padding as possible

    def lockstep(t):
        return _to_lockstep(t, steps, n_chunks)

    # the element-wise work is done in the lockstep layout, so each operand is copied once
    delta = lockstep(delta)
    if delta_bias is not None:
        delta = delta.add_(delta_bias)
    if delta_softplus:
        delta = _Softplus.apply(delta)
    u = lockstep(u)
    operands = (delta, A, delta * u, lockstep(B), lockstep(C))
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        y = _SelectiveScan.apply(*operands)
    else:
        y = _scan(*operands, store_decays=batch * A.numel() * length <= STORED_DECAYS_LIMIT)[0]
    if D is not None:
        y = torch.addcmul(y, u, D)
    y = _from_lockstep(y, length)
    if z is not None:
        y = y * F.silu(z)
    return y


def _to_lockstep(t, steps, n_chunks):
    """(batch, k, L) -> (steps, batch, n_chunks, k), zero-padded at the end.

    The padded positions come after every real one, so they change no real output or gradient.
    """
    batch, k, length = t.shape
    if steps * n_chunks > length:
        t = F.pad(t, (0, steps * n_chunks - length))
    return _transpose_items(t).view(batch, n_chunks, steps, k).permute(2, 0, 1, 3).contiguous()


def _from_lockstep(t, length):
    """Inverse of :func:`_to_lockstep`: (steps, batch, n_chunks, k) -> (batch, k, length)."""
    steps, batch, n_chunks, k = t.shape
    return _transpose_items(t.permute(1, 2, 0, 3).reshape(batch, n_chunks * steps, k))[..., :length]


def _transpose_items(t):
    """(batch, m, k) -> contiguous (batch, k, m) by 2D copies (torch's fast transposing path, ~3x a 3D permute)."""
    out = t.new_empty(t.shape[0], t.shape[2], t.shape[1])
    for i in range(t.shape[0]):
        out[i].copy_(t[i].t())
    return out


def _scan(delta, A, x, B, C, keep_states=False, store_decays=False):
    """``y[t] = C[t] . h[t]`` with ``h[t] = exp(delta[t] A) h[t-1] + B[t] x[t]``, in the lockstep layout.

    ``delta``, ``x`` (steps, batch, n_chunks, d_inner); ``B``, ``C`` (steps, batch, n_chunks, d_state);
    ``A`` (d_inner, d_state). Returns ``y`` shaped like ``x`` and, with ``keep_states``,
    all states (steps, batch * n_chunks, d_state, d_inner). ``store_decays``
    (implied by ``keep_states``) computes all decays first, in two full-size
    operations, into one buffer; with ``keep_states`` pass 2 overwrites it in
    place with the states, otherwise it updates one running state. Without
    either the decays are recomputed at each step of both passes (twice the
    ``exp2`` work) and nothing of the full (batch, d_inner, d_state, L) size is allocated.
    """
    steps, batch, n_chunks, _ = x.shape
    log2_A = _log2_rates(A)
    rates, xs, Bs, Cs = (t.flatten(1, 2).unsqueeze(i) for t, i in ((delta, -2), (x, -2), (B, -1), (C, -2)))
    stored = _decays(rates, log2_A) if keep_states or store_decays else None
    decays = _LazyDecays(rates, log2_A) if stored is None else stored.unbind()
    ends = linear_scan(_decays(rates.sum(0), log2_A).unflatten(0, (batch, n_chunks)),
                       _local_scan(decays, Bs, xs).unflatten(0, (batch, n_chunks)), _outer_chunk(n_chunks))
    state = F.pad(ends[:, :-1], (0, 0, 0, 0, 1, 0)).flatten(0, 1)  # end of the previous chunk
    y = x.new_empty(steps, batch * n_chunks, 1, x.shape[-1])
    for j, (B_j, x_j, C_j, y_j) in enumerate(zip(*(t.unbind() for t in (Bs, xs, Cs, y)))):
        decay = decays[j]
        state = torch.mul(state, decay, out=decay if keep_states else state).addcmul_(B_j, x_j)
        torch.bmm(C_j, state, out=y_j)
    return y.view(x.shape), stored if keep_states else None


def _outer_chunk(n_chunks):
    """Chunk of the scan over the chunk ends: ceil(sqrt(n_chunks)), so that it has two levels."""
    return max(2, math.isqrt(n_chunks - 1) + 1)


class _SelectiveScan(torch.autograd.Function):
    """:func:`_scan` with its gradient: the lockstep scan backwards in time for ``g = dL/dh``."""

    @staticmethod
    def forward(ctx, delta, A, x, B, C):
        y, states = _scan(delta, A, x, B, C, keep_states=True)
        ctx.save_for_backward(delta, A, x, B, C, states)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        delta, A, x, B, C, states = ctx.saved_tensors
        steps, batch, n_chunks, _ = x.shape
        log2_A = _log2_rates(A)
        # g[t] = decay[t+1] g[t+1] + C[t] grad_y[t]: from one chunk start to the next, g goes
        # through the chunk's decays but its first one, and the next chunk's first one
        next_first = F.pad(delta[0, :, 1:], (0, 0, 0, 1)).unsqueeze(-2)
        to_next = _decays(delta[1:].sum(0).unsqueeze(-2) + next_first, log2_A)
        delta, x, B, C, grad_y = (t.flatten(1, 2) for t in (delta, x, B, C, grad_y))
        rates, xs, grad_ys = delta.unsqueeze(-2), x.unsqueeze(-2), grad_y.unsqueeze(-2)
        Bs, Cs = B.unsqueeze(-1), C.unsqueeze(-1)
        starts = linear_scan(to_next, _local_scan(_LazyDecays(rates, log2_A), Cs, grad_ys, reverse=True)
                             .unflatten(0, (batch, n_chunks)), _outer_chunk(n_chunks), reverse=True)
        g = _decays(next_first, log2_A).mul_(F.pad(starts[:, 1:], (0, 0, 0, 0, 0, 1))).flatten(0, 1)
        grad_delta, grad_x, grad_B, grad_C = (torch.empty_like(t) for t in (delta, x, B, C))
        grad_A = torch.zeros_like(g)  # per chunk; summed at the end
        A_t, grad_log_decay, decays = A.t().contiguous(), torch.empty_like(g), _LazyDecays(rates, log2_A)
        per_step = list(zip(*(t.unbind() for t in (rates, Bs, xs, Cs, grad_ys, states, grad_delta, grad_x.unsqueeze(2),
                                                    grad_B.unsqueeze(-1), grad_C.unsqueeze(-1)))))
        for j in range(steps - 1, -1, -1):
            rate, B_j, x_j, C_j, grad_y_j, state, grad_delta_j, grad_x_j, grad_B_j, grad_C_j = per_step[j]
            if j < steps - 1:
                g.mul_(decays[j + 1])
            g.addcmul_(C_j, grad_y_j)  # g = dL/dh[j]
            torch.bmm(state, grad_y_j.transpose(1, 2), out=grad_C_j)
            torch.bmm(B_j.transpose(1, 2), g, out=grad_x_j)
            torch.bmm(g, x_j.transpose(1, 2), out=grad_B_j)
            # dL/d(delta[j] A) = g * decay[j] * h[j-1] = g * (h[j] - B[j] x[j])
            torch.addcmul(state, B_j, x_j, value=-1, out=grad_log_decay).mul_(g)
            grad_A.addcmul_(grad_log_decay, rate)
            torch.sum(grad_log_decay.mul_(A_t), 1, out=grad_delta_j)
        shape = (steps, batch, n_chunks, -1)
        return (grad_delta.view(shape), grad_A.sum(0).t(), grad_x.view(shape), grad_B.view(shape),
                grad_C.view(shape))


class _Softplus(torch.autograd.Function):
    """``log(1 + exp(x))`` as ``max(x, 0) + log1p(exp(-|x|))``, from ``exp2`` and ``log2``.

    torch's CPU ``softplus`` and ``log1p`` are several times slower. ``log1p(v)`` is
    ``log(w) - ((w - 1) - v) / w`` with ``w = 1 + v`` rounded, which corrects that rounding.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        v = x.abs().mul_(-LOG2E).exp2_()
        w = v + 1
        rounding = (w - 1).sub_(v).div_(w)
        return w.log2_().mul_(LN2).sub_(rounding).add_(torch.clamp(x, min=0, out=v))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)


def _log2_rates(A):
    """(d_inner, d_state) ``A`` as (d_state, d_inner) rates of ``exp2``: ``exp(delta A) = exp2(delta A log2(e))``."""
    return (A * LOG2E).t().contiguous()


def _decays(rates, log2_A, out=None):
    """``exp2(rates * log2_A)``: decays (..., d_state, d_inner) from time steps ``rates`` (..., 1, d_inner)."""
    return torch.mul(rates, log2_A, out=out).exp2_()


def _local_scan(decays, a, b, reverse=False):
    """Last state of every chunk's scan ``h <- decays[j] * h + a[j] * b[j]`` along dim 0, started from 0.

    The decay between steps ``j`` and ``j + 1`` is ``decays[j + 1]``, in either direction.
    """
    order = _order(len(a), reverse)
    a, b = a.unbind(), b.unbind()
    state = a[order[0]] * b[order[0]]
    for previous, j in zip(order, order[1:]):
        state.mul_(decays[max(previous, j)]).addcmul_(a[j], b[j])
    return state


class _LazyDecays:
    """``decays[j]`` computed on access into one reused buffer (for scans that read each step once)."""

    def __init__(self, rates, log2_A):
        self.rates, self.log2_A = rates, log2_A
        self.buffer = rates.new_empty(rates.shape[1], *log2_A.shape)

    def __getitem__(self, j):
        return _decays(self.rates[j], self.log2_A, out=self.buffer)


def selective_scan_sequential(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                              delta_softplus=False) -> torch.Tensor:
    """Reference selective scan: one Python step per sequence position.

    Same parameters and result as :func:`selective_scan`; written
    independently of it (no shared discretisation or read-out) so that the
    tests compare two implementations.
    """
    if delta_bias is not None:
        delta = delta + delta_bias.unsqueeze(-1)
    if delta_softplus:
        delta = torch.log1p(torch.exp(-delta.abs())) + delta.clamp(min=0)
    batch, d_inner, length = u.shape
    state = u.new_zeros(batch, d_inner, A.shape[1])
    outputs = []
    for t in range(length):
        step = delta[:, :, t].unsqueeze(-1)
        state = torch.exp(step * A) * state + step * B[:, None, :, t] * u[:, :, t, None]
        outputs.append((state * C[:, None, :, t]).sum(-1))
    y = torch.stack(outputs, dim=-1)
    if D is not None:
        y = y + D.unsqueeze(-1) * u
    if z is not None:
        y = y * z * torch.sigmoid(z)
    return y
