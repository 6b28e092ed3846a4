"""Build script: declares the compiled core ``wkview._core`` and the
block codec kernels ``wkview._codec`` (linked against the system liblz4).

All metadata lives in pyproject.toml; this file only exists because the
extension module needs ``cythonize``.
"""

import ctypes.util
import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def lz4_link_args() -> list[str]:
    """Link ``wkview._codec`` against the system's liblz4 (no header needed).

    ``WKVIEW_LZ4_LIBRARY`` may name the shared library (a path or a file name
    like ``liblz4.so.1``); otherwise the dynamic linker's cache is asked.
    """
    found = os.environ.get("WKVIEW_LZ4_LIBRARY") or ctypes.util.find_library("lz4")
    if not found:
        raise SystemExit(
            "wkview needs the LZ4 shared library (liblz4 >= 1.9, Debian/Ubuntu package "
            "liblz4-1, Fedora lz4-libs) and could not find it; install it or set "
            "WKVIEW_LZ4_LIBRARY to its path"
        )
    if os.sep in found:
        return [found]
    return [f"-l:{found}"]


extensions = [
    Extension(
        "wkview._core",
        sources=["wkview/_core.pyx"],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "wkview._codec",
        sources=["wkview/_codec.pyx"],
        # -pthread: the codec's pool of reader threads
        extra_compile_args=["-O3", "-pthread"],
        extra_link_args=[*lz4_link_args(), "-pthread"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
