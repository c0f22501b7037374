"""Precision / recall / density / coverage, distinct colours and memorisation."""

import numpy as np
import pytest
import torch

from gan import load_label_images
from gan.metrics import PIXEL_METRICS, Evaluator, inception_features
from gan.metrics.fidelity import (
    distinct_colours,
    nearest_neighbour_ratios,
    precision_recall_density_coverage,
)


@pytest.fixture(scope="module")
def faces_and_noise(procedural_data):
    faces = load_label_images(procedural_data, "positive")
    noise = torch.rand(faces.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return faces, inception_features(faces), inception_features(noise)


def test_a_set_against_itself_scores_one(faces_and_noise):
    _, faces, _ = faces_and_noise
    scores = precision_recall_density_coverage(faces, faces)
    assert (scores.precision, scores.recall, scores.coverage) == (1.0, 1.0, 1.0)
    assert scores.density == pytest.approx(1.2, abs=0.3)  # each point sits in about k+1 balls


def test_noise_against_faces_scores_zero(faces_and_noise):
    _, faces, noise = faces_and_noise
    scores = precision_recall_density_coverage(faces, noise)
    assert scores.precision == 0.0 and scores.recall == 0.0
    assert scores.coverage == 0.0 and scores.density == 0.0


def test_precision_counts_the_samples_that_look_real(faces_and_noise):
    _, faces, noise = faces_and_noise
    half_noise = np.concatenate([faces[:12], noise[:12]])
    assert precision_recall_density_coverage(faces, half_noise).precision == 0.5


def test_distinct_colours_count_flat_art_low_and_noise_high(faces_and_noise):
    flat = torch.zeros(1, 3, 64, 64)
    flat[:, 0, :32] = 1.0  # two colours
    noise = torch.rand(1, 3, 64, 64) * 2 - 1
    faces = faces_and_noise[0]
    assert distinct_colours(flat).tolist() == [2]
    assert distinct_colours(noise)[0] > 3000
    assert np.median(distinct_colours(faces)) < 200


def test_a_copy_is_memorised_and_a_blend_is_not(faces_and_noise):
    faces = faces_and_noise[0]
    copy, blend = faces[:1], (faces[1:2] + faces[2:3]) / 2
    ratios = nearest_neighbour_ratios(torch.cat([copy, blend]), faces)
    # Zero up to the rounding of |a|^2 + |b|^2 - 2ab, which depends on the BLAS (4e-7 here).
    assert ratios[0] < 1e-4
    assert ratios[1] > 1 / 3


def test_rgba_samples_are_scored_on_white_like_the_real_images(procedural_data, tmp_path):
    rgba = load_label_images(procedural_data, "positive", alpha=True)
    metrics = ("fid", "precision", "coverage", *PIXEL_METRICS)
    evaluator = Evaluator(rgba, "cpu", tmp_path, metrics)
    scores = evaluator.score(rgba)  # the training images themselves, RGBA
    assert scores["fid"] < 1e-3 and scores["precision"] == scores["coverage"] == 1.0
    assert scores["memorised"] == 1.0 and scores["nn_ratio_min"] == pytest.approx(0.0, abs=1e-6)
    assert scores["colours"] == scores["colours_real"]
