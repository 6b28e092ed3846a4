"""Build script: declares the compiled core ``wkview._core`` and the
block codec kernels ``wkview._codec``.

All metadata lives in pyproject.toml; this file only exists because the
extension module needs ``cythonize``.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "wkview._core",
        sources=["wkview/_core.pyx"],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "wkview._codec",
        sources=["wkview/_codec.pyx"],
        extra_compile_args=["-O3"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "embedsignature": True},
    )
)
