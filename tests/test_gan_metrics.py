"""FID, KID and the domain classifier, with the real TF-Inception features."""

import numpy as np
import pytest
import torch

from gan import load_label_images
from gan.metrics import (
    METRICS,
    Evaluator,
    frechet_distance,
    inception_features,
    kernel_inception_distance,
    load_or_train_classifier,
)
from gan.metrics.classifier import class_consistency, domain_inception_score


@pytest.fixture(scope="module")
def faces_and_noisy_faces(procedural_data):
    faces = load_label_images(procedural_data, "positive")[:16]
    generator = torch.Generator().manual_seed(0)
    noisy = [
        (faces + s * torch.randn(faces.shape, generator=generator)).clamp(-1, 1) for s in (0.1, 0.4)
    ]
    features = [inception_features(images) for images in (faces, *noisy)]
    return features


def test_inception_features_are_2048_wide(faces_and_noisy_faces):
    assert faces_and_noisy_faces[0].shape == (16, 2048)


def test_fid_of_a_set_with_itself_is_about_zero_and_grows_with_noise(faces_and_noisy_faces):
    clean, light, heavy = faces_and_noisy_faces
    same = frechet_distance(clean, clean)
    assert same < 1e-3
    assert same < frechet_distance(clean, light) < frechet_distance(clean, heavy)


def test_kid_of_a_set_with_itself_is_about_zero_and_grows_with_noise(faces_and_noisy_faces):
    clean, light, heavy = faces_and_noisy_faces
    same = kernel_inception_distance(clean, clean, subsets=10)
    assert abs(same) < 0.02
    light_kid = kernel_inception_distance(clean, light, subsets=10)
    assert same < light_kid < kernel_inception_distance(clean, heavy, subsets=10)


def test_fid_matches_the_closed_form_for_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(20000, 3))
    b = rng.normal(1.0, 2.0, size=(20000, 3))
    # ||mu_a - mu_b||^2 + tr(Ca + Cb - 2 (Ca Cb)^1/2) = 3 + 3 * (1 + 4 - 4) = 6
    assert frechet_distance(a, b) == pytest.approx(6.0, rel=0.05)


def test_metrics_are_registered_by_name():
    assert {"fid", "kid", "domain_is", "class_consistency"} <= set(METRICS)


def test_classifier_scores_real_images_consistently(procedural_data, tmp_path):
    classifier, info = load_or_train_classifier(procedural_data, tmp_path)
    assert info["holdout_accuracy"] >= 0.8  # mouths up vs down are easy to tell apart
    positive = load_label_images(procedural_data, "positive")
    evaluator = Evaluator(
        positive,
        metrics=("domain_is", "class_consistency"),
        classifier=classifier,
        label="positive",
        cache_dir=tmp_path,
    )
    scores = evaluator.score(positive)
    assert scores["class_consistency"] >= 0.8
    assert 1.0 <= scores["domain_is"] <= 2.0
    # The second call reads the cached classifier instead of training again.
    _, info_again = load_or_train_classifier(procedural_data, tmp_path)
    assert info_again == info


def test_domain_is_and_consistency_on_known_predictions():
    confident_split = np.array([[1.0, 0.0], [0.0, 1.0]] * 5)
    assert domain_inception_score(confident_split) == pytest.approx(2.0, rel=1e-6)
    assert domain_inception_score(np.full((10, 2), 0.5)) == pytest.approx(1.0)
    assert class_consistency(confident_split, "positive") == 0.5


def test_real_features_are_cached_on_disk(procedural_data, tmp_path):
    real = load_label_images(procedural_data, "negative")[:4]
    evaluator = Evaluator(real, cache_dir=tmp_path)
    first = evaluator.real_features
    assert len(list((tmp_path / "inception").glob("*.npy"))) == 1
    assert np.array_equal(Evaluator(real, cache_dir=tmp_path).real_features, first)


def test_the_judge_does_not_depend_on_the_thread_count(procedural_data, tmp_path):
    # Scores are compared across machines, so the classifier must come out the same
    # whatever the caller's torch thread count.
    threads = torch.get_num_threads()
    judges = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            judges.append(load_or_train_classifier(procedural_data, tmp_path / str(count))[0])
            assert torch.get_num_threads() == count  # restored for the caller
    finally:
        torch.set_num_threads(threads)
    one, two = (judge.state_dict() for judge in judges)
    assert all(torch.equal(one[name], two[name]) for name in one)
