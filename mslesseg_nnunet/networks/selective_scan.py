"""Pure-PyTorch selective scan (the S6 recurrence of Mamba), chunked and parallel.

The recurrence, per batch ``b``, channel ``d`` and state ``n``::

    h[t] = exp(delta[t] * A[d, n]) * h[t-1] + delta[t] * B[n, t] * u[t]
    y[t] = sum_n C[n, t] * h[t, n] + D[d] * u[t]          (then * silu(z[t]))

is the same math as ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``.
:func:`selective_scan` evaluates the linear recurrence with a chunked scan
(:func:`linear_scan`): the sequence is cut into chunks of ``chunk`` positions;
pass 1 reduces every chunk to its end state and total decay (a loop over the
positions of ONE chunk, vectorised over all chunks), the chunk end states are
combined by the same scan applied recursively to the ``chunk`` times shorter
sequence of chunks, and pass 2 rescans every chunk from its carried-in state.
The work is linear in the sequence length, there are about ``2 * chunk * log_chunk(L)``
Python steps instead of ``L``, and only products of decays <= 1 are formed
(no division, no exponent overflow). The gradient is the same scan run
backwards in time (a custom autograd function), so no per-position graph is
stored.
:func:`selective_scan_sequential` is the naive one-position-at-a-time
reference used by the tests and the benchmark.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 32


def _discretize(u, delta, A, B, delta_bias, delta_softplus):
    """Return decays ``exp(delta A)`` and inputs ``delta B u``, both (b, l, d, n)."""
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    # (b, l, ...) row-major small factors, so that the (b, l, d, n) products are
    # contiguous and the per-position slices of the scan are dense blocks
    delta = delta.transpose(1, 2).contiguous().unsqueeze(-1)
    decay = (delta * A).exp_()
    drive = (delta * u.transpose(1, 2).contiguous().unsqueeze(-1)) * B.transpose(1, 2).contiguous().unsqueeze(2)
    return decay, drive


def _readout(states, u, C, D, z):
    """Project states (b, l, d, n) onto C, add the skip term and the z gate (b, d, l)."""
    y = torch.einsum("bldn,bln->bld", states, C.transpose(1, 2).contiguous()).transpose(1, 2)
    if D is not None:
        y = y + u * D[:, None]
    if z is not None:
        y = y * F.silu(z)
    return y


def linear_scan(decay: torch.Tensor, drive: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """All states of ``h[t] = decay[t] * h[t-1] + drive[t]`` with ``h[-1] = 0``.

    Differentiable: the backward pass is the same chunked scan run in reverse
    (``dL/dh`` obeys ``g[t] = dL/dh[t] + decay[t+1] * g[t+1]``), so only
    ``decay`` and the states are kept for it.

    Parameters
    ----------
    decay, drive : torch.Tensor
        Same shape ``(batch, L, ...)``; the scan runs along dimension 1.
    chunk : int
        Positions scanned together per level (>= 2).

    Returns
    -------
    torch.Tensor
        ``h`` with the shape of ``drive``.
    """
    if chunk < 2:
        raise ValueError(f"chunk must be >= 2, got {chunk}")
    if torch.is_grad_enabled() and (decay.requires_grad or drive.requires_grad):
        return _LinearScan.apply(decay, drive, chunk)
    return _chunked_scan(decay, drive, chunk)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, decay, drive, chunk):
        states = _chunked_scan(decay, drive, chunk)
        ctx.save_for_backward(decay, states)
        ctx.chunk = chunk
        return states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_states):
        decay, states = ctx.saved_tensors
        pad_time = (0, 0) * (decay.dim() - 2)
        next_decay = F.pad(decay[:, 1:], pad_time + (0, 1), value=1.0)  # decay[t+1] at t
        grad_drive = _chunked_scan(next_decay, grad_states.contiguous(), ctx.chunk, reverse=True)
        previous = F.pad(states[:, :-1], pad_time + (1, 0))  # h[t-1] at t
        return grad_drive * previous, grad_drive, None


def _chunked_scan(decay, drive, chunk, reverse=False):
    """Chunked scan along dim 1 (runs without an autograd graph); ``reverse`` scans from the end.

    Pass 1 reduces every chunk to its end state and total decay (nothing is
    stored per position); the chunk ends are combined by the same scan on the
    ``chunk`` times shorter sequence of chunks; pass 2 rescans every chunk
    from its carried-in state, writing the states.
    """
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
    ends = _chunked_scan(total_decay.reshape(batch, n_chunks, *rest), end_state.reshape(batch, n_chunks, *rest),
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
        Chunk length of the parallel scan.

    Returns
    -------
    torch.Tensor
        (batch, d_inner, L) output.
    """
    decay, drive = _discretize(u, delta, A, B, delta_bias, delta_softplus)
    states = linear_scan(decay, drive, chunk)
    return _readout(states, u, C, D, z)


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
