#!/usr/bin/env bash
# Coverage-guided fuzzing (atheris/libFuzzer) of s2c's parsers of untrusted bytes, N minutes per target:
#   bash scripts/fuzz.sh [MINUTES=1] [TARGET...]      targets: frame video crypto (default: all)
# Needs: .venv/bin/pip install atheris. Corpora and crash files go to build/fuzz/TARGET/.
# Prints one line per target: runs, crashes (a crash-* file is a reproducer: python targets.py T FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
MIN="${1:-1}"; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -eq 0 ] && TARGETS=(frame video crypto)
PY="$PWD/.venv/bin/python"
"$PY" -c "import atheris" 2>/dev/null || { echo "fuzz.sh: atheris missing: .venv/bin/pip install atheris" >&2; exit 2; }
SECS=$(python3 -c "print(max(1, int(float('$MIN') * 60)))")
export PYTHONSAFEPATH=1
status=0
for t in "${TARGETS[@]}"; do
  dir="build/fuzz/$t"; mkdir -p "$dir/corpus"
  log="$dir/log.txt"
  ( cd "$dir" && "$PY" "$OLDPWD/scripts/fuzz/targets.py" "$t" -max_total_time="$SECS" -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 corpus ) >"$log" 2>&1 || true
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "$dir" | grep -c '^crash-' || true)
  echo "fuzz $t: ${SECS}s runs=${runs:-?} crashes=$crashes corpus=$(ls "$dir/corpus" | wc -l) log=$log"
  [ "$crashes" -eq 0 ] || status=1
done
exit $status
