"""Image files -> MNIST-style uint8 vectors (the ``images`` extra, Pillow).

MNIST digits are white (255) on black (0), size-normalized to fit a 20x20 box (aspect kept)
and centered by their center of mass in a 28x28 frame. :func:`to_mnist` does the same to any
grayscale picture, a phone photo of a digit on paper included:

1. flatten transparency onto white and convert to grayscale; a picture more than WORK = 1024
   pixels on a side is shrunk to that by box averaging first (a JPEG file is decoded at 1/2 to
   1/8 size), since the digit ends up 20 pixels high anyway;
2. if the picture is dark ink on a light background (the median of its border pixels is above
   mid-gray), invert it;
3. a 28x28 picture is taken as already framed: its contrast is stretched (border median -> 0,
   brightest pixel -> 255) and it is kept as is;
4. any other size has its background removed first, so that uneven lighting is not taken for
   ink: the background is estimated on a copy at most BG_SIDE = 64 pixels on a side by a
   morphological opening (a minimum, then a maximum filter, a third of the short side wide: it
   removes whatever is narrower, pen strokes, and follows smooth lighting, a linear ramp
   exactly), upsampled and subtracted. For dark ink on light paper the difference is divided by the
   paper's brightness, the light falling on it, so a stroke in shadow is as strong as one in
   full light. What does not stand NOISE = 3 standard deviations out of the pixel noise
   becomes 0 (a blank page stays blank) and the brightest ink 255;
5. the ink is cropped to its bounding box, resized so its longer side is 20 pixels, and pasted
   into 28x28 with its center of mass at the center, as MNIST was built; the brightest pixel
   is brought back to 255.

:func:`digit_warning` says when the result does not look like an MNIST digit (too little or too
much ink, by :func:`ink_fraction`) or the model is unsure of it; ``fastmnist predict`` prints it,
and ``--save-input`` writes what the model saw (:func:`save_png`).
"""

import os

import numpy as np

from .._extras import missing
from ..errors import InputError

__all__ = ["to_mnist", "load_image", "load_images", "is_dark_on_light", "ink_fraction",
           "digit_warning", "save_png", "SIDE", "BOX", "INK", "WORK", "BG_SIDE", "PAPER_FLOOR",
           "NOISE", "INK_LEVEL", "INK_RANGE", "MNIST_INK", "MIN_PROBA"]

SIDE = 28     # MNIST frame side
BOX = 20      # side of the box a digit is resized into
INK = 0.2     # fraction of full scale above which a pixel counts as ink for the bounding box
WORK = 1024   # pictures longer than this on a side are shrunk to it first (box average)
BG_SIDE = 64  # longest side of the copy the background is estimated on
PAPER_FLOOR = 16.0  # darkest paper brightness that ink contrast is divided by
NOISE = 3.0   # noise floor, in robust standard deviations of the pixel noise

# What an MNIST digit looks like, for digit_warning. Ink is counted as the pixels at or above a
# quarter of full scale: the faint halo a resize leaves around strokes would inflate a count of
# nonzero pixels (by a third, against MNIST's own), not this one. Over MNIST's 70000 digits
# this fraction is 3.3% to 43.2% (0.1% and 99.9% quantiles: 4.9% and 32.4%).
INK_LEVEL = 64
INK_RANGE = (0.03, 0.45)      # warn outside: no MNIST digit is
MNIST_INK = (0.05, 0.32)      # what 99.8% of MNIST's digits cover, quoted in the warning
MIN_PROBA = 0.5               # warn when the model's top probability is lower


def _import_pil():
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise missing("reading images", "Pillow", "images") from None
    return Image, ImageOps, UnidentifiedImageError


