"""Networks: preset parameter counts against the papers, shapes, argument checks, CPU fallbacks of the GPU path."""
import pytest
import torch

from neural.layers import noise_features
from neural.presets import PRESETS, STATED_PARAMETERS, build_network, count_parameters, preset_parameters
from neural.unet import UNet


SHAPES = {"bonnaire": (1, 32, 32), "mlp": (8,)}


def _shape(name):
    return next((s for k, s in SHAPES.items() if name.startswith(k)), (3, 32, 32))


@pytest.mark.parametrize("name", sorted(STATED_PARAMETERS))
def test_preset_parameter_counts_match_the_papers(name):
    classes = 10 if name == "marion-93m" else None   # the position paper's network is class-conditional
    assert preset_parameters(name, _shape(name), classes) == pytest.approx(STATED_PARAMETERS[name], rel=0.03)


def test_yoon_widths_and_conditioning():
    """Yoon et al.: UNet-128 is 4x UNet-64 and UNet-256 is 4x UNet-128; conditional UNet-128 has 53.0M
    (IDDPM's code embeds 1000 classes), the unconditional one 52.5M."""
    p64, p128, p256 = (preset_parameters(f"yoon-unet-{w}") for w in (64, 128, 256))
    assert p128 / p64 == pytest.approx(4, rel=0.01) and p256 / p128 == pytest.approx(4, rel=0.01)
    assert preset_parameters("yoon-unet-128", num_classes=1000) == pytest.approx(53.0e6, rel=0.002)
    assert p128 == pytest.approx(52.5e6, rel=0.002)


def test_parameter_count_of_a_small_unet_by_hand():
    """Count of UNet(1 channel, width 8, one level, one block, no attention) written out layer by layer."""
    net = UNet(1, resolution=4, base_channels=8, channel_mult=(1,), num_res_blocks=1, attn_levels=(), num_groups=4,
               scale_shift=False)
    c, e = 8, 32
    embed = (c * e + e) + (e * e + e)
    conv = lambda i, o, k: i * o * k * k + o        # noqa: E731
    res = lambda i, o: 2 * i + conv(i, o, 3) + (e * o + o) + 2 * o + conv(o, o, 3) + (0 if i == o else conv(i, o, 1))  # noqa: E731
    attn = 2 * c + conv(c, 3 * c, 1) + conv(c, c, 1)
    total = embed + conv(1, c, 3) + res(c, c) + (2 * res(c, c) + attn) + 2 * res(2 * c, c) + 2 * c + conv(c, 1, 3)
    assert count_parameters(net) == total


@pytest.mark.parametrize("name", ["unet-tiny", "unet-small", "mlp-small", "bonnaire-w8"])
def test_output_shape_and_zero_initial_output(name):
    shape = {"unet-tiny": (3, 8, 8), "unet-small": (2, 16, 16), "mlp-small": (2, 5), "bonnaire-w8": (1, 32, 32)}[name]
    net = build_network(name, shape)
    x = torch.randn(3, *shape)
    with torch.no_grad():
        out = net(x, torch.tensor([0.1, -0.5, 1.0]))
    assert out.shape == x.shape
    assert float(out.abs().max()) == 0.0           # output layers start at zero: D = c_skip x at init


def test_class_labels_change_the_output():
    net = build_network("unet-tiny", (1, 8, 8), num_classes=3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, c = torch.randn(2, 1, 8, 8), torch.zeros(2)
    a, b = net(x, c, torch.tensor([0, 0])), net(x, c, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="class_labels"):
        net(x, c)


def test_noise_features_closed_form():
    c = torch.tensor([0.3, -1.2])
    f = noise_features(c, 8, max_period=100.0)
    freqs = torch.tensor([100.0 ** (-k / 4) for k in range(4)])
    torch.testing.assert_close(f, torch.cat([torch.cos(c[:, None] * freqs), torch.sin(c[:, None] * freqs)], 1))


@pytest.mark.parametrize("kwargs,key", [
    (dict(resolution=12, channel_mult=(1, 2, 2, 2)), "resolution"),
    (dict(base_channels=12, num_groups=8), "num_groups"),
    (dict(attn_levels=(3,), channel_mult=(1, 2)), "attn_levels"),
    (dict(base_channels=0), "base_channels"),
    (dict(dropout=1.5), "dropout"),
    (dict(num_heads=3), "num_heads"),
])
def test_bad_network_arguments_name_the_argument(kwargs, key):
    with pytest.raises(ValueError, match=key):
        UNet(3, **{"resolution": 16, "base_channels": 16, "num_groups": 8, **kwargs})


def test_unknown_preset_and_override_are_named():
    with pytest.raises(ValueError, match="preset"):
        build_network("nope", (3, 8, 8))
    with pytest.raises(ValueError, match="widht"):
        build_network("mlp-small", (4,), widht=3)
    assert set(PRESETS) >= {"yoon-unet-64", "yoon-unet-128", "yoon-unet-256", "bonnaire-w8", "bonnaire-w64",
                            "marion-93m", "unet-tiny"}


def test_cpu_fallbacks_of_the_gpu_path():
    """channels-last gives the same function; bf16 autocast stays close to fp32; torch.compile (eager
    backend) gives the same numbers."""
    torch.manual_seed(0)
    net = build_network("unet-tiny", (3, 8, 8))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    net.requires_grad_(False)
    x, c = torch.randn(4, 3, 8, 8), torch.randn(4)
    ref = net(x, c)
    cl = build_network("unet-tiny", (3, 8, 8))
    cl.load_state_dict(net.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    torch.testing.assert_close(cl(x.contiguous(memory_format=torch.channels_last), c), ref, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x, c).float()
    assert float((low - ref).norm() / ref.norm()) < 0.05
    compiled = torch.compile(net, backend="eager")
    torch.testing.assert_close(compiled(x, c), ref, rtol=1e-5, atol=1e-6)
