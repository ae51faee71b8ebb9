#!/usr/bin/env bash
# Runs checkov on terraform/ and fails on failed checks AND on parsing errors: checkov exits 0
# when it cannot parse a file and only prints "Parsing errors: N" (see shared NOTES.md).
set -uo pipefail

checkov="${CHECKOV:-.venv-checkov/bin/checkov}"
out="$("$checkov" -d terraform --framework terraform --skip-download --quiet --compact 2>&1)"
rc=$?
printf '%s\n' "$out"

if [ "$rc" -ne 0 ]; then
  echo "checkov: exit code $rc" >&2
  exit "$rc"
fi
if printf '%s\n' "$out" | grep -Eq 'Parsing errors: *[1-9]'; then
  echo "checkov: parsing errors (see above)" >&2
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq 'Passed checks: *[1-9]'; then
  echo "checkov: no check passed; did it scan terraform/ at all?" >&2
  exit 1
fi
