#!/usr/bin/env bash
# The house rule on sizes: no source file over 600 lines and no function over
# 100 lines outside tests/ and benchmarks/. Functions are found by Universal
# Ctags (package universal-ctags). Prints each offender; exits 1 if any.
# Usage: scripts/check-sizes.sh [ROOT]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"
if ! ctags --version 2>/dev/null | grep -q "Universal Ctags"; then
  echo "check-sizes: needs Universal Ctags (Debian package universal-ctags; make deps installs it)"
  exit 1
fi
max_file=600 max_function=100
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  list_sources() { git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh'; }
else  # an unpacked source tree without git
  list_sources() { find . -path ./build -prune -o -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \) -print | sed 's|^\./||'; }
fi
mapfile -t files < <(list_sources | grep -Ev '^(tests|benchmarks|build[^/]*)/')
status=0
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  lines=$(wc -l <"$f")
  if [ "$lines" -gt "$max_file" ]; then
    echo "file $f: $lines lines (max $max_file)"
    status=1
  fi
done
# kinds: f = function definition (C++), with its end line.
while IFS=$'\t' read -r name file start end; do
  length=$((end - start + 1))
  if [ "$length" -gt "$max_function" ]; then
    echo "function $file:$start $name: $length lines (max $max_function)"
    status=1
  fi
done < <(ctags --languages=C++ --langmap=C++:+.cu.cuh --kinds-C++=f --fields=+ne -f - "${files[@]}" |
  awk -F'\t' '{ line = ""; end = ""; for (i = 4; i <= NF; i++) { if ($i ~ /^line:/) line = substr($i, 6); if ($i ~ /^end:/) end = substr($i, 5) } if (line != "" && end != "") print $1 "\t" $2 "\t" line "\t" end }')
if [ "$status" -eq 0 ]; then echo "sizes: ${#files[@]} files, none over $max_file lines, no function over $max_function"; fi
exit $status
