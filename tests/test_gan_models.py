"""The three generators and the discriminator: shapes, ranges, latents, gradients."""

import copy

import pytest
import torch

from gan import (
    DCGANGenerator,
    DeLiGANGenerator,
    Discriminator,
    ProposedGenerator,
    build_generator,
)
from gan.diffaugment import diff_augment, parse_policy
from moodmoji.errors import MoodmojiError

GENERATORS = {
    "dcgan": lambda: DCGANGenerator(nz=16, ngf=8),
    "deligan": lambda: DeLiGANGenerator(nz=16, ngf=8, components=5),
    "proposed": lambda: ProposedGenerator(nz=16, ngf=8, expand=3),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_output_shape_and_range(name):
    torch.manual_seed(0)
    generator = GENERATORS[name]()
    images = generator(generator.sample_latent(5))
    assert images.shape == (5, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0  # not a constant image


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_discriminator_gives_one_logit_per_image(spectral_norm):
    logits = Discriminator(ndf=8, spectral_norm=spectral_norm)(torch.rand(4, 3, 64, 64) * 2 - 1)
    assert logits.shape == (4,)


@pytest.mark.parametrize("expand", [1, 2, 4])
def test_proposed_latent_width_follows_n(expand):
    generator = ProposedGenerator(nz=16, ngf=8, expand=expand)
    latent = generator.sample_latent(3)
    assert generator.adjust.out_features == expand * 16
    assert latent.shift.shape == (3, expand * 16)
    assert generator.main[0].in_channels == expand * 16
    assert latent.shift.min() >= -1 and latent.shift.max() <= 1


def test_mean_shift_changes_outputs_and_a_seed_reproduces_them():
    torch.manual_seed(0)
    generator = ProposedGenerator(nz=16, ngf=8, expand=2).eval()
    latent = generator.sample_latent(4, torch.Generator().manual_seed(7))
    again = generator.sample_latent(4, torch.Generator().manual_seed(7))
    assert torch.equal(generator(latent), generator(again))

    unshifted = type(latent)(z=latent.z, shift=None)
    assert not torch.allclose(generator(latent), generator(unshifted))

    other_seed = generator.sample_latent(4, torch.Generator().manual_seed(8))
    assert not torch.allclose(generator(latent), generator(other_seed))


@pytest.mark.parametrize("model", ["dcgan", "deligan", "proposed"])
@pytest.mark.parametrize("body", ["dcgan", "fastgan"])
def test_every_latent_drives_either_body_in_rgb_or_rgba(model, body, tiny_config):
    torch.manual_seed(0)
    generator = build_generator(tiny_config(model=model, body=body, channels=4))
    images = generator(generator.sample_latent(3))
    assert images.shape == (3, 4, 64, 64)
    assert images.min() >= -1 and images.max() <= 1
    images.mean().backward()
    assert all(p.grad is not None for p in generator.main.parameters())


def test_skip_layer_excitation_gates_the_fine_map_by_the_coarse_one():
    from gan.models import SkipLayerExcitation

    sle = SkipLayerExcitation(coarse_channels=8, fine_channels=4)
    fine = torch.ones(2, 4, 32, 32)
    gated = sle(torch.randn(2, 8, 4, 4), fine)
    assert gated.shape == fine.shape
    assert (gated > 0).all() and (gated < 1).all()  # a sigmoid gate per channel
    assert torch.equal(gated[:, :, 0, 0], gated[:, :, 31, 17])  # constant over space


def test_mean_shift_can_be_switched_off(tiny_config):
    generator = build_generator(tiny_config(model="proposed", mean_shift=False))
    assert generator.sample_latent(2).shift is None


def test_deligan_mixture_parameters_receive_gradients():
    generator = DeLiGANGenerator(nz=16, ngf=8, components=5)
    assert torch.all((generator.mu >= -1) & (generator.mu <= 1))
    assert torch.allclose(generator.sigma, torch.full_like(generator.sigma, 0.2))
    loss = generator(generator.sample_latent(6)).mean() + generator.regularizer()
    loss.backward()
    assert generator.mu.grad is not None and generator.mu.grad.abs().sum() > 0
    assert generator.sigma.grad is not None and generator.sigma.grad.abs().sum() > 0


def test_deligan_regulariser_pulls_sigma_towards_one():
    generator = DeLiGANGenerator(nz=4, ngf=8, components=2, sigma_init=0.2)
    generator.regularizer().backward()
    assert torch.all(generator.sigma.grad < 0)  # gradient descent raises sigma


def test_diffaugment_keeps_shape_and_passes_gradients():
    images = (torch.rand(4, 3, 64, 64) * 2 - 1).requires_grad_(True)
    out = diff_augment(images, "color,translation,cutout")
    assert out.shape == images.shape
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert not torch.equal(out.detach(), images.detach())


def test_unknown_diffaugment_op_is_a_clear_error():
    with pytest.raises(MoodmojiError, match="unknown DiffAugment op"):
        parse_policy("color,blur")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_the_first_layer_is_the_transposed_convolution_it_replaces(memory_format):
    from gan.models import ProjectTo4x4

    torch.manual_seed(0)
    layer = ProjectTo4x4(20, 12).to(memory_format=memory_format)
    h = torch.randn(3, 20, 1, 1)
    expected = torch.nn.functional.conv_transpose2d(h, layer.weight.contiguous())
    out = layer(h)
    assert out.shape == (3, 12, 4, 4)
    assert torch.allclose(out, expected, atol=1e-5)
    # Kept channels_last (as the sampler keeps it), it gives a channels_last map.
    if memory_format == torch.channels_last:
        assert out.is_contiguous(memory_format=torch.channels_last)


def with_running_statistics(generator):
    """`generator` in eval mode, its batch norms' running statistics not the defaults."""
    generator.train()
    generator(generator.sample_latent(16))
    return generator.eval()


@pytest.mark.parametrize("name", GENERATORS)
def test_folding_batch_norms_for_sampling_keeps_the_generator_s_function(name):
    from gan.inference import fold_batch_norms

    torch.manual_seed(0)
    generator = with_running_statistics(GENERATORS[name]())
    latent = generator.sample_latent(4, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = generator(latent)
        folded = fold_batch_norms(copy.deepcopy(generator))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert torch.allclose(folded(latent), expected, atol=1e-5)


@pytest.mark.parametrize("body", ["fastgan", "dcgan"])
@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_upsampling_convs_on_the_small_maps_keeps_the_generator_s_function(
    name, body, memory_format
):
    from gan.inference import SubpixelUpConv, fold_batch_norms, upsample_convs_on_small_maps

    torch.manual_seed(0)
    factories = {
        "dcgan": lambda: DCGANGenerator(nz=16, ngf=8, body=body),
        "deligan": lambda: DeLiGANGenerator(nz=16, ngf=8, components=5, body=body),
        "proposed": lambda: ProposedGenerator(nz=16, ngf=8, expand=3, body=body),
    }
    generator = with_running_statistics(factories[name]())
    latent = generator.sample_latent(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = generator(latent)
        folded = fold_batch_norms(copy.deepcopy(generator))
        rewritten = upsample_convs_on_small_maps(copy.deepcopy(folded))
        rewritten = rewritten.to(memory_format=memory_format)
        unfolded = upsample_convs_on_small_maps(copy.deepcopy(generator))  # BN kept between
        replaced = [m for m in rewritten.modules() if isinstance(m, SubpixelUpConv)]
        if body == "fastgan":
            # Every up block: the four of the body, each with its GLU taken in.
            assert len(replaced) == 4 and all(m.glu for m in replaced)
            assert not any(isinstance(m, torch.nn.Upsample) for m in rewritten.modules())
            assert not any(m.glu for m in unfolded.modules() if isinstance(m, SubpixelUpConv))
        else:
            assert replaced == []
        for candidate in (rewritten, unfolded):
            out = candidate(latent)
            assert out.shape == expected.shape
            assert torch.allclose(out, expected, atol=2e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(
    "shape",  # (in, out, kernel, stride, padding, bias)
    [(256, 64, 2, 1, 1, True), (32, 8, 4, 1, 0, False), (8, 4, 3, 2, 1, True)],
)
def test_prepacked_convolutions_compute_the_same_function(dtype, memory_format, shape):
    from gan.inference import PrepackedConv2d, prepack_cpu_convs

    if not torch.backends.mkldnn.is_available():
        pytest.skip("needs oneDNN (mkldnn)")
    cin, cout, kernel, stride, padding, bias = shape
    torch.manual_seed(0)
    block = torch.nn.Sequential(
        torch.nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias), torch.nn.Tanh()
    )
    block = block.to(dtype).requires_grad_(False)
    with torch.no_grad():
        for batch in (1, 3):  # the layout packed once serves every batch size
            x = torch.randn(batch, cin, 9, 9).to(dtype).contiguous(memory_format=memory_format)
            expected = block(x)
            packed = prepack_cpu_convs(copy.deepcopy(block))
            assert isinstance(packed[0], PrepackedConv2d)
            # Float rounding apart: oneDNN may sum in another order than the plain path.
            tolerance = 1e-5 if dtype == torch.float32 else 2e-2
            assert torch.allclose(packed(x), expected, atol=tolerance, rtol=tolerance)
