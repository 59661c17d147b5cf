"""fastmnist's pytest-benchmark suite (see README.md).

A package, so that its ``conftest`` and helpers load as ``benchmarks.*`` and never shadow
``tests/conftest.py`` (the tests import helpers with ``from conftest import ...``).
"""
