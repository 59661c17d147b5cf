"""``fastmnist study``: report.md, study.json and the plots of a ``--quick`` run on the real MNIST;
without matplotlib or a writable ``--out``, a one-line error before anything is measured.

The study runs once, in a process of its own beside the other tests (the background job
`quick_study`, about 40 s on 2 cores), and its files are checked by several tests. Its numbers
are not checked, only that they are there and sane: the machine is shared, so timings vary.
"""

import importlib.util
import json
import math
import os
import platform
import re
import struct
import sys
from pathlib import Path

import background
import numba
import numpy as np
import pytest

import fastmnist
from fastmnist.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the plots the report shows, one per sweep, plus the GFLOP/s summary
PNGS = {"batch_size.png", "threads.png", "dtype.png", "python_overhead.png", "sparsity.png",
        "gflops.png", "accuracy_vs_time.png", "frontier.png"}
#: section headings of report.md, in order
HEADINGS = [
    "# fastmnist trade-off study",
    "## Machine and settings",
    "### GEMM roof",
    "## 1. Epoch time vs batch size",
    "## 2. Threads",
    "## 3. float32 vs float64",
    "## 4. The cost of Python in the loop",   # one compiled call per step vs per epoch
    "## 5. Dense vs zero-skipping layer 1",
    "## 6. Achieved GFLOP/s and % of the GEMM roof",
    "## 7. Test accuracy vs training time",   # the recipes
    "## 8. The accuracy-time frontier",       # the recipes and each trick alone
    "## Files",
]
SWEEPS = ("batch_size", "threads", "dtype", "python_overhead", "sparsity")


@background.job(cost=40)
def quick_study(folder):
    """``fastmnist study --quick`` on real MNIST, in its own process (about 40 s): the
    process and the out folder; None without real MNIST or matplotlib."""
    if not os.environ.get("FASTMNIST_DATA") or importlib.util.find_spec("matplotlib") is None:
        return None
    out = Path(folder) / "out"
    return background.run([sys.executable, "-m", "fastmnist", "study", "--quick", "--out",
                           str(out)], timeout=900), out


@pytest.fixture(scope="module")
def study():
    """(exit code, out folder, stdout, stderr) of ``fastmnist study --quick`` on real MNIST."""
    if not os.environ.get("FASTMNIST_DATA"):
        pytest.skip("FASTMNIST_DATA is not set: no real MNIST here")
    pytest.importorskip("matplotlib")
    proc, out = quick_study.result()
    return proc.returncode, out, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def report(study):
    return (study[1] / "report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def study_json(study):
    with open(study[1] / "study.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.background(quick_study)
def test_study_exits_0_and_writes_every_file(study):
    code, out, stdout, stderr = study
    assert code == 0, stderr
    expected = PNGS | {"report.md", "study.json"}
    # nothing else: no temporary file of an atomic write left behind
    assert set(os.listdir(out)) == expected
    assert {os.path.basename(line.removeprefix("wrote ")) for line in stdout.splitlines()
            if line.startswith("wrote ")} == expected
    assert "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.background(quick_study)
def test_report_has_every_section_in_order(report):
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert headings == HEADINGS
    # every section says something: a table or sentences between one heading and the next
    for a, b in zip(HEADINGS, HEADINGS[1:]):
        body = report[report.index(a + "\n") + len(a):report.index(b + "\n")]
        assert len(body.strip()) > 40, f"section {a!r} is empty"
    assert "--quick" in report


@pytest.mark.slow
@pytest.mark.background(quick_study)
def test_report_states_machine_and_versions(report):
    machine = report[report.index("## Machine and settings"):report.index("### GEMM roof")]
    assert "- CPU: " in machine
    assert f"fastmnist {fastmnist.__version__}" in machine
    assert f"Python {platform.python_version()}" in machine
    assert f"NumPy {np.__version__}" in machine
    assert f"Numba {numba.__version__}" in machine
    assert "- Platform: " in machine
    roof = re.search(r"\*\*([0-9.]+) GFLOP/s in float32\*\* and \*\*([0-9.]+) GFLOP/s in "
                     r"float64\*\*", report)
    assert roof and float(roof[1]) > 0 and float(roof[2]) > 0


@pytest.mark.slow
@pytest.mark.background(quick_study)
def test_every_plot_in_the_report_is_a_png(study, report):
    out = study[1]
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report))
    assert shown == PNGS
    assert set(re.findall(r"[\w.-]+\.png", report)) == PNGS
    for name in sorted(shown):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert data[12:16] == b"IHDR", name
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 400 and height >= 300, (name, width, height)
        assert len(data) > 10_000, (name, len(data))  # more than an empty canvas
        assert data[-8:-4] == b"IEND", f"{name} is truncated"


