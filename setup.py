"""Build script: declares the compiled core ``wkview._core`` and the
block codec kernels ``wkview._codec`` (linked against the system liblz4).

All metadata lives in pyproject.toml; this file only exists because the
extension module needs ``cythonize``.
"""

import ctypes.util
import os
import tempfile

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


def openmp_flags() -> list[str]:
    """``-fopenmp`` when the compiler builds and links an OpenMP program, else nothing:
    the codec's parallel loops then run on the calling thread (``WKVIEW_OPENMP=0``
    forces that)."""
    if os.environ.get("WKVIEW_OPENMP", "1") == "0":
        return []
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.errors import CompileError, LinkError
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "probe.c")
        with open(source, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n")
        try:
            objects = compiler.compile([source], output_dir=work, extra_postargs=["-fopenmp"])
            compiler.link_executable(objects, os.path.join(work, "probe"), extra_postargs=["-fopenmp"])
        except (CompileError, LinkError):
            print("wkview: the compiler has no OpenMP; the codec decodes on one thread per read")
            return []
    return ["-fopenmp"]


OPENMP = openmp_flags()

extensions = [
    Extension(
        "wkview._core",
        sources=["wkview/_core.pyx"],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "wkview._codec",
        sources=["wkview/_codec.pyx"],
        extra_compile_args=["-O3", *OPENMP],
        extra_link_args=[*lz4_link_args(), *OPENMP],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
