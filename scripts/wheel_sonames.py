"""Give the libraries auditwheel grafted into a repaired wheel their original SONAMEs back.

Used by scripts/wheels.sh after `auditwheel repair` of a wheel built here (PyAudio).

Why: auditwheel copies e.g. libasound.so.2 into pyaudio.libs/ as libasound-9dabddc7.so.2.0.0 and
sets that hashed name as its SONAME too. The wheel's own references use the hashed file names, so
its copy is always found; but anything else in the process that asks for the library by its
usual name then gets a second, separate copy from the system:
  - ALSA's plugins (libasound_module_pcm_pulse.so, loaded by the bundled libasound at run time)
    link libasound.so.2, so one PCM is driven by two copies of ALSA's globals;
  - s2c.audio.devices silences ALSA's and JACK's stderr chatter through
    ctypes.CDLL("libasound.so.2") / ("libjack.so.0"), which then reaches the system copies and not
    the ones PortAudio uses (the chatter is printed over the terminal UI).
With the original SONAME on the bundled file, the dynamic loader answers a request for
"libasound.so.2" with the already loaded bundled copy (glibc matches loaded objects by SONAME), so
there is one copy. The file names stay hashed, so two wheels' bundles still cannot collide on disk.

It must not touch anything but the SONAME field of files under <pkg>.libs/.

  python scripts/wheel_sonames.py UNREPAIRED.whl REPAIRED.whl   (REPAIRED is rewritten in place)
  python scripts/wheel_sonames.py --check        (in the installed venv: PortAudio starts inside
                                                  PyAudio, and no bundled library is loaded twice)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HASHED = re.compile(r"-[0-9a-f]{8}(?=[.-])")


def system_sonames(unrepaired: Path) -> dict[str, str]:
    """File name of each system library the wheel's extensions load (per ldd) -> its SONAME."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(unrepaired) as zf:
        for name in zf.namelist():
            if not re.search(r"\.so(\.|$)", name):
                continue
            path = zf.extract(name, tmp)
            ldd = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
            for line in ldd.splitlines():
                m = re.match(r"\s*(\S+) => (/\S+)", line)
                if m:
                    real = os.path.realpath(m.group(2))
                    soname = subprocess.run(["patchelf", "--print-soname", real], capture_output=True,
                                            text=True).stdout.strip()
                    out[os.path.basename(real)] = soname or m.group(1)
    return out


def check_pyaudio() -> int:
    """Start PortAudio through the installed PyAudio; fail if any library bundled in pyaudio.libs
    also got loaded from somewhere else (the two-copies problem this script exists to prevent)."""
    import pyaudio

    pa = pyaudio.PyAudio()
    try:
        ndev = pa.get_device_count()
        maps = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if " /" in line}
    finally:
        pa.terminate()
    libs = Path(pyaudio.__file__).resolve().parent.parent / "pyaudio.libs"
    stems = {HASHED.sub("", f.name, count=1).split(".so")[0] for f in libs.iterdir()} if libs.is_dir() else set()
    twins = sorted(m for m in maps if not m.startswith(str(libs))
                   and any(os.path.basename(m).startswith(stem + ".so") for stem in stems))
    if twins:
        print(f"wheel_sonames: a bundled library is loaded twice, also from: {', '.join(twins)}", file=sys.stderr)
        return 1
    print(f"wheels: {pyaudio.get_portaudio_version_text()}: started, {ndev} devices, bundled "
          f"{', '.join(sorted(stems)) or 'nothing'}, each loaded once")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        return check_pyaudio()
    unrepaired, repaired = Path(argv[1]), Path(argv[2])
    names = system_sonames(unrepaired)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(repaired)], check=True,
                       stdout=subprocess.DEVNULL)
        (root,) = Path(tmp).iterdir()
        changed = 0
        for lib in sorted(root.glob("*.libs/*")):
            original = names.get(HASHED.sub("", lib.name, count=1))
            if original is None:
                print(f"wheel_sonames: {lib.name}: no original SONAME found, left as is", file=sys.stderr)
                continue
            subprocess.run(["patchelf", "--set-soname", original, str(lib)], check=True)
            print(f"wheel_sonames: {lib.parent.name}/{lib.name}: SONAME {original}", file=sys.stderr)
            changed += 1
        if changed:
            repaired.unlink()
            subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", str(repaired.parent), str(root)],
                           check=True, stdout=subprocess.DEVNULL)
            if not repaired.exists():
                raise SystemExit(f"wheel_sonames: wheel pack did not write {repaired}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
