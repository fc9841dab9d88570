#!/bin/sh
# expect_failure.sh CODE REGEX COMMAND [ARGS...]: passes when COMMAND exits with
# CODE and its stderr has a line matching the extended REGEX and no sign of a
# crash: a clear message. The examples' tests use it for usage errors and
# missing servers.
code=$1 regex=$2
shift 2
err=$("$@" 2>&1 >/dev/null)
rc=$?
printf '%s\n' "$err"
[ "$rc" -eq "$code" ] || { echo "expect_failure: exit code $rc, expected $code" >&2; exit 1; }
printf '%s\n' "$err" | grep -Eq -- "$regex" || { echo "expect_failure: no line matches: $regex" >&2; exit 1; }
if printf '%s\n' "$err" | grep -Eq 'terminate called|Aborted|Segmentation'; then
  echo "expect_failure: it crashed" >&2
  exit 1
fi
