#!/usr/bin/env bash
# `deno compile "$@"`, as the compile:* tasks of deno.json run it, with two
# checks deno compile does not make:
# - DENORT_BIN, when set, must be a denort runtime of this Deno version. The
#   natural wrong guess, the deno CLI itself, makes deno compile overflow its
#   stack; a denort of another version builds a binary that fails at start.
# - On failure, the half-written output (`<output>.tmp-*`) is removed.
# denort comes with each Deno release (denort-<target>.zip, e.g.
# https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip, or the
# same file on github.com/denoland/deno/releases); deno compile downloads it
# itself when DENORT_BIN is unset and dl.deno.land can be reached.
set -euo pipefail

fail() { printf 'compile: %s\n' "$*" >&2; exit 2; }

version=$(deno --version | sed -n 's/^deno \([0-9][^ ]*\).*/\1/p')
[ -n "$version" ] || fail "cannot tell this Deno's version (deno --version)"
where="denort-x86_64-unknown-linux-gnu.zip of Deno $version (https://dl.deno.land/release/v$version/)"

if [ -n "${DENORT_BIN:-}" ]; then
  [ -f "$DENORT_BIN" ] || fail "DENORT_BIN=$DENORT_BIN: no such file; unzip $where there"
  [ -x "$DENORT_BIN" ] || fail "DENORT_BIN=$DENORT_BIN is not executable: chmod +x it"
  [ "$(head -c 4 "$DENORT_BIN" | od -An -c | tr -d ' ')" = '177ELF' ] ||
    fail "DENORT_BIN=$DENORT_BIN is not an executable binary; unzip $where"
  if timeout 10 "$DENORT_BIN" --version </dev/null 2>/dev/null | grep -q '^deno [0-9]'; then
    fail "DENORT_BIN=$DENORT_BIN is the deno CLI, not its denort runtime; use $where"
  fi
  grep -aqF "Deno/$version" "$DENORT_BIN" ||
    fail "DENORT_BIN=$DENORT_BIN is not a denort of Deno $version; use $where"
fi

output=
prev=
for arg in "$@"; do
  case "$prev" in --output | -o) output=$arg ;; esac
  case "$arg" in --output=*) output=${arg#--output=} ;; esac
  prev=$arg
done

status=0
deno compile "$@" || status=$?
if [ "$status" -ne 0 ] && [ -n "$output" ]; then
  rm -f -- "$output".tmp-*
fi
exit "$status"
