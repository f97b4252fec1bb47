"""Our chunked selective scan against the sequential reference (values and gradients)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mslesseg_nnunet.networks import selective_scan as selective_scan_module
from mslesseg_nnunet.networks.selective_scan import linear_scan, selective_scan, selective_scan_sequential


def scan_inputs(batch, d_inner, d_state, length, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    return dict(u=randn(batch, d_inner, length), delta=0.5 * torch.rand(batch, d_inner, length, generator=g, dtype=dtype),
                A=-torch.exp(randn(d_inner, d_state)), B=randn(batch, d_state, length),
                C=randn(batch, d_state, length), D=randn(d_inner), z=randn(batch, d_inner, length),
                delta_bias=randn(d_inner))


OPTIONS = {
    "plain": dict(D=False, z=False, delta_bias=False, delta_softplus=False),
    "D": dict(D=True, z=False, delta_bias=False, delta_softplus=False),
    "z": dict(D=False, z=True, delta_bias=False, delta_softplus=False),
    "bias_softplus": dict(D=False, z=False, delta_bias=True, delta_softplus=True),
    "all": dict(D=True, z=True, delta_bias=True, delta_softplus=True),
}


def call_args(inputs, options):
    args = {k: inputs[k] for k in ("u", "delta", "A", "B", "C")}
    args.update({k: inputs[k] if options[k] else None for k in ("D", "z", "delta_bias")})
    args["delta_softplus"] = options["delta_softplus"]
    return args


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("shape", [(2, 4, 3, 1), (1, 6, 16, 31), (2, 5, 4, 32), (2, 3, 8, 257),
                                   (1, 4, 16, 1100)])
def test_selective_scan_equals_sequential_reference(shape, option):
    args = call_args(scan_inputs(*shape, seed=sum(shape)), OPTIONS[option])
    expected = selective_scan_sequential(**args)
    got = selective_scan(**args)
    assert got.shape == expected.shape == shape[:2] + shape[3:]
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("chunk", [2, 3, 7, 64])
def test_chunk_size_does_not_change_the_result(chunk):
    args = call_args(scan_inputs(2, 4, 4, 100), OPTIONS["all"])
    torch.testing.assert_close(selective_scan(**args, chunk=chunk), selective_scan_sequential(**args),
                               rtol=1e-5, atol=1e-5)


def test_linear_scan_hand_example():
    decay = torch.tensor([0.5, 0.5, 0.0, 2.0, 1.0]).reshape(1, 5, 1)
    drive = torch.tensor([1.0, 2.0, 3.0, 4.0, -1.0]).reshape(1, 5, 1)
    # h = 1, 0.5*1+2 = 2.5, 0*2.5+3 = 3, 2*3+4 = 10, 10-1 = 9
    torch.testing.assert_close(linear_scan(decay, drive, chunk=2).flatten(), torch.tensor([1.0, 2.5, 3.0, 10.0, 9.0]))


def test_gradients_equal_the_reference_gradients():
    inputs = scan_inputs(2, 3, 4, 70, dtype=torch.float64)
    for tensor in inputs.values():
        tensor.requires_grad_(True)
    args = call_args(inputs, OPTIONS["all"])
    weights = torch.randn(2, 3, 70, dtype=torch.float64)
    ours = torch.autograd.grad((selective_scan(**args, chunk=4) * weights).sum(), list(inputs.values()))
    reference = torch.autograd.grad((selective_scan_sequential(**args) * weights).sum(), list(inputs.values()))
    for name, a, b in zip(inputs, ours, reference):
        assert torch.isfinite(a).all() and a.abs().sum() > 0, name
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9, msg=name)


def test_reverse_linear_scan_hand_example():
    decay = torch.tensor([1.0, 2.0, 0.0, 0.5, 0.5]).reshape(1, 5, 1)
    drive = torch.tensor([-1.0, 4.0, 3.0, 2.0, 1.0]).reshape(1, 5, 1)
    # from the end: h = 1, 0.5*1+2 = 2.5, 0*2.5+3 = 3, 2*3+4 = 10, 10-1 = 9
    torch.testing.assert_close(linear_scan(decay, drive, chunk=2, reverse=True).flatten(),
                               torch.tensor([9.0, 10.0, 3.0, 2.5, 1.0]))


def test_long_strongly_decaying_sequence_stays_finite():
    """Large time steps (decays underflowing to 0) must not give inf/nan."""
    args = call_args(scan_inputs(1, 4, 16, 600), OPTIONS["all"])
    args["delta"] = args["delta"] * 40
    got = selective_scan(**args)
    assert torch.isfinite(got).all()
    assert (got - selective_scan_sequential(**args)).abs().max().item() <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for mamba_ssm's kernel")
def test_matches_mamba_ssm_kernel_on_gpu():
    kernel = pytest.importorskip("mamba_ssm.ops.selective_scan_interface").selective_scan_fn
    inputs = {k: v.cuda() for k, v in scan_inputs(2, 64, 16, 4096).items()}
    args = call_args(inputs, OPTIONS["all"])
    assert (selective_scan(**args) - kernel(**args)).abs().max().item() <= 1e-3


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("length, chunk", [(1, 4), (33, 4), (40, 8)])
def test_gradients_equal_the_reference_gradients_for_every_option(option, length, chunk):
    """Lengths that are not a multiple of the chunk (padding), a single position, several chunk levels."""
    inputs = scan_inputs(2, 3, 4, length, dtype=torch.float64, seed=length)
    args = call_args(inputs, OPTIONS[option])
    leaves = [v.requires_grad_(True) for v in args.values() if isinstance(v, torch.Tensor)]
    weights = torch.randn(2, 3, length, dtype=torch.float64)
    ours = torch.autograd.grad((selective_scan(**args, chunk=chunk) * weights).sum(), leaves)
    reference = torch.autograd.grad((selective_scan_sequential(**args) * weights).sum(), leaves)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_large_time_steps_give_finite_gradients_equal_to_the_reference():
    inputs = scan_inputs(1, 4, 8, 90, dtype=torch.float64)
    inputs["delta"] = inputs["delta"] * 60  # decays exp(delta A) underflow to 0
    args = call_args(inputs, OPTIONS["all"])
    leaves = [v.requires_grad_(True) for v in args.values() if isinstance(v, torch.Tensor)]
    ours = torch.autograd.grad(selective_scan(**args, chunk=8).sum(), leaves)
    reference = torch.autograd.grad(selective_scan_sequential(**args).sum(), leaves)
    for a, b in zip(ours, reference):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_inference_without_stored_decays_equals_the_reference(monkeypatch):
    """Above STORED_DECAYS_LIMIT (large inputs) the decays are recomputed per step instead of stored."""
    monkeypatch.setattr(selective_scan_module, "STORED_DECAYS_LIMIT", 0)
    args = call_args(scan_inputs(2, 5, 4, 257), OPTIONS["all"])
    assert (selective_scan(**args, chunk=16) - selective_scan_sequential(**args)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softplus_is_accurate(dtype):
    x = torch.linspace(-40, 40, 20001, dtype=dtype)
    exact = x.double().clamp(min=0) + torch.log1p(torch.exp(-x.double().abs()))
    got = selective_scan_module._Softplus.apply(x).double()
    # float32: exp2 of the rounded |x| log2(e) costs up to ~|x| ulps of relative accuracy
    assert ((got - exact).abs() / exact).max().item() <= (4e-6 if dtype == torch.float32 else 1e-13)
    # torch's softplus returns x itself above 20 (off by exp(-20) = 2e-9)
    assert (got - F.softplus(x).double()).abs().max().item() <= (1e-6 if dtype == torch.float32 else 3e-9)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(selective_scan_module._Softplus.apply(x).sum(), x)
    torch.testing.assert_close(grad, torch.sigmoid(x.detach()))
