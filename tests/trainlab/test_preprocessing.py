"""Preprocessing: statistics fitted on training data, applied to test data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from tests.helpers import assert_close
from trainlab.preprocessing import (
    PCA,
    ChannelMean,
    ChannelStandardize,
    MeanImage,
    NotFittedError,
    Standardize,
    Whiten,
    ZeroCenter,
    channel_mean,
    channel_mean_std,
    mean_image,
)

pytestmark = pytest.mark.preprocessing


def correlated(n: int, gen: torch.Generator, device, d: int = 5) -> torch.Tensor:
    """Correlated, offset, differently scaled features: (n, d) float64."""
    mix = torch.randn(d, d, generator=gen, dtype=torch.float64)
    scale = torch.linspace(0.5, 4.0, d, dtype=torch.float64)
    offset = torch.linspace(-3.0, 12.0, d, dtype=torch.float64)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) @ mix * scale + offset
    return X.to(device)


# ---------------------------------------------------------------- features


def test_zero_center_train_mean_zero_and_test_uses_train_mean(device, gen):
    X_train = correlated(50, gen, device)
    X_test = correlated(7, gen, device) + 2.0  # a shifted test set
    zc = ZeroCenter().fit(X_train)
    assert zc.mean.shape == (5,)
    assert zc.transform(X_train).mean(0).abs().max() < 1e-12
    assert_close(zc.transform(X_test), X_test - X_train.mean(0), what="test")
    # the test set is not centered on its own mean
    assert zc.transform(X_test).mean(0).abs().max() > 0.5


def test_standardize_matches_numpy_biased_std(device, gen):
    X_train = correlated(6, gen, device)  # small N: biased != unbiased by ~9 %
    X_test = correlated(4, gen, device)
    st = Standardize().fit(X_train)
    Xn = X_train.cpu().numpy()
    assert_close(st.mean, torch.from_numpy(Xn.mean(0)), what="mean")
    assert_close(st.std, torch.from_numpy(Xn.std(0)), what="std (ddof=0)")
    Z = st.transform(X_train)
    assert Z.mean(0).abs().max() < 1e-12
    assert_close(Z.std(0, correction=0), torch.ones(5, dtype=torch.float64))
    expected = (X_test.cpu().numpy() - Xn.mean(0)) / Xn.std(0)
    assert_close(st.transform(X_test), torch.from_numpy(expected), what="test")


def test_standardize_constant_feature_gives_zeros_not_nan(gen):
    X = correlated(10, gen, "cpu")
    X[:, 2] = 7.0
    Z = Standardize().fit_transform(X)
    assert torch.isfinite(Z).all()
    assert (Z[:, 2] == 0).all()


def test_pca_components_orthonormal_sorted_and_decorrelated(device, gen):
    X = correlated(200, gen, device)
    pca = PCA().fit(X)
    U, lam = pca.components, pca.variances
    assert U.shape == (5, 5) and lam.shape == (5,)
    assert_close(U.T @ U, torch.eye(5, dtype=torch.float64), what="U^T U")
    assert (lam[:-1] >= lam[1:]).all(), f"variances not descending: {lam}"
    Z = pca.transform(X)
    cov = Z.T @ Z / X.shape[0]  # (5, 5)
    assert_close(cov, torch.diag(lam), what="covariance of projected data")
    # total variance is preserved by a rotation
    assert_close(lam.sum(), X.var(0, correction=0).sum())
    # all components: the projection is invertible
    assert_close(Z @ U.T + pca.mean, X, what="reconstruction")


def test_pca_matches_sklearn_up_to_sign(gen):
    X = correlated(80, gen, "cpu")
    pca = PCA(num_components=3).fit(X)
    ref = SkPCA(n_components=3).fit(X.numpy())
    n = X.shape[0]
    # sklearn divides by n - 1; this PCA divides by n like the lecture
    assert_close(pca.variances, torch.from_numpy(ref.explained_variance_ * (n - 1) / n))
    Z = pca.transform(X)
    assert Z.shape == (80, 3)
    assert_close(Z.abs(), torch.from_numpy(np.abs(ref.transform(X.numpy()))))


def test_pca_sign_is_fixed(gen):
    X = correlated(30, gen, "cpu")
    U = PCA().fit(X).components
    rows = U.abs().argmax(0)
    assert (U[rows, torch.arange(5)] > 0).all(), "largest entry of each axis > 0"
    # -X has the same covariance, hence the same axes once the sign is fixed
    assert_close(PCA().fit(-X).components, U)


def test_whiten_identity_covariance(device, gen):
    X = correlated(300, gen, device)
    Z = Whiten(eps=0.0).fit_transform(X)
    assert Z.shape == X.shape
    cov = Z.T @ Z / X.shape[0]
    assert_close(cov, torch.eye(5, dtype=torch.float64), what="whitened covariance")
    # the default eps shrinks each variance to lambda / (lambda + eps): close to 1
    Z = Whiten().fit_transform(X)
    err = (Z.T @ Z / X.shape[0] - torch.eye(5, device=device)).abs().max()
    assert err < 1e-4


def test_whiten_test_set_uses_train_statistics(gen):
    X_train, X_test = correlated(100, gen, "cpu"), correlated(9, gen, "cpu")
    w = Whiten(eps=1e-3).fit(X_train)
    mean = X_train.mean(0)
    evals, evecs = np.linalg.eigh(((X_train - mean).T @ (X_train - mean) / 100).numpy())
    evals, evecs = evals[::-1], evecs[:, ::-1]  # descending, as PCA sorts them
    expected = (X_test - mean).numpy() @ evecs / np.sqrt(evals + 1e-3)
    assert_close(w.transform(X_test).abs(), torch.from_numpy(np.abs(expected)))


# ---------------------------------------------------------------- images


def images(gen, device) -> torch.Tensor:
    offsets = torch.tensor([120.0, 20.0, -50.0], dtype=torch.float64)[:, None, None]
    X = 30 * torch.randn(6, 3, 4, 5, generator=gen, dtype=torch.float64) + offsets
    return X.to(device)


def test_image_statistics_match_explicit_loops(device, gen):
    X = images(gen, device)
    N, C, H, W = X.shape
    mean_img = torch.zeros(C, H, W, dtype=torch.float64, device=device)
    for n in range(N):
        mean_img += X[n] / N
    assert mean_image(X).shape == (C, H, W)
    assert_close(mean_image(X), mean_img, what="mean_image")
    means, stds = [], []
    for c in range(C):
        values = [
            float(X[n, c, h, w]) for n in range(N) for h in range(H) for w in range(W)
        ]
        m = sum(values) / len(values)
        means.append(m)
        stds.append((sum((v - m) ** 2 for v in values) / len(values)) ** 0.5)
    means_t = torch.tensor(means, dtype=torch.float64)
    assert_close(channel_mean(X), means_t, what="channel_mean")
    m, s = channel_mean_std(X)
    assert m.shape == s.shape == (C,)
    assert_close(m, means_t)
    assert_close(s, torch.tensor(stds, dtype=torch.float64), what="biased channel std")


def test_image_transforms_use_training_statistics(device, gen):
    X_train, X_test = images(gen, device), images(gen, device)
    mi = MeanImage().fit(X_train)
    assert_close(mi.transform(X_test), X_test - X_train.mean(0))
    cm = ChannelMean().fit(X_train)
    mu = X_train.mean((0, 2, 3))
    assert_close(cm.transform(X_test), X_test - mu.view(1, 3, 1, 1))
    cs = ChannelStandardize().fit(X_train)
    sd = X_train.std((0, 2, 3), correction=0)
    expected = (X_test - mu.view(1, 3, 1, 1)) / sd.view(1, 3, 1, 1)
    assert_close(cs.transform(X_test), expected)
    Z = cs.transform(X_train)
    assert_close(Z.std((0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "cls, shape",
    [
        (ZeroCenter, (4, 3)),
        (Standardize, (4, 3)),
        (PCA, (4, 3)),
        (Whiten, (4, 3)),
        (MeanImage, (4, 3, 2, 2)),
        (ChannelMean, (4, 3, 2, 2)),
        (ChannelStandardize, (4, 3, 2, 2)),
    ],
)
def test_transform_before_fit_is_a_clear_error(cls, shape):
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(X_train\)"):
        cls().transform(torch.randn(shape))


def test_feature_count_mismatch_is_a_clear_error():
    st = Standardize().fit(torch.randn(10, 64))
    with pytest.raises(
        ValueError,
        match=r"fitted on inputs of shape \(N, 64\).*"
        r"shape \(5, 32\)",
    ):
        st.transform(torch.randn(5, 32))
    cm = ChannelMean().fit(torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, 3, 8, 8\).*\(2, 1, 8, 8\)"):
        cm.transform(torch.randn(2, 1, 8, 8))


def test_other_input_errors():
    with pytest.raises(ValueError, match="must have 2 dimensions"):
        ZeroCenter().fit(torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="at least one sample"):
        Standardize().fit(torch.randn(0, 4))
    with pytest.raises(ValueError, match="num_components must be between 1 and .* 4"):
        PCA(num_components=5).fit(torch.randn(10, 4))
    with pytest.raises(TypeError, match="dtype"):
        ZeroCenter().fit(torch.randn(10, 4)).transform(torch.randn(2, 4).double())
    # a failed refit leaves the transform unfitted rather than half fitted
    pca = PCA(num_components=3).fit(torch.randn(10, 4))
    with pytest.raises(ValueError):
        pca.fit(torch.randn(10, 2))
    with pytest.raises(NotFittedError):
        pca.transform(torch.randn(10, 2))
