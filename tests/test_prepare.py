"""prepare: the CSR of the images, built fast and reused while the array is unchanged."""

import numpy as np
import pytest
from conftest import examples, random_pixels
from hypothesis import given, settings
from hypothesis import strategies as st

from fastmnist.backends import numba_cpu as fast


def _csr_by_numpy(X):
    rows, cols = np.nonzero(X)
    indptr = np.zeros(len(X) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(X)), out=indptr[1:])
    return indptr, cols, X[rows, cols]


@settings(max_examples=examples(60), deadline=None)
@given(n=st.integers(1, 40), words=st.integers(1, 12), density=st.floats(0, 1),
       seed=st.integers(0, 2 ** 16))
def test_word_fill_is_the_csr(n, words, density, seed):
    """Rows 8 * words wide (the word-at-a-time fill): all-zero, full and mixed rows."""
    X = random_pixels(n, 8 * words, seed, density)
    X[0] = 0
    if n > 1:
        X[-1] = 255
    data = fast.prepare(X, mode=fast.MODE_CSR)
    indptr, cols, vals = _csr_by_numpy(X)
    np.testing.assert_array_equal(data.indptr, indptr)
    np.testing.assert_array_equal(data.indices, cols)
    np.testing.assert_array_equal(data.values, vals)


@pytest.mark.parametrize("fill", ["words", "packed", "plain"])
@pytest.mark.parametrize("d", [8, 64, 72, 784])
def test_each_fill_is_the_csr(fill, d):
    """Each of _build_csr's fills on its own, whichever one this CPU's build picks: the word
    fill (uint8, whole words), the packed fill (uint8, the intrinsics' path: vpcompressb or
    pshufb) and the plain one; all-zero, full and sparse rows."""
    if fill == "packed" and not fast.PACKED:
        pytest.skip("no vector gather on this CPU (the plain loops)")
    X = random_pixels(60, d, d, 0.3)
    X[0], X[1] = 0, 255
    indptr, cols, vals = _csr_by_numpy(X)
    indices = np.full(len(cols), 7, fast.index_dtype(d))
    values = np.full(len(vals), 7, np.uint8)
    if fill == "words":
        fast._csr_fill_words(X, X.reshape(-1).view(np.uint64), indptr, indices, values)
    elif fill == "packed":
        fast._csr_fill_packed(X, indptr, indices, values)
    else:
        fast._csr_fill(X, indptr, indices, values)
    np.testing.assert_array_equal(indices, cols)
    np.testing.assert_array_equal(values, vals)


@pytest.mark.parametrize("d", [7, 13, 784])
def test_fill_paths_agree(d):
    X = random_pixels(50, d, 1, 0.3)
    data = fast._build_csr(X, None)
    indptr, cols, vals = _csr_by_numpy(X)
    np.testing.assert_array_equal(data.indices, cols)
    np.testing.assert_array_equal(data.values, vals)


@pytest.fixture
def big():
    X = random_pixels(2000, 784, 3, 0.2)
    assert X.nbytes >= fast.REUSE_MIN_BYTES
    return X


def test_unchanged_array_reuses_its_csr(big):
    first = fast.prepare(big)
    assert fast.prepare(big) is first
    assert fast.prepare(big.copy()) is not first  # another array: built afresh


@pytest.mark.parametrize("where", [0, 1, 7, 8, 400_000, -1])
def test_changed_in_place_is_rebuilt(big, where):
    """Any byte changed in place, first, last or in between, gives a new, right CSR."""
    first = fast.prepare(big)
    flat = big.reshape(-1)
    flat[where] = 0 if flat[where] else 1
    again = fast.prepare(big)
    assert again is not first
    indptr, cols, vals = _csr_by_numpy(big)
    np.testing.assert_array_equal(again.indptr, indptr)
    np.testing.assert_array_equal(again.indices, cols)
    np.testing.assert_array_equal(again.values, vals)


