"""The simulator's tests: the broken-variant ones run in a build that has them."""

from tests.variantbuild import pytest_configure, pytest_pyfunc_call  # noqa: F401  (hooks)
