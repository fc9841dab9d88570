#!/usr/bin/env bash
# extract_cpp_blocks.sh [--skip <regex>] <out-dir> <file.md>...: writes each ```cpp block of the
# Markdown files to its own <file>_<heading>[_N].cpp in <out-dir> (rewritten only
# when changed, stale ones removed) and prints the paths written, one a line.
#
# A block compiles as a whole file, unless the line before its fence says
#   <!-- cachet:namespace -->               prelude.hpp, then the block at namespace scope
#   <!-- cachet:function(<parameters>) -->  prelude.hpp, then the block as the body of
#                                           void <name>(<parameters>)
# (#include lines of the block go first in either case). Compiler messages
# point at the Markdown line, through #line. Those two kinds are written as
# <name>.inc and compiled together, a few pages to a docs_group_<N>.cpp (each
# namespace block in a namespace of its own name): one parse of cachet and one
# instantiation of each template for many blocks, instead of one per block.
set -euo pipefail
skip='^$'  # --skip: blocks whose name matches are left out (the compression ones without zstd)
if [ "${1:-}" = --skip ]; then skip=$2; shift 2; fi
groups=4  # group TUs: enough to keep both cores busy, few enough to share the work
out=$1; shift
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

page=0
for md in "$@"; do
  stem=$(basename "$md" .md | tr 'A-Z-' 'a-z_')  # a C++ name: docs/cache-aside.md -> cache_aside
  group="$tmp/docs_group_$((page++ % groups))"
  awk -v md="$md" -v stem="$stem" -v dir="$tmp" -v group="$group" -v skip="$skip" '
    function slug(s) { s = tolower(s); gsub(/[^a-z0-9]+/, "_", s); gsub(/^_+|_+$/, "", s); return s }
    /^```/ && in_block {
      in_block = 0
      if (name ~ skip) next
      if (mode == "file") {
        f = dir "/" name ".cpp"
        printf "%s#line %d \"%s\"\n%s", includes, first, md, body > f
      } else {
        f = dir "/" name ".inc"
        printf "%s", includes >> (group ".head")
        print "#include \"" name ".inc\"" >> (group ".body")
        print (mode == "function" ? "void " name "(" params ") {" : "namespace " name " {") > f
        printf "#line %d \"%s\"\n%s}\n", first, md, body > f
      }
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

for head in "$tmp"/docs_group_*.head; do  # prelude, the blocks' own #includes, then the blocks
  [ -e "$head" ] || continue
  g=${head%.head}
  { echo '#include "prelude.hpp"'; sort -u "$head"; cat "$g.body"; } > "$g.cpp"
  echo "$g.cpp" >> "$tmp/list"
done
for f in "$out"/*.cpp "$out"/*.inc; do  # stale blocks (a heading renamed, a block removed)
  [ -e "$f" ] || continue
  [ -e "$tmp/$(basename "$f")" ] || rm -f "$f"
done
while read -r f; do
  dest="$out/$(basename "$f")"
  cmp -s "$f" "$dest" || cp "$f" "$dest"
  case "$dest" in *.cpp) echo "$dest" ;; esac  # the sources to compile; an .inc is in a group
done < "$tmp/list"