def test_small_arrays_are_not_kept():
    X = random_pixels(10, 784, 0)
    assert fast.prepare(X) is not fast.prepare(X)


def test_fingerprint_moves_with_any_word(big):
    base = fast._fingerprint_of(big)
    seen = {base}
    for where in (0, 9, 1000, big.size - 1):
        X = big.copy()
        X.reshape(-1)[where] ^= 0x10
        seen.add(fast._fingerprint_of(X))
    assert len(seen) == 5


def test_the_kept_csr_goes_with_its_array():
    import gc
    X = random_pixels(2000, 784, 5, 0.2)
    fast.prepare(X)
    assert fast._LAST.get("entry") is not None
    del X
    gc.collect()
    assert fast._LAST.get("entry") is None


@pytest.mark.skipif(not fast.PACKED, reason="no vector gather on this CPU (the plain loops)")
@pytest.mark.parametrize("d", [8, 16, 64, 72, 784])
def test_vector_gathers_stay_inside_a_csr_slice(d):
    """Into buffers exactly as long as the row's nonzeros (a CSR slice: the next row's slice
    follows), pshufb's 8-wide stores and vpcompressb's masked ones write nothing past them."""
    import numba

    from fastmnist.backends import _lanes
    loops = [numba.njit(lambda r, i, v: _lanes.shuffle_nonzeros(r, i, v))]
    if fast.COMPRESS:
        loops.append(numba.njit(lambda r, i, v: _lanes.compress_nonzeros(r, i, v)))
    X = random_pixels(40, d, d + 1, 0.4)
    X[0], X[1] = 0, 255
    for loop in loops:
        for row in X:
            n = int(np.count_nonzero(row))
            idx, val = np.full(n + 9, 7, fast.index_dtype(d)), np.full(n + 9, 7, np.uint8)
            assert loop(row, idx[:n], val[:n]) == n
            np.testing.assert_array_equal(idx[:n], np.flatnonzero(row))
            np.testing.assert_array_equal(val[:n], row[row != 0])
            assert (idx[n:] == 7).all() and (val[n:] == 7).all()


@pytest.mark.parametrize("n, dtype", [(10, np.uint8), (5_000_000, np.int16),
                                      (3_000_000, np.uint8)])
def test_small_pages_empty_is_a_writable_empty(n, dtype):
    """np.empty's contract (length, dtype, writable, its own memory); from 4 MB up, on an
    anonymous mapping of its own (POSIX), not NumPy's huge-page-advised heap."""
    import mmap

    from fastmnist.backends.kernels import HUGE_ADVISED, small_pages_empty
    a = small_pages_empty(n, dtype)
    assert a.shape == (n,) and a.dtype == dtype and a.flags.writeable
    a[:] = 7
    a[-1] = 3
    assert int(a.sum()) == 7 * (n - 1) + 3
    mapped = isinstance(a.base, mmap.mmap) or isinstance(getattr(a.base, "obj", None), mmap.mmap)
    assert mapped == (n * np.dtype(dtype).itemsize >= HUGE_ADVISED
                      and hasattr(mmap, "MAP_ANONYMOUS"))


def test_mnist_sized_csr_lives_on_small_pages():
    """The CSR of a large uint8 array is filled into small_pages_empty's arrays, and is the
    CSR NumPy finds."""
    rng = np.random.default_rng(0)
    x = (rng.random((20_000, 784)) < 0.3).astype(np.uint8) * rng.integers(1, 256, (20_000, 784),
                                                                          dtype=np.uint8)
    data = fast._build_csr(x, None)
    assert data.values.nbytes >= 1 << 22
    assert not data.values.flags.owndata and not data.indices.flags.owndata
    rows, cols = np.nonzero(x)
    np.testing.assert_array_equal(data.indices, cols)
    np.testing.assert_array_equal(data.values, x[rows, cols])
    np.testing.assert_array_equal(np.diff(data.indptr), np.count_nonzero(x, axis=1))
