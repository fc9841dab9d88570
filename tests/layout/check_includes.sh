#!/usr/bin/env bash
# The include rule of cachet's layers (CONTRIBUTING.md, "Layout"): data flows
# policy -> guard -> invalidation -> store -> redis/codec -> the root, so a
# header includes its own folder, the public headers of lower layers, and
# detail/ headers of its own folder or of the root (the shared base) only.
# The base is the root and metrics/ (rank 0: redis/pool.hpp registers its
# metrics): those two may include each other's public headers, but metrics/detail/
# stays metrics' own, and codec and redis (rank 1) still must not meet.
# limit/ and session/ sit beside store/: each keeps its own state in Redis.
# Prints each violation and exits 1 if there is any.
set -euo pipefail
root="${1:?usage: check_includes.sh <include/cachet>}"
cd "$root"

# One awk over every header: a subshell per include line took 13 s (40 s on a
# loaded CI machine).
find . -name '*.hpp' ! -path ./cachet.hpp -print0 | sort -z | xargs -0 awk '
  function rank(f) {  # a folder'"'"'s layer; codec and redis are side by side and must not meet
    if (f == "." || f == "metrics") return 0
    if (f == "codec" || f == "redis") return 1
    if (f == "store" || f == "limit" || f == "session") return 2
    if (f == "invalidation") return 3
    if (f == "guard") return 4
    if (f == "policy") return 5
    if (f == "testing") return 6
    return "unknown"
  }
  function folder(path,   top) {  # the layer a path (relative to include/cachet) belongs to
    top = path; sub(/\/.*/, "", top)
    return (path !~ /\// || top == "detail") ? "." : top
  }
  /^[ \t]*#[ \t]*include <cachet\// {
    file = FILENAME; sub(/^\.\//, "", file)
    target = $0; sub(/.*#include <cachet\//, "", target); sub(/>.*/, "", target)
    from = folder(file); to = folder(target); why = ""
    if (rank(from) == "unknown") why = from " is not a known layer (add it to tests/layout/check_includes.sh)"
    else if (rank(to) == "unknown") why = to " is not a known layer"
    else if (target ~ /\/detail\// && to != from && to != ".") why = "another folder'"'"'s detail/"
    else if (to != from && rank(to) >= rank(from) && rank(to) rank(from) != "00") why = to " is not below " from
    if (why != "") { print file ": includes <cachet/" target ">: " why; bad = 1 }
  }
  END { exit bad }
' || exit 1
