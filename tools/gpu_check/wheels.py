#!/usr/bin/env python3
"""Installs the GPU check bundle's wheels, offline, into a temporary folder.

  wheels.py install TARGET WHEEL...   Python packages for PYTHONPATH: `pip install --no-index --no-deps
                                      --target TARGET` (or, without pip, the wheel unpacked as pip would for
                                      --target). A wheel built for another Python (a cp312 wheel on 3.11) is
                                      left out with a FINDING line: the python's own copy is used if it has one.
  wheels.py runtime TARGET WHEEL      ONNX Runtime for the plugins: unpacks onnxruntime/capi/ only (the shared
                                      library does not depend on the Python version); prints its path.
  wheels.py report MODULE...          where each module is imported from, with its version; exit 1 if one is
                                      missing.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
import zipfile


def fits_this_python(wheel: str) -> bool:
    """From the wheel's file name (name-version-python-abi-platform.whl)."""
    parts = os.path.basename(wheel)[:-4].split("-")
    py_tags, abi = parts[-3].split("."), parts[-2]
    here = sys.version_info[:2]
    for tag in py_tags:
        if tag in ("py3", "py2.py3") or tag.startswith("py3"):
            return True
        m = re.fullmatch(r"cp(\d)(\d+)", tag)
        if m:
            v = (int(m.group(1)), int(m.group(2)))
            if v == here or (abi == "abi3" and v <= here):
                return True
    return False


def unpack(wheel: str, target: str, only: str | None = None) -> None:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            # <dist>.data/{purelib,platlib}/x goes to x, as pip does for --target
            m = re.match(r"[^/]+\.data/(purelib|platlib)/(.*)", name)
            if m:
                name = m.group(2)
            elif re.match(r"[^/]+\.data/", name):
                continue
            if only and not name.startswith(only):
                continue
            dst = os.path.join(target, name)
            if info.is_dir():
                os.makedirs(dst, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(info) as src, open(dst, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                os.chmod(dst, mode)


def have_pip() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def cmd_install(target: str, wheels: list[str]) -> int:
    os.makedirs(target, exist_ok=True)
    fit = [w for w in wheels if fits_this_python(w)]
    for w in wheels:
        if w not in fit:
            print(f"FINDING: {os.path.basename(w)} is built for another Python than this "
                  f"{sys.version_info[0]}.{sys.version_info[1]}; left out (the python's own copy is used if it has one)")
    if not fit:
        return 0
    if have_pip():
        cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
               "--disable-pip-version-check", "--target", target, *fit]
        print("+ " + " ".join(cmd), flush=True)
        rc = subprocess.run(cmd).returncode
        if rc == 0:
            return 0
        print(f"FINDING: pip failed ({rc}); the wheels were unpacked into the target instead, as pip --target would")
    else:
        print("no pip in this python: unpacking the wheels into the target as pip --target would")
    for w in fit:
        unpack(w, target)
        print(f"unpacked {os.path.basename(w)}")
    return 0


def cmd_runtime(target: str, wheel: str) -> int:
    unpack(wheel, target, only="onnxruntime/capi/")
    capi = os.path.join(target, "onnxruntime", "capi")
    libs = sorted(f for f in os.listdir(capi) if re.fullmatch(r"libonnxruntime\.so\.\d+\.\d+\.\d+", f))
    if not libs:
        print(f"no libonnxruntime.so.X.Y.Z in {wheel}", file=sys.stderr)
        return 1
    print(os.path.join(capi, libs[-1]))
    return 0


def cmd_report(modules: list[str]) -> int:
    missing = 0
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 (any import failure is the answer)
            print(f"  {name:<14} MISSING: {type(e).__name__}: {e}")
            missing += 1
            continue
        version = getattr(mod, "__version__", None)
        if version is None:
            try:
                from importlib.metadata import version as v

                version = v({"PIL": "pillow", "open_clip": "open_clip_torch", "cv2": "opencv-python-headless"}
                            .get(name, name))
            except Exception:  # noqa: BLE001
                version = "?"
        print(f"  {name:<14} {version:<16} {os.path.dirname(getattr(mod, '__file__', '') or '')}")
    return 1 if missing else 0


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "install":
        return cmd_install(rest[0], rest[1:])
    if cmd == "runtime":
        return cmd_runtime(rest[0], rest[1])
    if cmd == "report":
        return cmd_report(rest)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
