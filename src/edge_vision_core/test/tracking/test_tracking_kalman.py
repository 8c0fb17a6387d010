"""BoxKalmanFilter: predict/update maths against the textbook formulas, batching, warping."""

from __future__ import annotations

import numpy as np
import pytest

from edge_vision_core.tracking import (
    BoxKalmanFilter,
    boxes_to_measurements,
    measurements_to_boxes,
)


def random_states(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mean = np.concatenate([rng.uniform(50, 500, (n, 2)), rng.uniform(10, 120, (n, 2)),
                           rng.normal(0, 2, (n, 4))], axis=1)
    a = rng.normal(0, 1, (n, 8, 8))
    cov = a @ np.transpose(a, (0, 2, 1)) + 0.5 * np.eye(8)  # symmetric positive definite
    return mean, cov


def transition(dt: float) -> np.ndarray:
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    return f


@pytest.mark.parametrize('dt', [1.0, 0.5, 3.0, 40.0])
def test_predict_is_f_p_ft_plus_q(dt):
    kf = BoxKalmanFilter()
    mean, cov = random_states(4)
    new_mean, new_cov = kf.predict(mean, cov, dt)
    f = transition(dt)
    for i in range(4):
        w, h = mean[i, 2], mean[i, 3]
        size = np.array([w, h, w, h])
        q = np.diag(np.concatenate([(size / 20) ** 2, (size / 160) ** 2]) * dt)
        np.testing.assert_allclose(new_mean[i], f @ mean[i])
        np.testing.assert_allclose(new_cov[i], f @ cov[i] @ f.T + q, rtol=1e-12)


def test_update_matches_textbook_kalman_gain():
    kf = BoxKalmanFilter()
    mean, cov = random_states(3, seed=1)
    z = mean[:, :4] + np.array([3.0, -2.0, 1.5, 4.0])
    new_mean, new_cov = kf.update(mean, cov, z)
    h = np.hstack([np.eye(4), np.zeros((4, 4))])
    for i in range(3):
        w, hh = mean[i, 2], mean[i, 3]
        r = np.diag((np.array([w, hh, w, hh]) / 20) ** 2)
        s = h @ cov[i] @ h.T + r
        k = cov[i] @ h.T @ np.linalg.inv(s)
        np.testing.assert_allclose(new_mean[i], mean[i] + k @ (z[i] - h @ mean[i]), rtol=1e-9)
        np.testing.assert_allclose(new_cov[i], (np.eye(8) - k @ h) @ cov[i], rtol=1e-7,
                                   atol=1e-9)
        assert np.all(np.linalg.eigvalsh(new_cov[i]) > 0)


def test_batch_equals_one_by_one():
    kf = BoxKalmanFilter()
    mean, cov = random_states(5, seed=2)
    z = mean[:, :4] + 1.0
    bm, bc = kf.update(*kf.predict(mean, cov, 2.0), z)
    for i in range(5):
        m1, c1 = kf.update(*kf.predict(mean[i:i + 1], cov[i:i + 1], 2.0), z[i:i + 1])
        np.testing.assert_allclose(bm[i], m1[0])
        np.testing.assert_allclose(bc[i], c1[0])


def test_empty_batches():
    kf = BoxKalmanFilter()
    mean, cov = kf.initiate(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, 8, 8)
    assert kf.predict(mean, cov)[0].shape == (0, 8)
    assert kf.update(mean, cov, np.zeros((0, 4)))[1].shape == (0, 8, 8)


def test_constant_velocity_is_learned():
    kf = BoxKalmanFilter()
    start = np.array([[100.0, 50.0, 40.0, 80.0]])
    velocity = np.array([3.0, -1.5, 0.0, 0.0])
    mean, cov = kf.initiate(start)
    for t in range(1, 40):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, start + t * velocity)
    np.testing.assert_allclose(mean[0, 4:], velocity, atol=0.05)
    predicted, _ = kf.predict(mean, cov, 10.0)
    np.testing.assert_allclose(predicted[0, :4], start[0] + 49 * velocity, atol=1.0)


def test_warp_translates_centres_and_scales_sizes():
    kf = BoxKalmanFilter()
    mean, cov = random_states(3, seed=3)
    angle, scale = 0.1, 1.2
    a = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    affine = np.hstack([a, [[5.0], [-7.0]]])
    new_mean, new_cov = kf.warp(mean, cov, affine)
    np.testing.assert_allclose(new_mean[:, :2], mean[:, :2] @ a.T + [5.0, -7.0])
    np.testing.assert_allclose(new_mean[:, 2:4], scale * mean[:, 2:4])
    np.testing.assert_allclose(new_mean[:, 4:6], mean[:, 4:6] @ a.T)
    np.testing.assert_allclose(new_mean[:, 6:8], scale * mean[:, 6:8])
    # identity warp leaves everything unchanged
    same_mean, same_cov = kf.warp(mean, cov, np.eye(2, 3))
    np.testing.assert_allclose(same_mean, mean)
    np.testing.assert_allclose(same_cov, cov)
    assert np.allclose(new_cov, np.transpose(new_cov, (0, 2, 1)))


def test_box_measurement_round_trip_and_clamping():
    boxes = np.array([[10.0, 20.0, 50.0, 100.0], [0.0, 0.0, 1.0, 1.0]])
    z = boxes_to_measurements(boxes)
    np.testing.assert_allclose(z, [[30, 60, 40, 80], [0.5, 0.5, 1, 1]])
    np.testing.assert_allclose(measurements_to_boxes(z), boxes)
    shrunk = measurements_to_boxes(np.array([[10.0, 10.0, -5.0, 0.2]]))
    np.testing.assert_allclose(shrunk, [[9.5, 9.5, 10.5, 10.5]])
