"""Image files -> MNIST-style uint8 vectors (the ``images`` extra, Pillow).

MNIST digits are white (255) on black (0), size-normalized to fit a 20x20 box (aspect kept)
and centered by their center of mass in a 28x28 frame. :func:`to_mnist` does the same to any
grayscale picture:

1. flatten transparency onto white and convert to grayscale;
2. if the picture is dark ink on a light background (the median of its border pixels is above
   mid-gray), invert it;
3. stretch contrast so that the background is 0 and the brightest ink 255;
4. a 28x28 picture is taken as already framed and kept as is; any other size is cropped to the
   ink's bounding box, resized so its longer side is 20 pixels, and pasted into 28x28 with its
   center of mass at the center, as MNIST was built; the brightest pixel is brought back to 255.
"""

import os

import numpy as np

from ._extras import missing
from .errors import InputError

SIDE = 28     # MNIST frame side
BOX = 20      # side of the box a digit is resized into
INK = 0.2     # fraction of full scale above which a pixel counts as ink for the bounding box


def _import_pil():
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError:
        raise missing("reading images", "Pillow", "images") from None
    return Image, ImageOps, UnidentifiedImageError


def _gray(img):
    """A PIL image as a float (h, w) array of gray levels in [0, 255], alpha flattened on white."""
    Image, _, _ = _import_pil()
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = a.max() if a.size else 0.0
        # 16-bit or 32-bit integer grayscale: rescale to 0..255 when it uses the wide range
        return a * (255.0 / 65535.0) if top > 255 else a
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return np.asarray(img.convert("L"), dtype=np.float64)


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


def _resize(a, size):
    """Resize float (h, w) to `size` = (width, height) with Pillow's antialiasing filter."""
    Image, _, _ = _import_pil()
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


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
    else:
        gray = _gray(image)
    if invert not in ("auto", True, False):
        raise InputError(f"invert must be 'auto', True or False, got {invert!r}")
    if invert is True or (invert == "auto" and is_dark_on_light(gray)):
        gray = 255.0 - gray
    ink = _stretch(gray)
    if ink.shape != (SIDE, SIDE):
        ink = _frame(ink)
    return np.clip(np.rint(ink), 0, 255).astype(np.uint8).reshape(SIDE * SIDE)


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
