"""Input validation for the public API: clear errors instead of deep tracebacks."""

import numpy as np

from .errors import InputError


def _asarray(a, name):
    """np.asarray(a), with ragged or otherwise unconvertible input as an InputError."""
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:
        raise InputError(f"{name} cannot be read as an array ({e})") from None


def check_X(X, n_features, dtype, pixels=True):
    """X as a C-contiguous (n, n_features) array: uint8 kept, other reals validated.

    Images (n, 28, 28) are flattened when ``n_features == 784``.

    With ``pixels=True`` (the MNIST-facing API) X holds pixel intensities: integers of any
    dtype with values in 0..255 become uint8 (then handled exactly as uint8 images), and floats
    must already be scaled to [0, 1]; anything else is an InputError that names the fix. With
    ``pixels=False`` (general features, e.g. standardized) integers and floats are cast to
    `dtype` unscaled and only NaN and infinity are refused.

    The values are checked by one ``min`` and one ``max`` (NaN propagates through both), which
    costs about as much as reading X once and allocates nothing.
    """
    if (type(X) is np.ndarray and X.dtype == np.uint8 and X.ndim == 2  # the common case,
            and X.shape[1] == n_features and X.shape[0] and X.flags.c_contiguous):  # quickly
        return X
    X = _asarray(X, "X")
    if X.dtype == object or np.issubdtype(X.dtype, np.complexfloating) or X.dtype == bool:
        raise InputError(f"X must be a real numeric array (uint8 or float), got dtype {X.dtype}")
    if not (np.issubdtype(X.dtype, np.number)):
        raise InputError(f"X must be numeric, got dtype {X.dtype}")
    if X.ndim == 3 and X.shape[1] * X.shape[2] == n_features:
        X = X.reshape(len(X), -1)
    if X.ndim == 1 and X.size == n_features:
        X = X.reshape(1, -1)
    if X.ndim != 2:
        raise InputError(f"X must be 2-D (n_samples, {n_features}), got shape {X.shape}")
    if X.shape[1] != n_features:
        raise InputError(f"X has {X.shape[1]} features per sample; the model expects {n_features}")
    if X.shape[0] == 0:
        raise InputError("X is empty (0 samples)")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    if np.issubdtype(X.dtype, np.integer):
        return _integers(X, dtype, pixels)
    with np.errstate(over="ignore"):
        X = np.asarray(X, dtype=dtype)
    lo, hi = X.min(), X.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"X contains NaN or infinity (as {np.dtype(dtype).name})")
    if pixels and (lo < 0 or hi > 1):
        hint = ("divide by 255 (X / 255.0), or pass the images as uint8" if lo >= 0 and hi <= 255
                else "scale the pixels to [0, 1], or pass them as uint8 0..255; for features "
                     "that are not pixels (e.g. standardized), use MLP(..., pixels=False) or "
                     "fastmnist.sklearn.MLPClassifier")
        raise InputError(f"X holds floats from {lo:g} to {hi:g}, but pixel intensities must be "
                         f"floats in [0, 1]: {hint}")
    return np.ascontiguousarray(X)


def _integers(X, dtype, pixels):
    """Integer X: uint8 pixels when its values lie in 0..255 (else InputError), or `dtype`."""
    if not pixels:
        return np.ascontiguousarray(X, dtype=dtype)
    lo, hi = int(X.min()), int(X.max())
    if lo < 0 or hi > 255:
        raise InputError(f"X holds integers from {lo} to {hi}, but pixel intensities are "
                         "0..255: pass uint8 images, or floats scaled to [0, 1]; for features "
                         "that are not pixels, use MLP(..., pixels=False) or "
                         "fastmnist.sklearn.MLPClassifier")
    return np.ascontiguousarray(X, dtype=np.uint8)


def check_y(y, n_classes):
    """Labels y as a contiguous int64 (n,) array with values in [0, n_classes)."""
    y = _asarray(y, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"y must be 1-D (n_samples,), got shape {y.shape}")
    if y.dtype == bool or not (np.issubdtype(y.dtype, np.integer)
                               or np.issubdtype(y.dtype, np.floating)):
        raise InputError(f"y must hold integer class labels, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or np.any(y != np.round(y)):
            raise InputError("y must hold integer class labels; found non-integer values")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(
            f"labels must be in 0..{n_classes - 1}; found values from {y.min()} to {y.max()}")
    return np.ascontiguousarray(y, dtype=np.int64)


def check_Xy(X, y, n_features, n_classes, dtype, pixels=True):
    """Validate X and y together (see :func:`check_X`, :func:`check_y`): same length."""
    X = check_X(X, n_features, dtype, pixels)
    y = check_y(y, n_classes)
    if len(X) != len(y):
        raise InputError(f"X has {len(X)} samples but y has {len(y)}")
    return X, y
