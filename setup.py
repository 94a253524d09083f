"""The one compiled part: models/_png_unfilter.c (PNG scanline unfiltering); the rest is pyproject.toml.

Optional: where no C compiler is found the package installs without it and every PNG is decoded by
Pillow (models/png_decode.py says what it speeds up).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("models._png_unfilter", ["models/_png_unfilter.c"], optional=True,
                             extra_compile_args=["-O2"])])
