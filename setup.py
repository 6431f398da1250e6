"""Build the hot-path modules (``node/native.py``) as C extensions with mypyc.

The metadata lives in pyproject.toml; this file only adds the extensions. The build is
all or nothing: without a working C compiler, or with ``CUSTOMS_LEDGER_PURE=1``, every
module stays interpreted, never a mix of some compiled and some missing.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
native = runpy.run_path(str(HERE / "node" / "native.py"))


def extensions() -> list[Any]:
    if os.environ.get(native["PURE_ENV"]):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("customs-ledger: mypyc is not installed; building pure Python", file=sys.stderr)
        return []
    paths = [str(native["source_path"](m).relative_to(HERE)) for m in native["NATIVE_MODULES"]]
    return list(mypycify(paths, opt_level="3", debug_level="0", group_name="customs_native"))


class BuildNative(build_ext):
    """build_ext that records the sources it compiled, and falls back to pure Python."""

    def run(self) -> None:
        for left_over in native["orphan_paths"]():
            # Built when its module was still compiled: it would shadow the source.
            print(f"customs-ledger: removing {left_over.relative_to(HERE)}", file=sys.stderr)
            left_over.unlink()
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # a missing or broken compiler shows in many forms
            self._remove_outputs()
            print(f"customs-ledger: building pure Python: {exc}", file=sys.stderr)
            return
        digests = json.dumps(native["source_digests"](), indent=1, sort_keys=True)
        target = Path(native["SOURCES_FILE"])
        if not self.inplace:
            target = Path(self.build_lib) / target.relative_to(HERE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(digests + "\n")

    def _remove_outputs(self) -> None:
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))
            path.unlink(missing_ok=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildNative})
