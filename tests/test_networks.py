"""Architectures built from real nnU-Net plans: contract, shapes, gradients, Mamba layer."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.residual import BasicBlockD
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder

from mslesseg_nnunet.networks import ARCHITECTURES, unet_hyperparameters
from mslesseg_nnunet.networks.lightm_unet import ResidualMambaBlock
from mslesseg_nnunet.networks.mamba import ChannelMambaLayer, Mamba, MambaLayer
from mslesseg_nnunet.networks.monai_baselines import PaddedToMultiple, padded_size
from mslesseg_nnunet.networks.umamba import encoder_stages

PLANS = ("nnUNetPlans", "nnUNetResEncUNetMPlans")
# Smaller than the plans' 32^3 patch (all networks are fully convolutional), divisible
# by the total stride 8 and leaving 2 voxels at the bottleneck for instance norm.
INPUT = (16, 8, 8)
# Every architecture on both plan families where the plans change the network
# (encoder type, block counts); LightM-UNet and UMambaEnc read the same fields
# from both, so one plans file suffices for their (slowest) forward/backward.
CONTRACT_CASES = [("MSCSA", "nnUNetPlans"), ("MSCSA", "nnUNetResEncUNetMPlans"),
                  ("UMambaBot", "nnUNetPlans"), ("UMambaBot", "nnUNetResEncUNetMPlans"),
                  ("UMambaEnc", "nnUNetPlans"), ("LightMUNet", "nnUNetResEncUNetMPlans"),
                  ("UNetPlusPlus", "nnUNetPlans"), ("UNetPlusPlus", "nnUNetResEncUNetMPlans")]
# MONAI networks without deep supervision: their own contract test below.
MONAI_BASELINES = ("SwinUNETR", "UNETR", "SegResNet")
# UMambaEnc with fewer Mamba layers (test_umamba_enc_puts_mamba_after_every_stage).
SAME_CONTRACT = ("UMambaEncCapped",)


@pytest.fixture(scope="session")
def plans_files(tiny_plans):
    return tiny_plans


def configuration(plans_files, plans_name):
    manager = PlansManager(str(plans_files[plans_name]))
    return manager, manager.get_configuration("3d_fullres")


def nnunet_ds_shapes(configuration_manager, size):
    """Target shapes of nnU-Net's deep supervision (as nnUNetTrainer._get_deep_supervision_scales)."""
    scales = list(1 / np.cumprod(np.vstack(configuration_manager.pool_op_kernel_sizes), axis=0))[:-1]
    return [tuple(int(round(s * f)) for s, f in zip(size, scale)) for scale in scales]


def test_contract_cases_cover_every_architecture_and_plans():
    assert {a for a, _ in CONTRACT_CASES} | set(MONAI_BASELINES) | set(SAME_CONTRACT) == set(ARCHITECTURES)
    assert {p for _, p in CONTRACT_CASES} == set(PLANS)


@pytest.mark.parametrize("arch, plans_name", CONTRACT_CASES)
def test_network_contract_forward_backward(plans_files, arch, plans_name):
    """Deep-supervision outputs as nnU-Net expects, gradients everywhere, and the
    inference build (deep supervision off) loads the training weights and gives
    the full-resolution output; the ``decoder.deep_supervision`` switch flips it back."""
    torch.manual_seed(0)
    manager, config = configuration(plans_files, plans_name)
    config.configuration["patch_size"] = list(INPUT)  # UMambaEnc's channel tokens need the patch
    network = ARCHITECTURES[arch](manager, config, 1, 3, enable_deep_supervision=True)
    x = torch.randn(1, 1, *INPUT)
    outputs = network(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape[2:]) for o in outputs] == nnunet_ds_shapes(config, INPUT)
    assert all(o.shape[:2] == (1, 3) for o in outputs)
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in network.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"

    for_inference = ARCHITECTURES[arch](manager, config, 1, 3, enable_deep_supervision=False)
    for_inference.load_state_dict(network.state_dict())
    with torch.no_grad():
        single = for_inference(x)
        assert isinstance(single, torch.Tensor) and single.shape == (1, 3, *INPUT)
        torch.testing.assert_close(single, outputs[0])
        for_inference.decoder.deep_supervision = True
        again = for_inference(x)
    assert [tuple(o.shape) for o in again] == [tuple(o.shape) for o in outputs]


@pytest.mark.parametrize("plans_name, encoder_cls", [("nnUNetPlans", PlainConvEncoder),
                                                       ("nnUNetResEncUNetMPlans", ResidualEncoder)])
