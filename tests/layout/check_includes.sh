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

rank() {  # a folder's layer; codec and redis are side by side and must not meet
  case "$1" in
    .) echo 0 ;; metrics) echo 0 ;; codec) echo 1 ;; redis) echo 1 ;; store) echo 2 ;; limit) echo 2 ;; session) echo 2 ;; invalidation) echo 3 ;;
    guard) echo 4 ;; policy) echo 5 ;; testing) echo 6 ;; *) echo unknown ;;
  esac
}
folder() {  # the layer a path (relative to include/cachet) belongs to
  local top="${1%%/*}"
  if [[ "$1" != */* || "$top" == detail ]]; then echo .; else echo "$top"; fi
}

bad=0
while IFS= read -r file; do
  file="${file#./}"
  [[ "$file" == cachet.hpp ]] && continue  # the umbrella includes everything
  from=$(folder "$file")
  while IFS= read -r line; do
    target=$(sed -E 's/.*#include <cachet\/([^>]+)>.*/\1/' <<<"$line")
    to=$(folder "$target")
    why=""
    if [[ $(rank "$from") == unknown ]]; then why="$from is not a known layer (add it to tests/layout/check_includes.sh)"
    elif [[ $(rank "$to") == unknown ]]; then why="$to is not a known layer"
    elif [[ "$target" == */detail/* && "$to" != "$from" && "$to" != . ]]; then why="another folder's detail/"
    elif [[ "$to" != "$from" && $(rank "$to") -ge $(rank "$from") && $(rank "$to")$(rank "$from") != 00 ]]; then
      why="$to is not below $from"
    fi
    if [[ -n "$why" ]]; then
      echo "$file: includes <cachet/$target>: $why"
      bad=1
    fi
  done < <(grep -E '^\s*#\s*include <cachet/' "$file" || true)
done < <(find . -name '*.hpp' | sort)
exit $bad
