"""Mamba (S6) block and the Mamba layers of U-Mamba and LightM-UNet (voxel or channel tokens).

The parameters are those of ``mamba_ssm.Mamba`` (in_proj, depthwise causal
conv1d, x_proj, dt_proj, A_log, D, out_proj), so one checkpoint runs on any
device: the selective scan uses ``mamba_ssm``'s CUDA kernel when that package
is importable and the tensor is on CUDA, otherwise our pure-PyTorch
:func:`~mslesseg_nnunet.networks.selective_scan.selective_scan` (same math).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mslesseg_nnunet.networks.selective_scan import selective_scan

try:  # optional CUDA kernels; never required
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_selective_scan
except Exception:  # ImportError, or a broken CUDA build raising at import
    _cuda_selective_scan = None

D_STATE = 16
D_CONV = 4
EXPAND = 2


def mamba_ssm_available() -> bool:
    """True when ``mamba_ssm``'s selective-scan kernel could be imported."""
    return _cuda_selective_scan is not None


def run_selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """Selective scan with softplus time steps on the best backend for ``u``'s device."""
    if _cuda_selective_scan is not None and u.is_cuda:
        return _cuda_selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)
    return selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)


class Mamba(nn.Module):
    """Mamba block on token sequences (batch, length, d_model).

    Parameters
    ----------
    d_model : int
        Token width.
    d_state, d_conv, expand : int
        SSM state size, causal convolution width and inner expansion.
    dt_min, dt_max : float
        Range of the initial time steps (log-uniform).
    """

    def __init__(self, d_model: int, d_state: int = D_STATE, d_conv: int = D_CONV, expand: int = EXPAND,
                 dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self._init_time_steps(dt_min, dt_max)

    def _init_time_steps(self, dt_min: float, dt_max: float) -> None:
        """Initialise dt_proj so that softplus(bias) is log-uniform in [dt_min, dt_max]."""
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def scan_inputs(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Selective-scan arguments (u, delta, A, B, C, D, z, delta_bias) for (batch, length, d_model) tokens."""
        length = tokens.shape[1]
        x, z = self.in_proj(tokens).transpose(1, 2).chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :length])
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)
        return dict(u=x.contiguous(), delta=delta.contiguous(), A=-torch.exp(self.A_log.float()),
                    B=B.transpose(1, 2).contiguous(), C=C.transpose(1, 2).contiguous(), D=self.D.float(),
                    z=z.contiguous(), delta_bias=self.dt_proj.bias.float())

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Map (batch, length, d_model) tokens to the same shape."""
        y = run_selective_scan(**self.scan_inputs(tokens))
        return self.out_proj(y.transpose(1, 2))


class MambaLayer(nn.Module):
    """LayerNorm -> Mamba over the flattened voxels of a feature map, computed in fp32.

    Input and output are (batch, channels, *spatial); the voxels are the
    tokens (raster order). Autocast is disabled inside, the input is cast to
    float32 and the output stays float32, as in U-Mamba.
    """

    def __init__(self, channels: int, d_state: int = D_STATE, d_conv: int = D_CONV, expand: int = EXPAND):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.mamba = Mamba(channels, d_state, d_conv, expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            tokens = x.float().flatten(2).transpose(1, 2)
            out = self.mamba(self.norm(tokens))
        return out.transpose(1, 2).reshape(batch, channels, *spatial)


class ChannelMambaLayer(MambaLayer):
    """LayerNorm -> Mamba with the channels as tokens and the voxels as features, in fp32.

    U-Mamba's "channel tokens" for the deep UMambaEnc stages that have no more
    voxels than channels: built with the stage's voxel count (fixed by the
    plans' patch size) in place of its channels.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.mamba(self.norm(x.float().flatten(2)))
        return out.reshape(batch, channels, *spatial)