def _shrink_factor(size):
    """The integer factor that brings `size` (width, height) to at most WORK on a side."""
    return max(1, -(-max(size) // WORK))


def _gray(img):
    """A PIL image as a float (h, w) array of gray levels in [0, 255], alpha flattened on white,
    shrunk by box averaging to at most WORK pixels on a side."""
    Image, _, _ = _import_pil()
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = a.max() if a.size else 0.0
        # 16-bit or 32-bit integer grayscale: rescale to 0..255 when it uses the wide range
        return _shrink(a * (255.0 / 65535.0) if top > 255 else a)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    img = img.convert("L")
    k = _shrink_factor(img.size)
    return np.asarray(img.reduce(k) if k > 1 else img, dtype=np.float64)


def _shrink(gray):
    """Float (h, w) box-averaged to at most WORK pixels on a side: (ceil(h/k), ceil(w/k))."""
    h, w = gray.shape
    k = _shrink_factor((w, h))
    if k == 1:
        return gray
    Image, _, _ = _import_pil()
    return _resize(gray, (-(-w // k), -(-h // k)), Image.Resampling.BOX)


def is_dark_on_light(gray):
    """True if `gray` (h, w) in [0, 255] looks like dark ink on a light background.

    Decided by the median of the border pixels (the background, for a digit drawn away from
    the edges): above mid-gray means a light background.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return float(np.median(gray)) > 127.5
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    return float(np.median(border)) > 127.5


def _stretch(gray):
    """Background (border median) -> 0, brightest pixel -> 255, clipped; float (h, w)."""
    if gray.shape[0] >= 3 and gray.shape[1] >= 3:
        border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
        bg = float(np.median(border))
    else:
        bg = float(gray.min())
    top = float(gray.max())
    if top - bg < 1.0:                      # blank picture: nothing to stretch
        return np.zeros_like(gray)
    return np.clip((gray - bg) * (255.0 / (top - bg)), 0.0, 255.0)


def _resize(a, size, resample=None):
    """Resize float (h, w) to `size` = (width, height) with Pillow (default LANCZOS)."""
    Image, _, _ = _import_pil()
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
    resample = Image.Resampling.LANCZOS if resample is None else resample
    return np.asarray(img.resize(size, resample), dtype=np.float64)


def _window(a, r, op):
    """`op` (np.minimum, np.maximum, np.add) reduced over the (2r+1)x(2r+1) windows of float
    (h, w); the edges are extended linearly (odd reflection), so a lighting ramp stays a ramp."""
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        padded = np.pad(a, pad, mode="reflect", reflect_type="odd")   # (h + 2r, w) or (h, w + 2r)
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=axis)
        a = op.reduce(windows, axis=-1)                                # (h, w)
    return a


def _background(ink):
    """The background under bright ink on a dark ground, float (h, w): a morphological opening
    (minimum, then maximum filter) a third of the short side wide, wider than pen strokes, so
    that it removes them and keeps smooth lighting; computed on a copy at most BG_SIDE pixels on
    a side and upsampled."""
    Image, _, _ = _import_pil()
    h, w = ink.shape
    k = -(-max(h, w) // BG_SIDE)
    small = _resize(ink, (-(-w // k), -(-h // k)), Image.Resampling.BOX) if k > 1 else ink
    r = max(1, round(min(small.shape) / 6))
    bg = _window(_window(small, r, np.minimum), r, np.maximum)         # (h/k, w/k)
    return _resize(bg, (w, h), Image.Resampling.BILINEAR) if k > 1 else bg


def _noise(a):
    """Robust standard deviation of the pixel noise of float (h, w): the median difference of
    horizontal neighbours, which the few pixels on stroke edges do not move."""
    if a.shape[1] < 2:
        return 0.0
    step = np.abs(np.diff(a, axis=1))                                  # (h, w - 1)
    return 1.4826 * float(np.median(step)) / np.sqrt(2.0)


def _flatten(ink, paper_is_light):
    """Bright ink on a dark ground, float (h, w) -> the same with the background and what does
    not stand out of the noise at 0 and the brightest ink at 255, uneven lighting removed.

    For dark ink on light paper (`ink` is then the inverted picture) the ink's contrast is
    divided by the paper's brightness, the light falling on it, so that a stroke in shadow
    comes out as strong as one in full light.
    """
    bg = _background(ink)                                              # (h, w)
    diff = ink - bg                                                    # ink > 0, background ~ 0
    noise = _noise(diff)
    if _window(diff, 1, np.add).max() / 9 < max(1.0, 2 * NOISE * noise):
        return np.zeros_like(diff)          # nothing stands out of the noise: a blank picture
    diff = np.clip(diff - NOISE * noise, 0.0, None)
    if paper_is_light:
        diff *= 255.0 / np.maximum(255.0 - bg, PAPER_FLOOR)
    return diff * (255.0 / diff.max())


def _frame(ink):
    """MNIST framing of float (h, w) ink-on-black: crop, fit in 20x20, center of mass at center."""
    rows = np.flatnonzero((ink > INK * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK * 255).any(axis=0))
    if rows.size == 0:                      # no ink: plain resize of whatever is there
        return _resize(ink, (SIDE, SIDE))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    digit = np.clip(_resize(crop, (nw, nh)), 0.0, 255.0)
    mass = digit.sum()
    if mass > 0:
        cy = float((digit.sum(axis=1) * np.arange(nh)).sum() / mass)
        cx = float((digit.sum(axis=0) * np.arange(nw)).sum() / mass)
    else:
        cy, cx = (nh - 1) / 2, (nw - 1) / 2
    # top-left corner putting the center of mass at pixel (14, 14), where MNIST's digits have
    # theirs (mean over the test set: 13.99, 14.01), kept inside the frame
    top = int(np.clip(round(SIDE / 2 - cy), 0, SIDE - nh))
    left = int(np.clip(round(SIDE / 2 - cx), 0, SIDE - nw))
    out = np.zeros((SIDE, SIDE))
    out[top:top + nh, left:left + nw] = digit
    # downscaling dims thin strokes; MNIST strokes reach full white, so bring the peak back to 255
    peak = out.max()
    return out * (255.0 / peak) if peak > 0 else out


def to_mnist(image, invert="auto"):
    """An image as MNIST sees it: uint8 (784,), white digit on black, 28x28 framing.

    Parameters
    ----------
    image : PIL.Image.Image or array_like (h, w)
        A picture of one digit; arrays are gray levels in [0, 255].
    invert : {"auto", True, False}
        Invert gray levels first: ``"auto"`` when the picture is dark on light
        (:func:`is_dark_on_light`).

    Returns
    -------
    ndarray of uint8, shape (784,)
        Row-major 28x28 pixels, ready for :meth:`fastmnist.MLP.predict_proba`.
    """
    if isinstance(image, np.ndarray) or not hasattr(image, "mode"):
        gray = np.asarray(image, dtype=np.float64)
        if gray.ndim != 2 or gray.size == 0:
            raise InputError(f"expected a 2-D grayscale image, got shape {gray.shape}")
        if not np.isfinite(gray).all():
            raise InputError("image contains NaN or infinity")
        gray = _shrink(gray)
    else:
        gray = _gray(image)
    if invert not in ("auto", True, False):
        raise InputError(f"invert must be 'auto', True or False, got {invert!r}")
    flip = invert is True or (invert == "auto" and is_dark_on_light(gray))
    ink = 255.0 - gray if flip else gray
    if ink.shape == (SIDE, SIDE):           # already framed: only contrast, as MNIST's own
        ink = _stretch(ink)
    else:
        ink = _frame(_flatten(ink, paper_is_light=flip))
    return np.clip(np.rint(ink), 0, 255).astype(np.uint8).reshape(SIDE * SIDE)


def ink_fraction(x):
    """Fraction of an MNIST-style image's pixels that are ink (at least INK_LEVEL = 64).

    Parameters
    ----------
    x : array_like of uint8, shape (784,) or (28, 28)
        An image as :func:`to_mnist` returns it, white digit on black.

    Returns
    -------
    float
        In [0, 1]; MNIST's digits range from 0.033 to 0.43 (median 0.15).
    """
    x = np.asarray(x)
    return float((x >= INK_LEVEL).mean()) if x.size else 0.0


def digit_warning(x, probs=None):
    """Why an image, as the model sees it, may not be read as intended; None if it looks fine.

    Parameters
    ----------
    x : array_like of uint8, shape (784,) or (28, 28)
        An image as :func:`to_mnist` returns it.
    probs : array_like of float, shape (n_classes,), optional
        The model's probabilities for `x`.

    Returns
    -------
    str or None
        One line, e.g. ``"does not look like a single digit (ink covers 63% of the frame; MNIST
        digits cover 5-32%)"`` when :func:`ink_fraction` is outside ``INK_RANGE`` (3-45%, which
        no MNIST digit is), or ``"the model is unsure (top probability 0.31)"`` when the top
        probability is below ``MIN_PROBA`` (0.5); both, joined by ``" and "``.
    """
    reasons = []
    ink = ink_fraction(x)
    if not INK_RANGE[0] <= ink <= INK_RANGE[1]:
        lo, hi = MNIST_INK
        reasons.append(f"does not look like a single digit (ink covers {ink:.0%} of the frame; "
                       f"MNIST digits cover {100 * lo:.0f}-{hi:.0%})")
    if probs is not None and len(probs) and float(np.max(probs)) < MIN_PROBA:
        reasons.append(f"the model is unsure (top probability {float(np.max(probs)):.2f})")
    return " and ".join(reasons) or None


def save_png(x, path):
    """Write an MNIST-style image as a 28x28 grayscale PNG, atomically.

    Parameters
    ----------
    x : array_like of uint8, shape (784,) or (28, 28)
        An image as :func:`to_mnist` returns it.
    path : str or os.PathLike
        The file to write; its folder must exist.
    """
    from .._atomic import atomic_write
    Image, _, _ = _import_pil()
    img = Image.fromarray(np.asarray(x, dtype=np.uint8).reshape(SIDE, SIDE))   # mode "L"
    with atomic_write(path) as f:
        img.save(f, format="PNG")


def load_image(path, invert="auto"):
    """Read an image file (PNG, JPEG, ...) as MNIST sees it: uint8 (784,); see :func:`to_mnist`.

    Raises
    ------
    InputError
        If the file does not exist or is not a readable image.
    """
    Image, ImageOps, UnidentifiedImageError = _import_pil()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not an image")
    try:
        with Image.open(path) as img:
            img.seek(0)
            if max(img.size) > WORK:    # a JPEG decodes at 1/2..1/8 size, still >= WORK
                img.draft("L", (-(-img.size[0] * WORK // max(img.size)),
                                -(-img.size[1] * WORK // max(img.size))))
            img = ImageOps.exif_transpose(img)
            img.load()
            return to_mnist(img, invert=invert)
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{path}: cannot read image ({e})") from None


def load_images(paths, invert="auto"):
    """Read image files as uint8 (n, 784), one row per path; see :func:`load_image`."""
    paths = list(paths)
    if not paths:
        raise InputError("no image files given")
    return np.stack([load_image(p, invert=invert) for p in paths])
