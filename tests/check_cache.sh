#!/usr/bin/env bash
# The compile cache (tools/cache.h): a second compile is a hit and byte-identical to a
# compile without the cache; a changed weight, flag or graph is a miss, a changed file
# name or comment is not; corrupt and truncated entries are ignored and replaced; an
# unusable cache folder leaves the compile as it was; the size limit evicts. The cache
# lives in a temporary folder, never the user's.
set -u
cnnc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset CNNC_NO_CACHE CNNC_CACHE_MAX
export XDG_CACHE_HOME=$tmp/xdg
cache=$tmp/xdg/cnnc
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }

# compile WANT OUT ARGS...: cnnc -v ARGS -o OUT, whose "cache: " note must say WANT
# (hit, miss, or none for no note at all); $key is the key it names.
compile() {
  local want=$1 out=$2; shift 2
  if ! "$cnnc" "$@" -o "$out" -v 2> "$tmp/err"; then
    bad "cnnc $* failed"; sed 's/^/    /' "$tmp/err" | head -5; return
  fi
  local got
  got=$(sed -n 's/^cache: \(hit\|miss\) .*/\1/p' "$tmp/err" | head -1)
  key=$(sed -n 's/^cache: \(hit\|miss\) \([0-9a-f]*\).*/\2/p' "$tmp/err" | head -1)
  [ -n "$got" ] || got=none
  if [ "$got" = "$want" ]; then ok; else
    bad "cnnc $* -> cache $got, expected $want"; sed 's/^/    /' "$tmp/err" | head -5
  fi
}

# same A B: the two files hold the same bytes.
same() { if cmp -s "$1" "$2"; then ok; else bad "$1 and $2 differ"; fi; }
entries() { find "$cache" -name '*.entry' 2> /dev/null | wc -l; }

w=models/mnist_cnn.safetensors
m=models/mnist_cnn.cnn
compile miss "$tmp/a.so" "$m" --weights=$w
akey=$key
[ "$(entries)" -eq 1 ] && ok || bad "expected one entry after the first compile, got $(entries)"
compile hit "$tmp/b.so" "$m" --weights=$w
same "$tmp/a.so" "$tmp/b.so"
compile none "$tmp/c.so" "$m" --weights=$w --no-cache
same "$tmp/a.so" "$tmp/c.so"
CNNC_NO_CACHE=1 compile none "$tmp/c2.so" "$m" --weights=$w
same "$tmp/a.so" "$tmp/c2.so"
[ -x "$tmp/b.so" ] && ok || bad "a model.so from the cache is not executable as the linker makes it"
# The outputs and the entry are one read-only file (hard links), modified when given.
[ "$(stat -c %i "$tmp/a.so")" = "$(stat -c %i "$cache/$akey.entry")" ] &&
  [ "$(stat -c %i "$tmp/b.so")" = "$(stat -c %i "$cache/$akey.entry")" ] && ok ||
  bad "the model.so of a miss and of a hit are not hard links to the entry"
[ -z "$(find "$tmp/b.so" -perm /222)" ] && ok || bad "a model.so shared with the cache is writable"
[ "$tmp/b.so" -nt "$m" ] && ok || bad "a model.so from the cache is older than its model"
[ -n "$(find "$tmp/c.so" -perm -200)" ] && ok || bad "--no-cache wrote a read-only model.so"

# The model and weights under other names: what they hold is the same, so a hit.
cp "$m" "$tmp/renamed.cnn"
cp "$w" "$tmp/renamed.safetensors"
compile hit "$tmp/d.so" "$tmp/renamed.cnn" --weights="$tmp/renamed.safetensors"
same "$tmp/a.so" "$tmp/d.so"
# A comment leaves the graph as it was: a hit. A changed layer does not.
{ echo "# a comment"; cat "$m"; } > "$tmp/commented.cnn"
compile hit "$tmp/e.so" "$tmp/commented.cnn" --weights=$w
sed 's/x = maxpool(x, kernel=2)/x = avgpool(x, kernel=2)/' "$m" > "$tmp/avgpool.cnn"
compile miss "$tmp/f.so" "$tmp/avgpool.cnn" --weights=$w
compile miss "$tmp/f2.so" "$m" --weights=$w --batch=2
cmp -s "$tmp/a.so" "$tmp/f.so" && bad "the avgpool model.so is the maxpool one" || ok

