"""The shape gate: real emoji shapes pass, fragments are redrawn, seeds stay seeds."""

import numpy as np
import pytest
import torch

from gan import EmojiSampler, export_generator, load_checkpoint, load_label_images, train
from gan.gate import ShapeGate, contrast_on_white, fit_gate, shape_measures


def blobs(*boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """One (1, 4, 64, 64) RGBA image, opaque yellow inside each (top, left, bottom, right)."""
    image = torch.full((1, 4, 64, 64), -1.0)
    for top, left, bottom, right in boxes:
        image[0, :, top:bottom, left:right] = torch.tensor([1.0, 0.6, -1.0, 1.0])[:, None, None]
    return image


def test_the_measures_of_a_face_and_of_fragments():
    face = blobs((8, 8, 56, 56))
    fragments = blobs((4, 4, 12, 12), (40, 10, 50, 20), (20, 44, 30, 54))
    coverage, solidity = shape_measures(torch.cat([face, fragments, torch.full_like(face, -1)]))
    assert coverage[0] == pytest.approx(48 * 48 / 64**2) and solidity[0] == 1.0
    assert coverage[1] < 0.1 and solidity[1] == pytest.approx(100 / 264)  # largest of three
    assert coverage[2] == 0.0 and solidity[2] == 0.0


def test_a_gate_fitted_on_real_faces_passes_them_and_stops_fragments(procedural_data):
    real = load_label_images(procedural_data, "positive", alpha=True)
    gate = fit_gate(real)
    # At the 1st percentile each measure fails at most the lowest of these 24 faces.
    assert gate.passes(real).sum() >= len(real) - 3
    fragments = blobs((4, 4, 12, 12), (40, 10, 50, 20))
    assert not gate.passes(torch.cat([fragments, torch.full_like(fragments, -1)])).any()


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_contrast_is_the_pixel_standard_deviation_on_white(memory_format):
    from gan.data import composite

    images = torch.rand(5, 4, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = composite(images).std(dim=(2, 3)).mean(dim=1).numpy()
    got = contrast_on_white(images.contiguous(memory_format=memory_format))
    assert np.allclose(got, expected, atol=1e-6)


def test_a_faint_face_fails_on_contrast_where_a_drawn_one_passes():
    drawn = blobs((8, 8, 56, 56))
    drawn[0, :3, 30:34, 16:48] = -1.0  # a black mouth on the yellow face
    faint = drawn.clone()
    faint[0, :3] = 0.9  # white strokes on transparency: near blank on white
    contrast = contrast_on_white(torch.cat([drawn, faint]))
    assert contrast[0] > 0.5 > 0.1 > contrast[1]
    gate = ShapeGate(min_coverage=0.1, min_solidity=0.5, min_contrast=0.3)
    assert gate.passes(torch.cat([drawn, faint])).tolist() == [True, False]
    # A gate of older code (no contrast threshold) lets both through.
    assert ShapeGate(min_coverage=0.1, min_solidity=0.5).passes(faint).tolist() == [True]


@pytest.fixture(scope="module")
def rgba_run(tmp_path_factory, procedural_data):
    from gan import make_config

    config = make_config(
        "stable", body="fastgan", channels=4, ngf=8, ndf=8, nz=16, epochs=1, batch_size=16,
        eval_every=0,
    )  # fmt: skip
    return train(config, procedural_data, tmp_path_factory.mktemp("rgba"), "cpu", progress=False)


def test_rgba_runs_and_their_exports_carry_the_gate_of_their_data(rgba_run, procedural_data):
    expected = fit_gate(load_label_images(procedural_data, "positive", alpha=True)).to_dict()
    assert load_checkpoint(rgba_run)["gate"] == expected
    exported = export_generator(rgba_run, rgba_run.parent / "positive.pt")
    assert load_checkpoint(exported)["gate"] == expected
    assert EmojiSampler.from_checkpoint(exported, "cpu").gate == ShapeGate(**expected)
    assert EmojiSampler.from_checkpoint(exported, "cpu", gate=False).gate is None


def test_the_gated_sampler_redraws_rejects_and_a_seed_stays_a_seed(rgba_run):
    raw = EmojiSampler.from_checkpoint(rgba_run, "cpu", gate=False)
    draws = raw.sample_tensor([(3, 40)])[0]
    coverage, _ = shape_measures(draws)
    # A gate that rejects about half of this tiny model's samples.
    strict = ShapeGate(min_coverage=float(np.median(coverage)), min_solidity=0.0)
    gated = EmojiSampler(raw.generator, raw.config, raw.version, raw.device, strict)

    alone = gated.sample_tensor([(3, 4)])[0]
    batched = gated.sample_tensor([(9, 2), (3, 4), (5, 1)])[1]
    # The same emojis whatever else is in the batch (to float rounding across batch sizes).
    assert torch.allclose(alone, batched, atol=1e-5)
    passing = draws[torch.from_numpy(strict.passes(draws))]
    assert torch.allclose(alone, passing[:4], atol=1e-5)  # the first four that pass, in order
    assert not torch.equal(alone, draws[:4])  # some of the raw first four were redrawn


def test_a_request_the_gate_never_satisfies_still_gets_its_emojis(rgba_run):
    raw = EmojiSampler.from_checkpoint(rgba_run, "cpu", gate=False)
    impossible = ShapeGate(min_coverage=2.0, min_solidity=2.0)
    gated = EmojiSampler(raw.generator, raw.config, raw.version, raw.device, impossible)
    [images] = gated.sample_tensor([(3, 2)])
    assert images.shape == (2, 4, 64, 64)
    assert torch.allclose(images, raw.sample_tensor([(3, 2)])[0], atol=1e-5)  # first rejects


def test_export_refits_a_gate_saved_by_older_code(rgba_run, procedural_data, tmp_path):
    from gan.checkpoint import save_checkpoint
    from moodmoji.cli import main

    payload = load_checkpoint(rgba_run)
    payload["gate"] = {"min_coverage": 0.0, "min_solidity": 0.0}  # before min_contrast
    older = save_checkpoint(payload, tmp_path / "older.pt")
    out = tmp_path / "positive.pt"
    assert main(["export", str(older), "--out", str(out), "--data", str(procedural_data)]) == 0
    expected = fit_gate(load_label_images(procedural_data, "positive", alpha=True)).to_dict()
    assert load_checkpoint(out)["gate"] == expected and expected["min_contrast"] > 0


def test_shape_measures_of_a_batch_are_scipys_image_by_image():
    from scipy import ndimage

    def one_by_one(images):
        solidity = []
        for mask in images[:, 3].numpy() > 0:
            labels, count = ndimage.label(mask)
            if not count:
                solidity.append(0.0)
                continue
            largest = np.bincount(labels.ravel())[1:].argmax() + 1
            filled = ndimage.binary_fill_holes(labels == largest).sum()
            solidity.append(min(1.0, filled / mask.sum()))
        return np.array(solidity)

    rng = np.random.default_rng(5)
    noise = torch.from_numpy(rng.uniform(-1, 1, (12, 4, 20, 20)).astype(np.float32))
    noise[:2, 3] = -1  # nothing opaque
    ring = -torch.ones(1, 4, 20, 20)
    ring[:, 3, 4:16, 4:16] = 1
    ring[:, 3, 8:12, 8:12] = -1  # a hole, filled for solidity
    ring[:, 3, 17:20, 0:10] = 1  # and a smaller blob along the bottom
    images = torch.cat([noise, ring])
    coverage, solidity = shape_measures(images)
    assert np.allclose(solidity, one_by_one(images))
    assert coverage[0] == 0 and solidity[0] == 0
    assert solidity[-1] == pytest.approx(144 / (144 - 16 + 30))  # the ring, filled, of all