def test_mscsa_uses_the_plans_encoder(plans_files, plans_name, encoder_cls):
    manager, config = configuration(plans_files, plans_name)
    network = ARCHITECTURES["MSCSA"](manager, config, 1, 2)
    assert type(network.encoder) is encoder_cls
    assert network.encoder.output_channels == config.network_arch_init_kwargs["features_per_stage"]


def test_umamba_block_counts_follow_the_plans(plans_files):
    manager, config = configuration(plans_files, "nnUNetResEncUNetMPlans")
    network = ARCHITECTURES["UMambaBot"](manager, config, 1, 2)
    blocks = [sum(isinstance(m, BasicBlockD) for m in stage.modules()) for stage in network.encoder.encoder.stages]
    assert blocks == config.network_arch_init_kwargs["n_blocks_per_stage"]
    mamba = [isinstance(m, MambaLayer) for m in network.encoder.mamba]
    assert mamba == [False] * (len(blocks) - 1) + [True]


def test_umamba_enc_puts_mamba_after_every_stage(plans_files):
    """As U-Mamba: every stage, channel tokens where a stage has no more voxels than channels;
    the capped CPU variant drops the stages above 16,384 voxels."""
    manager, config = configuration(plans_files, "nnUNetPlans")
    hp = unet_hyperparameters(config)
    assert hp.feature_map_sizes() == [(32, 32, 32), (16, 16, 16), (8, 8, 8), (4, 4, 4)]
    assert hp.features_per_stage[3] >= 4 ** 3 and hp.features_per_stage[2] < 8 ** 3
    layers = [type(m) for m in ARCHITECTURES["UMambaEnc"](manager, config, 1, 2).encoder.mamba]
    assert layers == [MambaLayer, MambaLayer, MambaLayer, ChannelMambaLayer]
    capped = [type(m) for m in ARCHITECTURES["UMambaEncCapped"](manager, config, 1, 2).encoder.mamba]
    assert capped == [nn.Identity, MambaLayer, MambaLayer, ChannelMambaLayer]
    assert encoder_stages(hp, max_tokens=8 ** 3) == [None, None, "voxels", "channels"]


def test_channel_mamba_layer_scans_over_channels():
    """Tokens are the channels: the output at channel c depends on channels <= c only (causal)."""
    torch.manual_seed(0)
    layer = ChannelMambaLayer(8)
    x = torch.randn(1, 5, 2, 2, 2)
    y = layer(x)
    x2 = x.clone()
    x2[:, 3:] = torch.randn(1, 2, 2, 2, 2)
    y2 = layer(x2)
    torch.testing.assert_close(y[:, :3], y2[:, :3])
    assert not torch.allclose(y[:, 3:], y2[:, 3:])


def test_lightm_unet_reference_configuration(plans_files):
    manager, config = configuration(plans_files, "nnUNetPlans")
    network = ARCHITECTURES["LightMUNet"](manager, config, 1, 2, enable_deep_supervision=False)
    blocks_down = [sum(isinstance(m, ResidualMambaBlock) for m in level.modules())
                   for level in network.encoder.levels]
    assert blocks_down == [1, 2, 2, 4]
    assert [len(r) for r in network.decoder.refine] == [1, 1, 1]
    assert network.encoder.stem.out_channels == 32


def test_mscsa_mixes_information_across_stages(plans_files):
    """The injected full-resolution skip depends on the deepest stage (global cross-stage attention)."""
    torch.manual_seed(0)
    manager, config = configuration(plans_files, "nnUNetPlans")
    mscsa = ARCHITECTURES["MSCSA"](manager, config, 1, 2).mscsa.eval()
    sizes = [(16, 16, 16), (8, 8, 8), (4, 4, 4), (2, 2, 2)]
    skips = [torch.randn(1, f, *s) for f, s in zip(config.network_arch_init_kwargs["features_per_stage"], sizes)]
    changed = [s.clone() for s in skips]
    changed[-1] += 1.0
    with torch.no_grad():
        before, after = mscsa(skips), mscsa(changed)
    assert [tuple(b.shape) for b in before] == [tuple(s.shape) for s in skips]
    assert not torch.allclose(before[0], after[0])


def test_mamba_block_is_causal():
    torch.manual_seed(0)
    block = Mamba(8).eval()
    tokens = torch.randn(2, 40, 8)
    changed = tokens.clone()
    changed[:, 30:] += 1.0
    with torch.no_grad():
        a, b = block(tokens), block(changed)
    torch.testing.assert_close(a[:, :30], b[:, :30])
    assert not torch.allclose(a[:, 30:], b[:, 30:])