# One weight changed (the last byte of the file, fc2.bias's or another tensor's last).
cp "$w" "$tmp/changed.safetensors"
printf '\x3f' | dd of="$tmp/changed.safetensors" bs=1 seek=$(($(stat -c %s "$w") - 1)) \
  conv=notrunc status=none
compile miss "$tmp/g.so" "$m" --weights="$tmp/changed.safetensors"
cmp -s "$tmp/a.so" "$tmp/g.so" && bad "a changed weight gave the same model.so" || ok

# Flags that change the code: misses; -v and the output's name: hits.
compile miss "$tmp/h.so" "$m" --weights=$w -O1
compile hit "$tmp/h2.so" "$m" --weights=$w -O1
same "$tmp/h.so" "$tmp/h2.so"
compile miss "$tmp/i.so" "$m" --weights=$w --features=-avx512f
compile miss "$tmp/r1.so" models/mlp.cnn --random-weights=1
compile miss "$tmp/r2.so" models/mlp.cnn --random-weights=2
compile hit "$tmp/r3.so" models/mlp.cnn --random-weights=1
same "$tmp/r1.so" "$tmp/r3.so"
"$cnnc" models/mlp.cnn --random-weights=1 -o "$tmp/r4.so" --no-cache
same "$tmp/r1.so" "$tmp/r4.so"
CC="cc -O0" compile miss "$tmp/cc.so" "$m" --weights=$w

# A training model.so, its initial weights from the (default) seed.
compile miss "$tmp/t1.so" models/mlp.cnn --train --optimizer=adam
compile hit "$tmp/t2.so" models/mlp.cnn --train --optimizer=adam
same "$tmp/t1.so" "$tmp/t2.so"
compile miss "$tmp/t3.so" models/mlp.cnn --train --optimizer=sgd
"$cnnc" models/mlp.cnn --train --optimizer=adam -o "$tmp/t4.so" --no-cache
same "$tmp/t1.so" "$tmp/t4.so"

# From here a.so, a name of the entry, changes with it: c.so (--no-cache) is the reference.
# A corrupt entry (one byte of the model.so in it changed) is found, removed and
# replaced; the model.so is still the right one.
entry=$cache/$akey.entry
if [ ! -f "$entry" ]; then bad "no entry $entry"; else
  chmod u+w "$entry"
  printf 'X' | dd of="$entry" bs=1 seek=10000 conv=notrunc status=none
  compile miss "$tmp/j.so" "$m" --weights=$w
  grep -q "corrupt" "$tmp/err" && ok || bad "the corrupt entry was not noted"
  same "$tmp/c.so" "$tmp/j.so"
  compile hit "$tmp/k.so" "$m" --weights=$w
  same "$tmp/c.so" "$tmp/k.so"
  # Truncated: the same.
  chmod u+w "$entry"
  truncate -s 5000 "$entry"
  compile miss "$tmp/l.so" "$m" --weights=$w
  same "$tmp/c.so" "$tmp/l.so"
  compile hit "$tmp/l2.so" "$m" --weights=$w
  # Only the start.
  chmod u+w "$entry"
  truncate -s 100 "$entry"
  compile miss "$tmp/l3.so" "$m" --weights=$w
  same "$tmp/c.so" "$tmp/l3.so"
  # Changed through the name of a model.so, the size kept: found by its time.
  chmod u+w "$tmp/l3.so"
  printf 'Y' | dd of="$tmp/l3.so" bs=1 seek=20000 conv=notrunc status=none
  compile miss "$tmp/l4.so" "$m" --weights=$w
  grep -q "corrupt" "$tmp/err" && ok || bad "an entry changed through a model.so was not noted"
  compile hit "$tmp/l5.so" "$m" --weights=$w
  same "$tmp/c.so" "$tmp/l5.so"
  # The meta file lost: a miss, compiled and stored again.
  rm -f "$cache/$akey.meta"
  compile miss "$tmp/l3.so" "$m" --weights=$w
  same "$tmp/c.so" "$tmp/l3.so"
fi

# A hit whose -o cannot be written fails as the compile would.
if "$cnnc" "$m" --weights=$w -o "$tmp/no/such/dir/m.so" 2> "$tmp/err"; then
  bad "-o into a missing folder succeeded"
