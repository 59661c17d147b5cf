"""MLP: parameters, initialization, prediction, and save/load without pickle."""

import json
import warnings

import numpy as np

from . import backends
from ._atomic import atomic_write
from .checks import check_X, check_Xy
from .errors import InputError, ModelFileError

#: version of the .npz model format written by :meth:`MLP.save`
FORMAT_VERSION = 1

DTYPES = ("float32", "float64")
INITS = ("he", "glorot", "uniform")


def init_params(sizes, dtype, init, rng):
    """Parameters [(W (d_in, d_out), b (d_out,)), ...] for layer sizes [d0, d1, ..., C].

    ``he``: W ~ N(0, 2 / d_in), b = 0 (for ReLU nets). ``glorot``: W ~ U(+-sqrt(6 / (d_in +
    d_out))), b = 0. ``uniform``: W and b ~ U(-0.5, 0.5), the seed notebook's scheme.
    """
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        if init == "he":
            W = rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / d_in)
            b = np.zeros(d_out)
        elif init == "glorot":
            lim = np.sqrt(6.0 / (d_in + d_out))
            W = rng.uniform(-lim, lim, (d_in, d_out))
            b = np.zeros(d_out)
        else:
            W = rng.random((d_in, d_out)) - 0.5
            b = rng.random(d_out) - 0.5
        params.append((np.ascontiguousarray(W, dtype=dtype), np.ascontiguousarray(b, dtype=dtype)))
    return params


