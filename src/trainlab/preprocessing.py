r"""Data preprocessing: statistics fitted on the training set, applied to any set.

The rule the lecture stresses: compute every statistic (mean, std, principal
axes) on the **training data only**, then apply the same transform to the
validation and test data. Each transform here is a small class with ``fit`` and
``transform``, so that rule is what the code makes easy. The computations
themselves are plain functions the classes call (`feature_mean_std`,
`standardize`, `pca_fit`, `whiten`): the functions students write.

Features, ``X`` of shape ``(N, D)``:

- `ZeroCenter`: $x - \mu$
- `Standardize`: $(x - \mu) / \sigma$
- `PCA`: project the centered data on the top-$k$ eigenvectors of the
  covariance (decorrelated features)
- `Whiten`: PCA, then divide each component by $\sqrt{\lambda + \epsilon}$
  (identity covariance)

Images, ``X`` of shape ``(N, C, H, W)``, in the styles of well-known networks:

- `MeanImage`: subtract the mean image, shape ``(C, H, W)`` (AlexNet)
- `ChannelMean`: subtract the per-channel mean, shape ``(C,)`` (VGG)
- `ChannelStandardize`: per-channel mean and std (ResNet)

Convention: every standard deviation and covariance here is the **biased**
(population) one, dividing by $N$, like the lecture's ``np.std(X, axis=0)`` and
``X.T @ X / N``; ``torch.std`` divides by $N - 1$ unless told otherwise.
"""

from __future__ import annotations

from typing import Self

import torch

from trainlab._validate import check_compatible, check_tensor

# ----------------------------------------------------------------------------
# the computations, as plain functions (the classes below call them)