elif grep -q "cannot write\|No such file" "$tmp/err"; then ok; else
  bad "-o into a missing folder: unexpected message"; sed 's/^/    /' "$tmp/err"
fi

# A cache folder that cannot be made (under a file): the compile goes on silently.
touch "$tmp/file"
XDG_CACHE_HOME=$tmp/file/xdg "$cnnc" "$m" --weights=$w -o "$tmp/m.so" 2> "$tmp/err" && ok ||
  bad "compiling with an unusable cache folder failed"
[ -s "$tmp/err" ] && bad "an unusable cache folder printed: $(head -1 "$tmp/err")" || ok
same "$tmp/c.so" "$tmp/m.so"
# A relative XDG_CACHE_HOME is ignored (XDG); HOME's .cache is used then.
(cd "$tmp" && XDG_CACHE_HOME=rel HOME=$tmp/home "$cnnc" "$OLDPWD/$m" --weights="$OLDPWD/$w" \
  -o "$tmp/n.so") && [ ! -e "$tmp/rel" ] && [ -n "$(ls "$tmp/home/.cache/cnnc")" ] && ok ||
  bad "a relative XDG_CACHE_HOME was used, or HOME/.cache/cnnc was not"

# The size limit: with room for about one mnist model.so, storing a second evicts the
# first (the least recently used); an entry larger than the limit is not stored.
export XDG_CACHE_HOME=$tmp/small
cache=$tmp/small/cnnc
size=$(stat -c %s "$tmp/c.so")
CNNC_CACHE_MAX=$((size * 3 / 2)) compile miss "$tmp/o1.so" "$m" --weights=$w
CNNC_CACHE_MAX=$((size * 3 / 2)) compile miss "$tmp/o2.so" "$m" --weights=$w -O1
[ "$(entries)" -eq 1 ] && ok || bad "the limit kept $(entries) entries, expected 1"
CNNC_CACHE_MAX=$((size * 3 / 2)) compile hit "$tmp/o3.so" "$m" --weights=$w -O1
CNNC_CACHE_MAX=$((size * 3 / 2)) compile miss "$tmp/o4.so" "$m" --weights=$w
CNNC_CACHE_MAX=1K compile miss "$tmp/o5.so" "$m" --weights=$w --batch=3
grep -q "not stored" "$tmp/err" && ok || bad "an entry over CNNC_CACHE_MAX was stored"
CNNC_CACHE_MAX=0 compile none "$tmp/o6.so" "$m" --weights=$w

# Concurrent compiles of one model: every output whole and the same.
export XDG_CACHE_HOME=$tmp/conc
for i in 1 2 3; do "$cnnc" "$m" --weights=$w -o "$tmp/p$i.so" & done
wait
for i in 1 2 3; do same "$tmp/c.so" "$tmp/p$i.so"; done
[ -z "$(find "$tmp/conc" -name '.tmp-*')" ] && ok || bad "temporary files left in the cache"
[ -z "$(find "$tmp" -maxdepth 1 -name '*.tmp-*')" ] && ok || bad "temporary files left next to -o"

# A cache on another file system than -o (/dev/shm, where there is one): no hard links,
# copies; the model.so stays the compiler's own writable file.
if [ -d /dev/shm ] && [ -w /dev/shm ] &&
  [ "$(stat -c %d /dev/shm)" != "$(stat -c %d "$tmp")" ]; then
  shm=$(mktemp -d /dev/shm/cnnc-cache-test.XXXXXX)
  XDG_CACHE_HOME=$shm compile miss "$tmp/s1.so" "$m" --weights=$w
  XDG_CACHE_HOME=$shm compile hit "$tmp/s2.so" "$m" --weights=$w
  grep -q "copied" "$tmp/err" && ok || bad "a hit across file systems was not a copy"
  same "$tmp/c.so" "$tmp/s1.so"
  same "$tmp/c.so" "$tmp/s2.so"
  [ -n "$(find "$tmp/s1.so" -perm -200)" ] && [ -n "$(find "$tmp/s2.so" -perm -200)" ] && ok ||
    bad "a model.so copied to or from the cache is read-only"
  rm -rf "$shm"
fi

echo "cache: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
