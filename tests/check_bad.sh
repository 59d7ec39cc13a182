#!/usr/bin/env bash
# Golden diagnostics: every tests/bad/NAME.cnn must be rejected with exit status 1,
# print exactly tests/bad/NAME.err on stderr, and leave no output file behind.
# NAME.args, when present, holds extra flags. CNNC_UPDATE_GOLDEN=1 rewrites the .err files.
set -u
cnnc=$1
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)   # scratch files
outdir=$(mktemp -d) # where cnnc is asked to write; must stay empty
trap 'rm -rf "$tmp" "$outdir"' EXIT
pass=0 fail=0
for src in tests/bad/*.cnn; do
  name=${src%.cnn}
  args=()
  [ -f "$name.args" ] && read -r -a args < "$name.args"
  "$cnnc" "$src" --emit=ir "${args[@]}" -o "$outdir/out.ir" 2> "$tmp/err" > "$tmp/stdout"
  rc=$?
  problems=""
  [ $rc -eq 1 ] || problems+=" exit status $rc, expected 1;"
  [ -s "$tmp/stdout" ] && problems+=" printed to stdout;"
  [ -n "$(ls -A "$outdir")" ] && problems+=" left files behind: $(ls -A "$outdir");"
  if [ "${CNNC_UPDATE_GOLDEN:-}" = 1 ]; then
    cp "$tmp/err" "$name.err"
  elif ! diff -u "$name.err" "$tmp/err" > "$tmp/diff" 2>&1; then
    problems+=" diagnostics differ:"$'\n'"$(cat "$tmp/diff")"
  fi
  grep -q "error:" "$tmp/err" || problems+=" no error message;"
  if [ -n "$problems" ]; then
    echo "FAIL $src:$problems"
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
  rm -rf "${outdir:?}"/* "${outdir:?}"/.[!.]* 2>/dev/null
done
echo "bad-input diagnostics: $pass passed, $fail failed"
[ $fail -eq 0 ]