def feature_mean_std(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-feature mean and standard deviation: the statistics of normalization.

    $$\mu_d = \frac{1}{N} \sum_i X_{id}, \qquad
    \sigma_d = \sqrt{\frac{1}{N} \sum_i (X_{id} - \mu_d)^2}$$

    Zero-centering subtracts $\mu$; normalization then divides by $\sigma$.

    Args:
        X: training data, one sample per row.

    Returns:
        ``(mean, std)``, each of shape ``(D,)``.

    Shape:
        X: ``(N, D)``.

    Convention: the **biased** (population) std, dividing by $N$ like the
    lecture's ``np.std(X, axis=0)``; ``torch.std`` divides by $N - 1$ unless
    given ``correction=0``.
    """
    X = check_tensor(X, "X", ndim=2)
    mean = X.mean(dim=0)  # (D,)
    std = X.std(dim=0, correction=0)  # (D,) biased
    return mean, std


def standardize(
    X: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    r"""Zero-center and normalize ``X`` with statistics fitted on the training data.

    $$X'_{id} = \frac{X_{id} - \mu_d}{\max(\sigma_d, \epsilon)}$$

    Args:
        X: data to transform (training, validation or test).
        mean: per-feature mean of the **training** data, shape ``(D,)``.
        std: per-feature std of the **training** data, shape ``(D,)``.
        eps: floor on $\sigma$ (default ``1e-8``): a constant feature (a pixel
            that is always 0) maps to 0 instead of 0 / 0 = NaN.

    Returns:
        The standardized data, shape ``(N, D)``.

    Shape:
        X: ``(N, D)``; mean, std: ``(D,)``; output ``(N, D)``.
    """
    X = check_tensor(X, "X", ndim=2)
    return (X - mean) / std.clamp_min(eps)


def pca_fit(
    X: torch.Tensor, num_components: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Principal axes of the training data: eigenvectors of its covariance.

    $$\Sigma = \tfrac{1}{N} X_c^\top X_c = U \Lambda U^\top, \qquad
    X_c = X - \mu$$

    with the eigenvalues $\lambda_1 \ge \lambda_2 \ge \dots$ in descending
    order; the top $k$ columns of $U$ are the principal components.

    Args:
        X: training data, one sample per row.
        num_components: $k$, how many components to keep (default ``None``:
            all $D$).

    Returns:
        ``(mean, components, variances)``: the training mean ``(D,)``, the
        principal axes as orthonormal columns ``(D, k)``, and the variance along
        each axis (the eigenvalues) ``(k,)``, largest first.

    Shape:
        X: ``(N, D)``.

    Convention: the data is centered first and the covariance divides by $N$
    (``X.T @ X / N`` in the lecture). Each axis is defined only up to its sign,
    and either sign is right; this implementation makes the entry of largest
    magnitude of each column positive, so that its results are repeatable.
    """
    X = check_tensor(X, "X", ndim=2)
    N, D = X.shape
    k = D if num_components is None else num_components
    if not 1 <= k <= D:
        raise ValueError(
            f"num_components must be between 1 and the number of features "
            f"{D}; got {num_components}"
        )
    mean = X.mean(dim=0)  # (D,)
    Xc = X - mean  # (N, D)
    cov = Xc.T @ Xc / N  # (D, D)
    evals, evecs = torch.linalg.eigh(cov)  # ascending order
    order = torch.argsort(evals, descending=True)[:k]
    U = evecs[:, order]  # (D, k)
    # fix the sign: largest-magnitude entry of each column positive
    rows = U.abs().argmax(dim=0)  # (k,)
    signs = torch.sign(U[rows, torch.arange(k, device=U.device)])
    components = U * torch.where(signs == 0, 1.0, signs).to(U.dtype)
    # rounding can make tiny eigenvalues slightly negative
    variances = evals[order].clamp_min(0.0)
    return mean, components, variances


def whiten(
    X: torch.Tensor,
    mean: torch.Tensor,
    components: torch.Tensor,
    variances: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""PCA whitening with statistics from :func:`pca_fit` on the training data.

    $$X' = \frac{(X - \mu)\, U}{\sqrt{\lambda + \epsilon}}$$

    Project the centered data on the principal axes (decorrelate), then divide
    each component by its standard deviation: the training data gets the
    identity covariance, up to $\epsilon$.

    Args:
        X: data to transform.
        mean: training mean ``(D,)``.
        components: principal axes ``(D, k)``.
        variances: eigenvalues ``(k,)``.
        eps: added to every variance before the square root (default
            ``1e-5``): directions of (almost) no variance are noise, and
            dividing by $\sqrt{0}$ would blow them up to infinity.

    Returns:
        The whitened data, shape ``(N, k)``.

    Shape:
        X: ``(N, D)``; output ``(N, k)``.
    """
    X = check_tensor(X, "X", ndim=2)
    Xrot = (X - mean) @ components  # (N, k)
    return Xrot / torch.sqrt(variances + eps)


class NotFittedError(RuntimeError):
    """Raised when ``transform`` is called before ``fit``."""


class _Fitted:
    """Shared ``fit`` / ``transform`` plumbing and checks for the transforms below.

    A subclass implements ``_fit(X)`` (compute and store statistics) and
    ``_transform(X)`` (apply them); the checks live here once.
    """

    #: number of dimensions of the inputs (2 for features, 4 for images)
    _ndim = 2
    _layout = "(N, D)"

    def __init__(self) -> None:
        #: the shape of one sample seen by ``fit``; ``None`` until fitted
        self.feature_shape: tuple[int, ...] | None = None

    def fit(self, X: torch.Tensor) -> Self:
        """Compute the statistics on the training data ``X``; returns ``self``."""
        name = type(self).__name__
        X = check_tensor(X, "X", ndim=self._ndim)
        if X.shape[0] == 0:
            raise ValueError(
                f"{name}.fit needs at least one sample; got X of shape {tuple(X.shape)}"
            )
        self.feature_shape = None  # a failed fit leaves the transform unfitted
        self._fit(X)
        self.feature_shape = tuple(X.shape[1:])
        return self

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """Apply the statistics fitted on the training data to ``X``."""
        name = type(self).__name__
        if self.feature_shape is None:
            raise NotFittedError(
                f"{name} is not fitted yet: call fit(X_train) on the training data "
                f"before transform(X)"
            )
        X = check_tensor(X, "X", ndim=self._ndim)
        if tuple(X.shape[1:]) != self.feature_shape:
            want = ", ".join(str(s) for s in self.feature_shape)
            raise ValueError(
                f"{name} was fitted on inputs of shape (N, {want}); transform got X "
                f"of shape {tuple(X.shape)}. Transform data laid out {self._layout} "
                f"with the same features as the training data."
            )
        check_compatible(self.mean, "the fitted mean", X=X)
        return self._transform(X)

    def fit_transform(self, X: torch.Tensor) -> torch.Tensor:
        """Fit on ``X``, then transform ``X``."""
        return self.fit(X).transform(X)

    def _fit(self, X: torch.Tensor) -> None:
        raise NotImplementedError

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ZeroCenter(_Fitted):
    r"""Subtract the per-feature mean of the training data.

    $$x' = x - \mu, \qquad \mu = \frac{1}{N} \sum_i x_i$$

    Attributes (after ``fit``):
        mean: per-feature mean of the training data, shape ``(D,)``.

    Shape:
        X: ``(N, D)`` in ``fit`` and ``transform``; output ``(N, D)``.

    Example:
        >>> zc = ZeroCenter().fit(X_train)
        >>> X_test_c = zc.transform(X_test)   # uses the training mean
    """

    def __init__(self) -> None:
        super().__init__()
        self.mean: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean = X.mean(dim=0)  # (D,)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return X - self.mean


class Standardize(_Fitted):
    r"""Zero mean and unit standard deviation per feature, from training statistics.

    $$x' = \frac{x - \mu}{\max(\sigma, \epsilon)}, \qquad
    \sigma = \sqrt{\tfrac{1}{N} \textstyle\sum_i (x_i - \mu)^2}$$

    Args:
        eps: floor on $\sigma$ (default ``1e-8``), so that a constant feature
            (such as a pixel that is always 0) maps to 0 instead of dividing by 0.

    Attributes (after ``fit``):
        mean, std: per-feature statistics of the training data, shape ``(D,)``.

    Shape:
        X: ``(N, D)``; output ``(N, D)``.

    Convention: ``std`` is the biased (population) standard deviation, dividing
    by $N$, as ``np.std`` does; ``torch.std`` divides by $N - 1$ by default.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean, self.std = feature_mean_std(X)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return standardize(X, self.mean, self.std, self.eps)


class PCA(_Fitted):
    r"""Principal component analysis: rotate centered data onto its principal axes.

    $$\Sigma = \tfrac{1}{N} X_c^\top X_c = U \Lambda U^\top, \qquad
    x' = (x - \mu)\, U_{:, :k}$$

    with the eigenvalues $\lambda_1 \ge \lambda_2 \ge \dots$ sorted in
    descending order. The transformed features are decorrelated: their
    covariance on the training data is $\mathrm{diag}(\lambda_1, \dots,
    \lambda_k)$.

    Args:
        num_components: $k$, how many components to keep (default ``None``: all
            $D$). Keeping fewer is dimensionality reduction.

    Attributes (after ``fit``):
        mean: ``(D,)`` training mean.
        components: ``(D, k)``, orthonormal columns, the principal axes.
        variances: ``(k,)``, the eigenvalues $\lambda$ (variance along each axis),
            descending.

    Shape:
        X: ``(N, D)``; output ``(N, k)``.

    Convention: the covariance divides by $N$ (``X.T @ X / N`` in the lecture).
    Each axis is only defined up to its sign; here the sign is fixed so that the
    entry of largest magnitude of each column is positive, so fits are repeatable.
    """

    def __init__(self, num_components: int | None = None) -> None:
        super().__init__()
        self.num_components = num_components
        self.mean: torch.Tensor | None = None
        self.components: torch.Tensor | None = None
        self.variances: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean, self.components, self.variances = pca_fit(X, self.num_components)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.mean) @ self.components  # (N, k)


class Whiten(PCA):
    r"""PCA whitening: decorrelate, then scale every component to unit variance.

    $$x' = \frac{(x - \mu)\, U}{\sqrt{\lambda + \epsilon}}$$

    On the training data the covariance of $x'$ is
    $\mathrm{diag}(\lambda / (\lambda + \epsilon))$, the identity up to
    $\epsilon$.

    Args:
        eps: added to every variance before the square root (default ``1e-5``);
            it keeps directions of almost no variance (noise) from being blown up.
        num_components: keyword-only, as in `PCA` (default ``None``: all).

    Attributes: those of `PCA`.

    Shape:
        X: ``(N, D)``; output ``(N, k)`` (``(N, D)`` by default).
    """

    def __init__(self, eps: float = 1e-5, *, num_components: int | None = None):
        super().__init__(num_components)
        self.eps = eps

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return whiten(X, self.mean, self.components, self.variances, self.eps)


# ----------------------------------------------------------------------------
# images (N, C, H, W)


def _check_images(X: object) -> torch.Tensor:
    return check_tensor(X, "X", ndim=4)


def mean_image(X: torch.Tensor) -> torch.Tensor:
    r"""The mean over the batch of images, one value per channel and pixel.

    $$\bar{x}_{c,h,w} = \tfrac{1}{N} \textstyle\sum_n x_{n,c,h,w}$$

    Shape:
        X: ``(N, C, H, W)``; returns ``(C, H, W)``.
    """
    return _check_images(X).mean(dim=0)


def channel_mean(X: torch.Tensor) -> torch.Tensor:
    r"""The mean of each channel over the batch and all pixels.

    $$\mu_c = \tfrac{1}{NHW} \textstyle\sum_{n,h,w} x_{n,c,h,w}$$

    Shape:
        X: ``(N, C, H, W)``; returns ``(C,)``.
    """
    return _check_images(X).mean(dim=(0, 2, 3))


def channel_mean_std(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each channel over the batch and all pixels.

    Returns:
        ``(mean, std)``, each of shape ``(C,)``.

    Convention: ``std`` is biased (divides by $NHW$).
    """
    X = _check_images(X)
    return X.mean(dim=(0, 2, 3)), X.std(dim=(0, 2, 3), correction=0)


class MeanImage(_Fitted):
    """Subtract the training mean image, shape ``(C, H, W)`` (AlexNet style).

    Attributes (after ``fit``):
        mean: ``(C, H, W)``.

    Shape:
        X: ``(N, C, H, W)``; output the same shape.
    """

    _ndim = 4
    _layout = "(N, C, H, W)"

    def __init__(self) -> None:
        super().__init__()
        self.mean: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean = mean_image(X)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return X - self.mean


class ChannelMean(_Fitted):
    """Subtract the training mean of each channel, shape ``(C,)`` (VGG style).

    Attributes (after ``fit``):
        mean: ``(C,)``.

    Shape:
        X: ``(N, C, H, W)``; output the same shape.
    """

    _ndim = 4
    _layout = "(N, C, H, W)"

    def __init__(self) -> None:
        super().__init__()
        self.mean: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean = channel_mean(X)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return X - self.mean[:, None, None]  # (C, 1, 1) broadcasts over H, W


class ChannelStandardize(_Fitted):
    r"""Per-channel mean and std from the training set (ResNet style).

    $$x'_{n,c,h,w} = \frac{x_{n,c,h,w} - \mu_c}{\max(\sigma_c, \epsilon)}$$

    Args:
        eps: floor on $\sigma_c$ (default ``1e-8``).

    Attributes (after ``fit``):
        mean, std: ``(C,)``; ``std`` biased.

    Shape:
        X: ``(N, C, H, W)``; output the same shape.
    """

    _ndim = 4
    _layout = "(N, C, H, W)"

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def _fit(self, X: torch.Tensor) -> None:
        self.mean, self.std = channel_mean_std(X)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        mean = self.mean[:, None, None]  # (C, 1, 1)
        std = self.std.clamp_min(self.eps)[:, None, None]  # (C, 1, 1)
        return (X - mean) / std
