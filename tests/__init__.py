"""The test suite. Its workers, and every process they start, wait passively in OpenMP, as the CLI does: set
before anything loads LightGBM (testbed.settings.prefer_passive_openmp)."""

from testbed.settings import prefer_passive_openmp

prefer_passive_openmp()
