"""Only the optional C extension; everything else is in pyproject.toml.

``learnexit._speedups`` is the CSV, SQL and Excel writers' inner loop in C.  It is
optional: where it cannot be compiled (no C compiler, no Python headers) the install goes
on without it and the writers use their Python code, which writes the same bytes, only
slower.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "learnexit._speedups",
            sources=["learnexit/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
            libraries=["dl"],  # dlopen/dlsym: the SQLite functions of the sqlite3 module (glibc < 2.34)
        )
    ]
)
