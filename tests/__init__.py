"""imgctl's test suite.  A package, so that pytest puts the repository root on sys.path and
the helpers import as ``tests.support`` (also from the benchmarks)."""