class MLP:
    """A multilayer perceptron: hidden layers with an activation (ReLU by default) and a
    softmax output.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer widths, e.g. ``(128,)`` for 784-128-10. ``()`` is softmax regression.
    dtype : {"float32", "float64"}
    init : {"he", "glorot", "uniform"}
        Weight initialization; ``uniform`` is U(-0.5, 0.5) for weights and biases.
    seed : int
        Seeds the initialization and, unless `fit` is given another, the shuffling.
    n_features, n_classes : int
        Input width (784 for MNIST) and number of classes (10).
    pixels : bool
        True (default): inputs are pixel intensities, uint8 or any integers in 0..255, or
        floats scaled to [0, 1]; other values raise InputError (an unscaled float image trains
        to garbage otherwise). False: any finite features (e.g. standardized), used as given.
    activation : {"relu", "tanh", "logistic", "identity"}
        Activation of the hidden layers (default "relu"); saved in the model file.

    Attributes
    ----------
    params : list of (W (d_in, d_out), b (d_out,))
    history : dict of lists, filled by :meth:`fit`
    config : dict
        The last :meth:`fit`'s training settings (saved in the model file; ``fastmnist train
        --resume`` reruns with them).
    checkpoint : fastmnist.train.Checkpoint or None
        Set when Ctrl-C interrupted :meth:`fit`: pass it as ``fit(..., checkpoint=)`` to
        continue; None otherwise.
    steps_on_numpy : int
        Steps of the last :meth:`fit` that ran on the NumPy backend while the Numba kernels
        compiled elsewhere (``compile="background"``).

    :func:`fastmnist.train.fit` sets these attributes and no others.
    """

    def __init__(self, hidden=(128,), dtype="float32", init="he", seed=0,
                 n_features=784, n_classes=10, pixels=True, activation="relu"):
        hidden = (hidden,) if isinstance(hidden, (int, np.integer)) else tuple(hidden)
        if any(not isinstance(h, (int, np.integer)) or h < 1 for h in hidden):
            raise InputError(f"hidden sizes must be positive integers, got {hidden!r}")
        if str(dtype) not in DTYPES:
            raise InputError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if init not in INITS:
            raise InputError(f"init must be one of {INITS}, got {init!r}")
        if n_features < 1 or n_classes < 2:
            raise InputError("need n_features >= 1 and n_classes >= 2")
        backends.activation_code(activation)  # InputError for an unknown name
        if not isinstance(activation, str):
            raise InputError(f"activation must be a name, got {activation!r}")
        self.activation = activation
        self.hidden = tuple(int(h) for h in hidden)
        self.dtype = np.dtype(str(dtype))
        self.init = init
        self.seed = seed
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.pixels = bool(pixels)
        self.params = init_params(self.sizes, self.dtype, init, np.random.default_rng(seed))
        # what fit sets (and nothing else; tests/test_model.py checks it)
        self.history = {}
        self.config = {}
        self.checkpoint = None  # a train.Checkpoint after an interrupted fit
        self.steps_on_numpy = 0  # of the last fit, while its kernels compiled elsewhere

    @property
    def sizes(self):
        """Layer widths [n_features, *hidden, n_classes]."""
        return [self.n_features, *self.hidden, self.n_classes]

    def __repr__(self):
        arch = "-".join(map(str, self.sizes))
        act = "" if self.activation == "relu" else f", activation={self.activation!r}"
        return (f"MLP({arch}, dtype={self.dtype.name}, init={self.init!r}, seed={self.seed}"
                f"{act})")

    # ---- training ------------------------------------------------------------------------

    def fit(self, X, y, **kwargs):
        """Train in place; see :func:`fastmnist.train.fit` for the arguments. Returns history."""
        from .train import fit
        return fit(self, X, y, **kwargs)

    # ---- inference -----------------------------------------------------------------------

    def predict_proba(self, X, backend=None, batch_size=10000):
        """Class probabilities (n, n_classes) for X (n, n_features), uint8 or float in [0, 1].

        Parameters
        ----------
        X : ndarray (n, n_features), or (n, 28, 28) images
        backend : {None, "numba", "numpy"}
            None: "numba" when its kernels for this model are compiled (in Numba's cache, see
            :mod:`fastmnist.warmup`; a single image then takes microseconds), else "numpy",
            which never compiles. The two agree to rounding (about 1e-7 in float32).
        batch_size : int
            Rows per kernel call.

        Returns
        -------
        ndarray (n, n_classes) of the model's dtype
        """
        X = check_X(X, self.n_features, self.dtype, self.pixels)
        be = backends.get(self._backend(X) if backend is None else backend)
        if len(X) <= batch_size:  # one call, no copy (a single image: microseconds count)
            return be.forward(self.params, X, self.activation)
        out = np.empty((len(X), self.n_classes), dtype=self.dtype)
        for i in range(0, len(X), batch_size):
            out[i:i + batch_size] = be.forward(self.params, X[i:i + batch_size],
                                               self.activation)
        return out

    def _backend(self, X):
        """The backend of ``backend=None``: numba when its kernels are compiled for X."""
        from . import warmup
        return "numba" if warmup.is_cached(warmup.spec(self.dtype, X.dtype,
                                                       self.n_features)) else "numpy"

    def predict(self, X, backend=None):
        """Predicted labels (n,) for X (n, n_features); `backend` as :meth:`predict_proba`."""
        return np.argmax(self.predict_proba(X, backend=backend), axis=1)

    def score(self, X, y, backend=None):
        """Accuracy (fraction in [0, 1]) on X (n, n_features), y (n,); `backend` as
        :meth:`predict_proba`."""
        X, y = check_Xy(X, y, self.n_features, self.n_classes, self.dtype, self.pixels)
        return float(np.mean(self.predict(X, backend=backend) == y))

    # ---- persistence ---------------------------------------------------------------------

    def _arrays(self):
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "sizes": np.array(self.sizes, dtype=np.int64),
            "dtype": np.array(self.dtype.name),
            "init": np.array(self.init),
            "seed": np.array(-1 if self.seed is None else int(self.seed), dtype=np.int64),
            "pixels": np.array(self.pixels),
            "activation": np.array(self.activation),
            "config": np.array(json.dumps(self.config, default=str)),
        }
        for i, (W, b) in enumerate(self.params):
            arrays[f"W{i}"], arrays[f"b{i}"] = W, b
        for key, values in self.history.items():
            arrays[f"history_{key}"] = np.asarray(values, dtype=np.float64)
        return arrays

    def save(self, path, extra=None):
        """Save to a .npz file (no pickle), atomically: a crash never leaves a partial file.

        `extra` is an optional dict of name -> ndarray stored alongside (checkpoints use it).
        """
        arrays = self._arrays()
        for key, value in (extra or {}).items():
            arrays[f"extra_{key}"] = np.asarray(value)
        with atomic_write(path) as f:
            np.savez(f, **arrays)

    def to_onnx(self, path, **kwargs):
        """Export to ONNX (the onnx extra); see :func:`fastmnist.integrations.onnx.export`."""
        from .integrations.onnx import export
        return export(self, path, **kwargs)

    @classmethod
    def load(cls, path, return_extra=False):
        """Load a model saved by :meth:`save`.

        Total over the file's bytes: whatever they are, the result is a model that predicts,
        or a :class:`ModelFileError` naming `path` (a missing file is ``FileNotFoundError``).
        """
        arrays = _read_npz(path)
        model, extra = cls._from_arrays(arrays, path)
        return (model, extra) if return_extra else model

    @classmethod
    def _from_arrays(cls, a, path):
        def need(key):
            if key not in a:
                raise ModelFileError(f"{path}: missing array {key!r}")
            return a[key]

        try:
            version = int(need("format_version"))
            if version > FORMAT_VERSION:
                raise ModelFileError(
                    f"{path}: model format version {version} is newer than this fastmnist "
                    f"understands ({FORMAT_VERSION}); upgrade fastmnist")
            sizes = need("sizes")
            if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or len(sizes) < 2:
                raise ModelFileError(f"{path}: bad layer sizes {sizes!r}")
            sizes = [int(s) for s in sizes]
            dtype, init = str(need("dtype")), str(need("init"))
            if dtype not in DTYPES:
                raise ModelFileError(f"{path}: unknown dtype {dtype!r}")
            seed = int(need("seed"))
            activation = str(a["activation"]) if "activation" in a else "relu"  # older files
            if activation not in backends.ACTIVATIONS:
                raise ModelFileError(f"{path}: unknown activation {activation!r}")
            params = []  # checked before the model is built: sizes alone could be huge
            for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                W, b = need(f"W{i}"), need(f"b{i}")
                if W.shape != (d_in, d_out) or b.shape != (d_out,):
                    raise ModelFileError(
                        f"{path}: layer {i} has shapes {W.shape}, {b.shape}; "
                        f"expected {(d_in, d_out)}, {(d_out,)}")
                if W.dtype != dtype or b.dtype != dtype:
                    raise ModelFileError(f"{path}: layer {i} is not {dtype}")
                if not (np.isfinite(W).all() and np.isfinite(b).all()):
                    raise ModelFileError(f"{path}: layer {i} holds NaN or infinite weights")
                params.append((np.ascontiguousarray(W), np.ascontiguousarray(b)))
            model = cls(hidden=sizes[1:-1], dtype=dtype, init=init if init in INITS else "he",
                        seed=None if seed < 0 else seed, n_features=sizes[0], n_classes=sizes[-1],
                        pixels=bool(a["pixels"].item()) if "pixels" in a else True,
                        activation=activation)
            model.params = params
            model.config = json.loads(str(a["config"])) if "config" in a else {}
            if not isinstance(model.config, dict):
                raise ModelFileError(f"{path}: config is not a JSON object")
            model.history = {}
            for k, v in a.items():
                if k.startswith("history_"):
                    if v.ndim != 1 or v.dtype.kind != "f":
                        raise ModelFileError(f"{path}: {k} is not a vector of numbers")
                    model.history[k[len("history_"):]] = v.tolist()
        except ModelFileError:
            raise
        except Exception as e:  # any malformed content is a ModelFileError
            raise ModelFileError(f"{path}: malformed model file ({type(e).__name__}: {e})"
                                 ) from None
        extra = {k[len("extra_"):]: v for k, v in a.items() if k.startswith("extra_")}
        return model, extra


def _read_npz(path):
    """Every array of the .npz archive at `path`, as a dict; ModelFileError on anything else.

    NumPy's readers raise a zoo of exceptions on damaged bytes (``zipfile.BadZipFile``,
    ``zlib.error``, ``tokenize.TokenError`` and ``SyntaxError`` from the ``.npy`` header parser,
    ``NotImplementedError`` on odd zip headers, ...), so every ``Exception`` is caught here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "created on Python 2" for a mangled header
            f = np.load(path, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ModelFileError(f"{path}: not a fastmnist model file (not an .npz archive)")
            with f:
                return {k: f[k] for k in f.files}
    except (FileNotFoundError, ModelFileError):
        raise
    except Exception as e:  # whatever the bytes, the caller gets ModelFileError
        if "allow_pickle" in str(e):  # NumPy's advice to unpickle is wrong advice here
            reason = "it holds a Python object array, which a model file never does"
        else:
            reason = f"{type(e).__name__}: {e}"
        raise ModelFileError(f"{path}: not a readable fastmnist model file ({reason})") from None