def test_mamba_layer_runs_in_fp32_under_autocast():
    torch.manual_seed(0)
    layer = MambaLayer(8)
    x = torch.randn(2, 8, 4, 5, 6)
    with torch.no_grad():
        reference = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = layer(x.bfloat16())
    assert low.dtype == torch.float32 and low.shape == x.shape
    # bf16 inside the layer would differ by ~1e-2; fp32 inside only by the bf16 rounding of the input
    torch.testing.assert_close(low, layer(x.bfloat16().float()).detach(), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(reference).all()


def test_import_without_mamba_ssm():
    code = ("import sys; sys.modules['mamba_ssm'] = None\n"
            "import mslesseg_nnunet.networks as n, mslesseg_nnunet.networks.mamba as m, torch\n"
            "assert not m.mamba_ssm_available() and set(n.ARCHITECTURES) == {'MSCSA', 'UMambaBot', 'UMambaEncCapped', "
            "'UMambaEnc', 'LightMUNet', 'UNetPlusPlus', 'SwinUNETR', 'UNETR', 'SegResNet'}\n"
            "print(m.MambaLayer(4)(torch.randn(1, 4, 3, 3, 3)).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "torch.Size([1, 4, 3, 3, 3])" in out.stdout


def test_unet_plus_plus_2d_configuration(plans_files):
    """nnU-Net's ``2d`` configuration: 2D convolutions, deep supervision at nnU-Net's 2D scales."""
    torch.manual_seed(0)
    manager = PlansManager(str(plans_files["nnUNetPlans"]))
    config = manager.get_configuration("2d")
    network = ARCHITECTURES["UNetPlusPlus"](manager, config, 2, 3)
    assert not any(isinstance(m, nn.Conv3d) for m in network.modules())
    x = torch.randn(2, 2, 16, 8)
    outputs = network(x)
    assert [tuple(o.shape[2:]) for o in outputs] == nnunet_ds_shapes(config, (16, 8))
    network.decoder.deep_supervision = False
    with torch.no_grad():
        torch.testing.assert_close(network(x), outputs[0])


def test_unet_plus_plus_nested_skip_topology(plans_files):
    """Every node of the paper's grid exists once with level i's width and grid, and computes
    X^{i,j} = H([X^{i,0}, ..., X^{i,j-1}, U(X^{i+1,j-1})]) from the recorded node outputs."""
    torch.manual_seed(0)
    manager, config = configuration(plans_files, "nnUNetPlans")
    features = config.network_arch_init_kwargs["features_per_stage"]
    levels = len(features)
    network = ARCHITECTURES["UNetPlusPlus"](manager, config, 1, 2).eval()
    decoder = network.decoder
    nested = {(i, j): decoder.nodes[i][j - 1] for i in range(len(decoder.nodes))
              for j in range(1, len(decoder.nodes[i]) + 1)}
    assert set(nested) == {(i, j) for i in range(levels) for j in range(1, levels) if i + j <= levels - 1}
    assert len(nested) == levels * (levels - 1) // 2
    seen_in, seen_out = {}, {}

    def record(key):
        def hook(module, args, out):
            seen_in[key], seen_out[key] = args[0], out
        return hook

    for i, stage in enumerate(network.encoder.stages):
        stage.register_forward_hook(record((i, 0)))
    for key, node in nested.items():
        node.register_forward_hook(record(key))
    x = torch.randn(1, 1, *INPUT)
    with torch.no_grad():
        outputs = network(x)
        total_strides = np.cumprod(config.network_arch_init_kwargs["strides"], axis=0)
        for (i, j), node_input in ((key, v) for key, v in seen_in.items() if key[1] > 0):
            assert seen_out[i, j].shape == (1, features[i], *(np.array(INPUT) // total_strides[i]))
            expected = torch.cat([*(seen_out[i, k] for k in range(j)),
                                  decoder.upsamplers[i][j - 1](seen_out[i + 1, j - 1])], dim=1)
            torch.testing.assert_close(node_input, expected, rtol=0, atol=0)
        heads = [decoder.seg_layers[i](seen_out[i, levels - 1 - i]) for i in range(levels - 1)]
    for output, head in zip(outputs, heads):
        torch.testing.assert_close(output, head, rtol=0, atol=0)


def cpu_sized_configuration(plans_files, first_features=8, patch=(40, 12, 8)):
    """The 3d_fullres configuration with CPU-plans widths and a patch that is no multiple of 16 or 32."""
    plans = json.loads(plans_files["nnUNetPlans"].read_text())
    config = plans["configurations"]["3d_fullres"]
    arch = config["architecture"]["arch_kwargs"]
    arch["features_per_stage"] = [first_features * 2 ** i for i in range(arch["n_stages"])]
    config["patch_size"] = list(patch)
    manager = PlansManager(plans)
    return manager, manager.get_configuration("3d_fullres")


@pytest.mark.parametrize("arch", MONAI_BASELINES)
def test_monai_baseline_contract(plans_files, arch):
    """Logits of the patch's size for any patch, gradients everywhere, no deep supervision,
    and the inference build (a second call of the builder) reproduces the trained network."""
    torch.manual_seed(0)
    manager, config = cpu_sized_configuration(plans_files)
    network = ARCHITECTURES[arch](manager, config, 2, 3)
    x = torch.randn(1, 2, *config.patch_size)
    out = network(x)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 3, *config.patch_size)
    assert out.min() < 0 or out.max() > 1  # raw logits, not probabilities
    out.square().mean().backward()
    missing = [n for n, p in network.named_parameters() if (p.grad is None or not torch.isfinite(p.grad).all())
               and "cross_attn" not in n]  # MONAI's ViT blocks always hold an unused cross-attention norm
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"
    with pytest.raises(ValueError, match="no deep-supervision outputs"):
        ARCHITECTURES[arch](manager, config, 2, 3, enable_deep_supervision=True)
    rebuilt = ARCHITECTURES[arch](manager, config, 2, 3, enable_deep_supervision=False)
    rebuilt.load_state_dict(network.state_dict())
    network.eval(), rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), network(x))


def test_monai_baselines_reference_widths(plans_files):
    """Default plans (32 first-stage features) give the reference configurations; widths scale with them."""
    manager, config = cpu_sized_configuration(plans_files, first_features=32)
    assert ARCHITECTURES["SwinUNETR"](manager, config, 1, 2).network.swinViT.embed_dim == 48
    unetr = ARCHITECTURES["UNETR"](manager, config, 1, 2).network
    assert (unetr.hidden_size, unetr.encoder1.layer.conv1.conv.out_channels) == (768, 16)
    assert ARCHITECTURES["SegResNet"](manager, config, 1, 2).network.init_filters == 32
    manager, config = cpu_sized_configuration(plans_files, first_features=8)
    assert ARCHITECTURES["SwinUNETR"](manager, config, 1, 2).network.swinViT.embed_dim == 12
    manager, config = cpu_sized_configuration(plans_files, first_features=4)
    with pytest.raises(ValueError, match=r"SwinUNETR: .*\(4\) give a width of 6, not a multiple of 12"):
        ARCHITECTURES["SwinUNETR"](manager, config, 1, 2)
    manager, config = cpu_sized_configuration(plans_files, patch=(20, 12, 8))
    with pytest.raises(ValueError, match=r"SwinUNETR: patch \[20, 12, 8\] \(padded to 32x32x32\) leaves one voxel"):
        ARCHITECTURES["SwinUNETR"](manager, config, 1, 2)


def test_padded_to_multiple_pads_then_crops():
    assert padded_size((20, 12, 8), 16) == (32, 16, 16)
    assert padded_size((24, 40, 16), 32) == (32, 64, 32)
    assert padded_size((32, 64), 16) == (32, 64)
    seen = []
    conv = nn.Conv3d(1, 1, 1)
    padded = PaddedToMultiple(nn.Sequential(nn.Identity(), conv), 32)
    padded.network[0].register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    x = torch.randn(1, 1, 24, 40, 16)
    with torch.no_grad():
        torch.testing.assert_close(padded(x), conv(x))  # a pointwise network is unaffected by the padding
    assert seen == [(1, 1, 32, 64, 32)]


def test_baseline_trainers_without_monai(tmp_path):
    """Trainer lookup works without MONAI; building a MONAI network says how to install it."""
    code = ("import sys; sys.modules['monai'] = None\n"
            "from mslesseg_nnunet.trainer_catalog import trainer_classes\n"
            "t = trainer_classes()\n"
            "assert {'nnUNetTrainerSwinUNETRShort', 'nnUNetTrainerUNETRShort', 'nnUNetTrainerSegResNetShort',\n"
            "        'nnUNetTrainerUNetPlusPlusShort'} <= set(t)\n"
            "t['nnUNetTrainerSegResNet'].build_network_architecture(None, None, 1, 2, False)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(
        "ImportError: the SwinUNETR, UNETR and SegResNet baselines need MONAI: "
        "pip install 'mslesseg-nnunet[baselines]'")
