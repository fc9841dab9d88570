#!/usr/bin/env bash
# extract_cpp_blocks.sh <out-dir> <file.md>...: writes each ```cpp block of the
# Markdown files to its own <file>_<heading>[_N].cpp in <out-dir> (rewritten only
# when changed, stale ones removed) and prints the paths written, one a line.
#
# A block compiles as a whole file, unless the line before its fence says
#   <!-- cachet:namespace -->               prelude.hpp, then the block at namespace scope
#   <!-- cachet:function(<parameters>) -->  prelude.hpp, then the block as the body of
#                                           void <name>(<parameters>)
# (#include lines of the block go first in either case). Compiler messages
# point at the Markdown line, through #line.
set -euo pipefail
out=$1; shift
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for md in "$@"; do
  stem=$(basename "$md" .md | tr 'A-Z-' 'a-z_')  # a C++ name: docs/cache-aside.md -> cache_aside
  awk -v md="$md" -v stem="$stem" -v dir="$tmp" '
    function slug(s) { s = tolower(s); gsub(/[^a-z0-9]+/, "_", s); gsub(/^_+|_+$/, "", s); return s }
    /^```/ && in_block {
      in_block = 0
      f = dir "/" name ".cpp"
      printf "%s", includes > f
      if (mode != "file") print "#include \"prelude.hpp\"" > f
      if (mode == "function") print "void " name "(" params ") {" > f
      printf "#line %d \"%s\"\n%s", first, md, body > f
      if (mode == "function") print "}" > f
      close(f)
      print f
      next
    }
    in_block {
      if (mode != "file" && $0 ~ /^#include /) { includes = includes $0 "\n"; body = body "\n" }
      else body = body $0 "\n"
      next
    }
    /^#+ / { heading = slug($0); count[heading] = 0 }
    /^```cpp *$/ {
      in_block = 1; first = NR + 1; body = ""; includes = ""
      n = ++count[heading]
      name = stem "_" heading (n > 1 ? "_" n : "")
      mode = "file"; params = ""
      if (prev ~ /^<!-- cachet:namespace -->$/) mode = "namespace"
      else if (prev ~ /^<!-- cachet:function\(.*\) -->$/) {
        mode = "function"; params = prev
        sub(/^<!-- cachet:function\(/, "", params); sub(/\) -->$/, "", params)
      } else if (prev ~ /cachet:/) { print md ":" NR - 1 ": unknown directive: " prev > "/dev/stderr"; exit 1 }
      next
    }
    NF { prev = $0 }
    END { if (in_block) { print md ": unterminated ```cpp block from line " first - 1 > "/dev/stderr"; exit 1 } }
  ' "$md"
done > "$tmp/list"

for f in "$out"/*.cpp; do  # stale blocks (a heading renamed, a block removed)
  [ -e "$f" ] || continue
  [ -e "$tmp/$(basename "$f")" ] || rm -f "$f"
done
while read -r f; do
  dest="$out/$(basename "$f")"
  cmp -s "$f" "$dest" || cp "$f" "$dest"
  echo "$dest"
done < "$tmp/list"
