"""Build the Cython extensions of bursa.

Release build (default): -O3, bounds and wraparound checks off, assertions on
(they state what must hold in the money paths, TigerBeetle style; they cost a
predictable branch each).

Debug build (BURSA_DEBUG=1): -O1 -g, bounds checks, wraparound checks,
initialized-memoryview checks and C asserts on.  `make debug` builds it into
build/debug/ so the test suite can run the long random stream through it
beside the release build.

Broken variants (the simulator's self-test, engine/variants.py) are compiled in
only with BURSA_VARIANTS=1, which the debug build implies; the release build, the
one installed in production, has none (pyx.core.VARIANTS_BUILT is False).
"""

import importlib.metadata
import os
import sys

from setuptools import Extension, setup

CYTHON_DEPENDENCY = "Cython>=3.2.1,<4"

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - build-time guard
    sys.exit(f"bursa needs {CYTHON_DEPENDENCY} to build: pip install -e '.[dev]'")

CYTHON_VERSION = importlib.metadata.version("Cython")
major, minor = (int(x) for x in CYTHON_VERSION.split(".")[:2])
if not (major == 3 and minor >= 2):
    sys.exit(f"bursa needs {CYTHON_DEPENDENCY}, found Cython {CYTHON_VERSION}")

import numpy  # noqa: E402  (after the Cython guard on purpose)

DEBUG = os.environ.get("BURSA_DEBUG", "") == "1"
VARIANTS = DEBUG or os.environ.get("BURSA_VARIANTS", "") == "1"
ANNOTATE = os.environ.get("BURSA_ANNOTATE", "") == "1"

directives = {
    "language_level": "3",
    # Bounds/wraparound checks cost ~15% on the matching loop; the debug build keeps them.
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # Integer division follows C semantics: every division in the book is on
    # non-negative operands, asserted where it matters.
    "cdivision": not DEBUG,
    # No Python-level overflow wrapping: we check overflow explicitly.
    "overflowcheck": DEBUG,
    "embedsignature": True,
    "emit_code_comments": DEBUG,
}

if DEBUG:
    cflags = ["-O1", "-g", "-UNDEBUG"]
    macros = [("BURSA_DEBUG", "1")]
else:
    cflags = ["-O3", "-UNDEBUG"]
    macros = []
if VARIANTS:
    macros.append(("BURSA_VARIANTS", "1"))
macros.append(("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION"))

# One Extension per .pyx (nautilus build.py); every pyx/*.pyx is a module.
HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = sorted(
    "pyx." + f[: -len(".pyx")] for f in os.listdir(os.path.join(HERE, "pyx")) if f.endswith(".pyx")
)

extensions = [
    Extension(
        name,
        [name.replace(".", "/") + ".pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=cflags,
        define_macros=macros,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        compile_time_env={"BURSA_DEBUG": DEBUG},
        build_dir="build/debug-c" if DEBUG else None,
    ),
)