def _positive_finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@pytest.mark.slow
@pytest.mark.background(quick_study)
def test_study_json_timings_are_positive_and_finite(study_json):
    results = study_json["results"]
    assert set(results) == set(SWEEPS) | {"recipes"}
    for key in SWEEPS:
        if key == "threads" and len(study_json["thread_counts"]) < 2:
            continue  # one usable core: nothing to compare
        assert results[key], f"sweep {key} timed nothing"
        for t in results[key]:
            assert t["sweep"] == key
            assert len(t["times"]) == study_json["plan"]["repeats"]
            assert all(_positive_finite(s) for s in t["times"]), t["name"]
            for field in ("median_s", "epoch_s", "images_per_s", "gflops", "pct_roof", "roof"):
                assert _positive_finite(t[field]), (t["name"], field, t[field])
            assert 0 < t["rows"] <= t["n"]
    assert set(results["recipes"]) == {"seed", "default", "fast98", "fast985", "best",
                                       "fast98+shift1", "fast98+smooth0.1", "fast98+maxnorm3",
                                       "fast98+dropout0.2", "fast98+ema0.999",
                                       "fast98+affine"}
    assert results["recipes"]["fast98+shift1"]["trick"] == {"shift": 1}
    for name in results["recipes"]:
        r = results["recipes"][name]
        assert len(r["epoch_seconds"]) == r["epochs"] == len(r["val_accuracy"]) > 0
        assert all(_positive_finite(s) for s in r["epoch_seconds"]), name
        assert all(0 <= a <= 1 for a in r["val_accuracy"]), name
        assert _positive_finite(r["wall_s"])
    # a one-epoch default recipe is well past chance: the trained networks learned
    assert results["recipes"]["default"]["val_accuracy"][-1] > 0.9
    for dtype in ("float32", "float64"):
        assert _positive_finite(study_json["roofs"][dtype])
    assert _positive_finite(study_json["total_s"])
    assert all(_positive_finite(s) for s in study_json["seconds"].values())


@pytest.fixture
def no_measuring(monkeypatch):
    """Make loading MNIST or measuring the roof fail the test."""
    import fastmnist.data
    import fastmnist.tools.head_to_head

    def measured(*args, **kwargs):
        raise AssertionError("study measured something before checking its prerequisites")

    monkeypatch.setattr(fastmnist.data, "load_mnist", measured)
    monkeypatch.setattr(fastmnist.tools.head_to_head, "gemm_roof", measured)


def _one_line_error(capsys):
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("fastmnist study: error: ")
    return lines[0]


def test_without_matplotlib_fails_before_measuring(tmp_path, capsys, monkeypatch, no_measuring):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    out = tmp_path / "out"
    assert main(["study", "--quick", "--out", str(out)]) == 2
    assert "pip install -e '.[plot]'" in _one_line_error(capsys)
    assert not out.exists()


def test_run_study_without_matplotlib_raises_import_error(tmp_path, monkeypatch, no_measuring):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    from fastmnist.tools.study import run_study
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        run_study(tmp_path / "out", quick=True)
    assert not (tmp_path / "out").exists()


def test_out_is_a_file_fails_before_measuring(tmp_path, capsys, no_measuring):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    out.write_text("not a folder")
    assert main(["study", "--quick", "--out", str(out)]) == 2
    assert "exists and is not a folder" in _one_line_error(capsys)
    assert out.read_text() == "not a folder"


def test_unwritable_out_fails_before_measuring(tmp_path, capsys, monkeypatch, no_measuring):
    pytest.importorskip("matplotlib")
    import fastmnist.tools.study.run

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # chmod cannot make a folder unwritable for root, so the probe is made to fail instead
    monkeypatch.setattr(fastmnist.tools.study.run.tempfile, "TemporaryFile", refuse)
    assert main(["study", "--quick", "--out", str(tmp_path / "out")]) == 2
    assert "cannot write the report there (Permission denied)" in _one_line_error(capsys)


def _run(seconds, acc, base=None, trick=None):
    return dict(epoch_seconds=[seconds / 2, seconds / 2], val_accuracy=[acc - 0.01, acc],
                base=base, trick=trick or {})


def test_frontier_points_and_trick_gains():
    from fastmnist.tools.study import frontier
    rec = {"a": _run(1.0, 0.97), "b": _run(2.0, 0.985), "c": _run(3.0, 0.98),
           "d": _run(2.0, 0.985), "b+t": _run(3.0, 0.99, base="b", trick={"shift": 1})}
    for name in ("a", "b", "c", "d"):
        rec[name]["base"] = name
    pts = {n: (s, a, on) for n, s, a, on in frontier.points(rec)}
    # c is slower and less accurate than b; b and d tie (neither dominates the other)
    assert [n for n, (s, a, on) in pts.items() if on] == ["a", "b", "d", "b+t"]
    assert not pts["c"][2] and pts["c"][:2] == (3.0, 0.98)
    (name, base, trick, gain, cost, per), = frontier.trick_gains(rec)
    assert (name, base, trick) == ("b+t", "b", {"shift": 1})
    assert gain == pytest.approx(0.5) and cost == pytest.approx(1.0) and per == pytest.approx(0.5)
