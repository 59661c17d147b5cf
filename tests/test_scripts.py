"""The measuring scripts in benchmarks/ that pytest does not collect still run."""

import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_start_time_child_trains_a_step():
    """One child of benchmarks/start_time.py with this environment's cache (warm after the
    other tests; a cold cache only makes it slower): both timings come back, positive."""
    imp, step = _load("start_time")._run()
    assert imp > 0 and step > 0


def test_start_time_stops_the_compiler_a_cold_run_left(tmp_path):
    """``start_time.py --what cold`` kills the background compiler named by the lock file in
    the cache (a subfolder of it), and only that process."""
    import subprocess
    import sys
    compiler = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "lanes").mkdir()
        (tmp_path / "lanes" / "fastmnist-warm-abc.lock").write_text(f"{compiler.pid}\n")
        _load("start_time")._stop_compiler(str(tmp_path))
        assert compiler.wait(timeout=10) != 0 and other.poll() is None
    finally:
        for p in (compiler, other):
            p.kill()
            p.wait()


def test_ab_copies_import_side_by_side(tmp_path):
    """benchmarks/ab.py's renamed copy of the package imports beside fastmnist, and its
    string module paths (the backends table) point into the copy."""
    import subprocess
    import sys
    ab = _load("ab")
    ab._renamed_copy(ab._files_here(), str(tmp_path), "fm_b")
    out = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); import fm_b, fastmnist; "
        "print(fm_b.backends.get('numpy').__name__, fastmnist.backends.get('numpy').__name__)"),
        str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["fm_b.backends.numpy_ref", "fastmnist.backends.numpy_ref"]


def test_threads_script_loads():
    assert callable(_load("threads").main)


def test_inference_script_loads():
    assert callable(_load("inference").main)


def test_step_phases_script_loads():
    """benchmarks/step_phases.py reaches into the split by units; the names it calls exist."""
    from fastmnist.backends import columns, kernels, numba_cpu
    assert callable(_load("step_phases").main)
    for module, names in ((columns, ("_forward_part", "_bucket_part", "_backward_part",
                                     "_update_part", "buffers", "cuts", "applies", "to_blocks")),
                          (kernels, ("bucket_backward", "dense_backward", "output_grad",
                                     "scale_for")),
                          (numba_cpu, ("_layout", "_flatten", "_data", "_task", "_hyper",
                                       "n_parts", "BLOCK", "prepare"))):
        assert all(hasattr(module, n) for n in names), module.__name__
