#!/usr/bin/env bash
# The aarch64 lane: runs the decode, Web Crypto and serial (libc FFI on a pseudo-terminal)
# tests with Deno's aarch64 build under qemu-user, the CPU and C library of a Raspberry Pi
# with Raspberry Pi OS 64-bit.
#
#   scripts/test_arm64.sh              the tests
#   scripts/test_arm64.sh --measure    the tests, then start-up time and peak RSS
#   scripts/test_arm64.sh --measure-only
#
# What it needs, installed when missing and possible:
#   qemu-aarch64, and the aarch64 glibc + libgcc_s under /usr/aarch64-linux-gnu
#     (apt: qemu-user libc6-arm64-cross libgcc-s1-arm64-cross; only as root)
#   Deno for aarch64, the same version as `deno` on PATH, from npm
#     (@deno/linux-arm64-glibc) into .cache/deno-arm64/<version>/deno
# When one cannot be had, it prints "arm64: skipped: <reason>" and exits 0: a skip, never
# a pass. Otherwise it ends with "arm64: N passed, N failed, N skipped" and exits 1 when a
# test failed or the run did not finish.
#
# DENO_DIR: the aarch64 Deno has its own (.cache/deno-arm64/deno_dir), whose npm/ is a
# link to the x86-64 Deno's npm cache: mqtt and yaml are plain JavaScript, so they are not
# fetched twice. Sharing the whole DENO_DIR was tried and is slower: the two Denos keep
# replacing each other's V8 code cache (main.ts --version: 11 s shared, 6 s separate).
# Type checking is left to the x86-64 lane (--no-check): types do not depend on the CPU,
# and checking under emulation takes about 90 s per run.
#
# Environment: ARM64_DENO (use this aarch64 deno binary), ARM64_CACHE (cache directory),
# ARM64_DENO_DIR (the aarch64 Deno's DENO_DIR), ARM64_TIME_LIMIT (seconds the test run
# may take, default 480).
set -uo pipefail
cd "$(dirname "$0")/.."

SYSROOT=/usr/aarch64-linux-gnu
CACHE_DIR=${ARM64_CACHE:-.cache/deno-arm64}
case "$CACHE_DIR" in /*) ;; *) CACHE_DIR=$PWD/$CACHE_DIR ;; esac
TIME_LIMIT=${ARM64_TIME_LIMIT:-480}
APT_PACKAGES=(qemu-user libc6-arm64-cross libgcc-s1-arm64-cross)

# The decode stack on the shared captures (AES-GCM and, for Netz OÖ AMIS, AES-CBC through
# Web Crypto), the serial port on a real pseudo-terminal, the daemon (pty + probeLine), an
# AMIS meter answered on a pty, and the state file (fsync, rename).
TEST_FILES=(
  tests/pipeline_test.ts
  tests/decode_test.ts
  tests/security_test.ts
  tests/apdu_test.ts
  tests/axdr_test.ts
  tests/oms_security_test.ts
  tests/amis_test.ts
  tests/serial_test.ts
  tests/daemon_test.ts
  tests/amis_line_test.ts
  tests/state_file_test.ts
  tests/arm64/
)

# Tests that start `Deno.execPath()` as a child process would fail under qemu-user without
# a binfmt_misc entry for qemu-aarch64 (the child exits 127 before running). They detect
# that themselves and are ignored (decode_test.ts, serial_test.ts), so none are excluded
# by name here; list one below only if it cannot tell.
SPAWNING_TESTS=()

log() { printf '\n== arm64: %s\n' "$*"; }
skip() {
  echo "arm64: skipped: $*"
  echo "arm64: lane skipped (0 passed, 0 failed, 0 skipped)"
  exit 0
}

measure=0
tests=1
for arg in "$@"; do
  case "$arg" in
    --measure) measure=1 ;;
    --measure-only) measure=1 tests=0 ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test_arm64.sh: unknown argument \"$arg\": use --measure, --measure-only or --help" >&2
      exit 2
      ;;
  esac
done

# ---------------------------------------------------------------------------------------
# What to run it with

command -v deno >/dev/null 2>&1 || skip "no deno on PATH to take the version from"
version=$(deno --version | sed -nE '1s/^deno ([0-9][^ ]*).*/\1/p')
[ -n "$version" ] || skip "cannot read the version from \"deno --version\""

find_qemu() { command -v qemu-aarch64 || command -v qemu-aarch64-static; }
sysroot_ready() { [ -e "$SYSROOT/lib/ld-linux-aarch64.so.1" ] && [ -e "$SYSROOT/lib/libgcc_s.so.1" ]; }

if ! find_qemu >/dev/null || ! sysroot_ready; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${APT_PACKAGES[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      "${APT_PACKAGES[@]}") >/dev/null 2>&1 || echo "apt-get install failed"
  fi
fi
# The cross compiler lets the lane compare libc.ts's constants with the aarch64 C headers.
if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] &&
  command -v apt-get >/dev/null 2>&1; then
  log "installing gcc-aarch64-linux-gnu (to check the libc constants)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null 2>&1 ||
    echo "arm64: gcc-aarch64-linux-gnu could not be installed: constants not compared"
fi
QEMU=$(find_qemu) || skip "qemu-aarch64 is not installed (apt-get install qemu-user as root)"
sysroot_ready || skip "no aarch64 C library in $SYSROOT (apt-get install libc6-arm64-cross libgcc-s1-arm64-cross)"

# Whether a file is a 64-bit little-endian ELF for AArch64 (e_machine 183 = 0xb7).
is_aarch64_elf() {
  local head
  head=$(od -An -tx1 -N20 "$1" 2>/dev/null | tr -d ' \n')
  [ "${head:0:10}" = "7f454c4602" ] && [ "${head:36:4}" = "b700" ]
}

fetch_deno() {
  local dest=$1 tmp tarball
  tmp=$(mktemp -d)
  log "fetching @deno/linux-arm64-glibc@$version from npm"
  if tarball=$(cd "$tmp" && npm pack --silent "@deno/linux-arm64-glibc@$version" 2>/dev/null) &&
    tar -xzf "$tmp/$tarball" -C "$tmp" package/deno 2>/dev/null; then
    mkdir -p "$(dirname "$dest")" && mv "$tmp/package/deno" "$dest" && chmod +x "$dest"
  fi
  rm -rf "$tmp"
  [ -x "$dest" ]
}

DENO_ARM64=${ARM64_DENO:-$CACHE_DIR/$version/deno}
if [ ! -x "$DENO_ARM64" ]; then
  [ -z "${ARM64_DENO:-}" ] || skip "ARM64_DENO=$ARM64_DENO is not an executable file"
  command -v npm >/dev/null 2>&1 || skip "npm is not installed: cannot fetch Deno for aarch64"
  fetch_deno "$DENO_ARM64" || skip "npm could not fetch @deno/linux-arm64-glibc@$version"
fi
if ! is_aarch64_elf "$DENO_ARM64"; then
  [ -n "${ARM64_DENO:-}" ] || rm -f "$DENO_ARM64"
  skip "$DENO_ARM64 is not an aarch64 ELF executable"
fi
if command -v file >/dev/null 2>&1; then
  echo "arm64: $(file -b "$DENO_ARM64" | cut -d, -f1-2)"
elif command -v readelf >/dev/null 2>&1; then
  echo "arm64: $(readelf -h "$DENO_ARM64" | sed -nE 's/^ *Machine: *//p')"
fi

# Its own DENO_DIR, with the x86-64 Deno's npm cache linked in (see the top).
ARM64_DENO_DIR=${ARM64_DENO_DIR:-$CACHE_DIR/deno_dir}
mkdir -p "$ARM64_DENO_DIR"
npm_cache=$(deno info --json 2>/dev/null | sed -nE 's/^ *"npmCache": "(.*)",?$/\1/p')
if [ -n "$npm_cache" ] && [ ! -e "$ARM64_DENO_DIR/npm" ]; then
  mkdir -p "$npm_cache" && ln -s "$npm_cache" "$ARM64_DENO_DIR/npm"
fi

# Children of the emulated Deno (binfmt_misc case) find the aarch64 libraries here too.
export QEMU_LD_PREFIX=$SYSROOT
run_arm64() { DENO_DIR=$ARM64_DENO_DIR "$QEMU" -L "$SYSROOT" "$DENO_ARM64" "$@"; }

arm64_version=$(run_arm64 --version 2>&1 | head -n 1)
case "$arm64_version" in
  "deno $version "*aarch64*) echo "arm64: $arm64_version under $("$QEMU" --version | head -n 1)" ;;
  *) skip "qemu-aarch64 cannot run $DENO_ARM64: ${arm64_version:-no output}" ;;
esac
echo "arm64: DENO_DIR $ARM64_DENO_DIR (npm/ -> $(readlink "$ARM64_DENO_DIR/npm" || echo "its own"))"

# ---------------------------------------------------------------------------------------
# Tests

# A regex (Rust syntax, as `deno test --filter /re/` takes it: no lookahead) that matches
# every test name except exactly the given ones. Built from their trie: at each node the
# name may end here (unless an excluded name does), go on with a character no excluded
# name has next, or follow one that does; past a whole excluded name, any character.
complement_regex() {
  local terminal=0 heads="" alternatives=() name c rest i
  for name in "$@"; do
    if [ -z "$name" ]; then terminal=1; else heads+="${name:0:1}"; fi
  done
  heads=$(fold -w1 <<<"$heads" | sort -u | tr -d '\n')
  [ "$terminal" -eq 1 ] || alternatives+=('$')
  if [ -z "$heads" ]; then
    alternatives+=('.')
  else
    local class="" hex
    for ((i = 0; i < ${#heads}; i++)); do
      c=${heads:i:1}
      hex=$(printf '\\x{%02x}' "'$c")
      class+=$hex
      rest=()
      for name in "$@"; do [ "${name:0:1}" != "$c" ] || rest+=("${name:1}"); done
      alternatives+=("$hex(?:$(complement_regex "${rest[@]}"))")
    done
    alternatives+=("[^$class]")
  fi
  local IFS='|'
  echo "${alternatives[*]}"
}

status=0
if [ "$tests" -eq 1 ]; then
  filter=()
  # Can the host start the aarch64 binary directly, as Deno.Command(Deno.execPath()) does?
  if "$DENO_ARM64" --version >/dev/null 2>&1; then
    echo "arm64: binfmt_misc starts aarch64 binaries: child-process tests run too"
  else
    for name in "${SPAWNING_TESTS[@]}"; do
      echo "arm64: excluded (needs binfmt_misc to start a child Deno): $name"
    done
    [ "${#SPAWNING_TESTS[@]}" -eq 0 ] ||
      filter=(--filter "/^(?:$(complement_regex "${SPAWNING_TESTS[@]}"))/")
  fi

  log "deno test ${TEST_FILES[*]} (aarch64, qemu-user)"
  out=$(mktemp)
  started=$(date +%s)
  NO_COLOR=1 DENO_DIR=$ARM64_DENO_DIR timeout --kill-after=10 "$TIME_LIMIT" \
    "$QEMU" -L "$SYSROOT" "$DENO_ARM64" test --no-check --allow-all "${filter[@]}" \
    "${TEST_FILES[@]}" 2>&1 | tee "$out"
  test_status=${PIPESTATUS[0]}
  took=$(($(date +%s) - started))

  # "ok | 131 passed (204 steps) | 0 failed | 0 ignored (2 steps) | 1 filtered out (1m41s)"
  summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$out" | tail -n 1)
  rm -f "$out"
  if [ -z "$summary" ]; then
    if [ "$test_status" -eq 124 ] || [ "$test_status" -eq 137 ]; then
      echo "arm64: the tests did not finish within ${TIME_LIMIT}s (ARM64_TIME_LIMIT)"
    else
      echo "arm64: no test summary found: the test run did not complete (status $test_status)"
    fi
    echo "arm64: 0 passed, 1 failed, 0 skipped (${took}s)"
    exit 1
  fi
  number() { sed -nE "s/.*[| ]([0-9]+) $1.*/\\1/p" <<<"$summary" | head -n 1; }
  passed=$(number passed)
  failed=$(number failed)
  ignored=$(number ignored)
  ignored_steps=$(sed -nE 's/.* ignored \(([0-9]+) steps?\).*/\1/p' <<<"$summary")
  filtered=$(number "filtered out")
  skipped=$((${ignored:-0} + ${ignored_steps:-0} + ${filtered:-0}))
  [ "$test_status" -eq 0 ] || status=1
  if [ "${passed:-0}" -eq 0 ]; then
    echo "arm64: no test passed: the filter or the file list is wrong"
    status=1
  fi
  echo "arm64: ${passed:-0} passed, ${failed:-0} failed, $skipped skipped" \
    "(${ignored:-0} ignored, ${ignored_steps:-0} ignored steps, ${filtered:-0} excluded; ${took}s)"
fi

# ---------------------------------------------------------------------------------------
# The constants of lib/sources/libc.ts against the aarch64 C headers, when a cross
# compiler is installed (apt-get install gcc-aarch64-linux-gnu; not installed by this lane).

if [ "$tests" -eq 1 ]; then
  if cross_cc=$(command -v aarch64-linux-gnu-gcc); then
    work=$(mktemp -d)
    if "$cross_cc" -o "$work/libc_constants" tests/arm64/libc_constants.c &&
      "$QEMU" -L "$SYSROOT" "$work/libc_constants" >"$work/values.json" &&
      result=$(deno run --allow-read tests/arm64/libc_constants.ts "$work/values.json"); then
      echo "arm64: constants: ${result##*$'\n'} (aarch64)"
    else
      echo "${result:-arm64: constants: the C program could not be built or run}"
      echo "arm64: constants: FAILED"
      status=1
    fi
    rm -rf "$work"
  else
    echo "arm64: constants: not compared with the C headers (no aarch64-linux-gnu-gcc)"
  fi
fi

# ---------------------------------------------------------------------------------------
# Footprint: wall time from spawn to exit, and peak RSS, median of a few runs.

# Prints "<wall seconds> <peak RSS KiB> <exit status>" for one run of "$@".
measure_once() {
  local start end rss code tmp
  tmp=$(mktemp)
  start=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -o "$tmp" -f '%M' "$@" >/dev/null 2>&1
    code=$?
    rss=$(tail -n 1 "$tmp")
  else
    "$@" >/dev/null 2>&1 &
    local pid=$! hwm
    rss=0
    while kill -0 "$pid" 2>/dev/null; do
      hwm=$(sed -nE 's/^VmHWM:[[:space:]]*([0-9]+) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
      [ -z "$hwm" ] || rss=$hwm
      sleep 0.02
    done
    wait "$pid"
    code=$?
  fi
  end=$(date +%s%N)
  rm -f "$tmp"
  printf '%s %s %s\n' "$(((end - start) / 1000000))" "$rss" "$code"
}

# One table row: the median wall time and the largest peak RSS of RUNS runs.
measure_row() {
  local label=$1 runs=3 walls=() rss_max=0 codes="" line wall rss code
  shift
  for _ in $(seq "$runs"); do
    line=$(measure_once "$@")
    read -r wall rss code <<<"$line"
    walls+=("$wall")
    [ "${rss:-0}" -le "$rss_max" ] || rss_max=$rss
    [ "$code" -eq 0 ] || codes+=" $code"
  done
  local median
  median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
  printf '%-44s %8s s %8d MiB%s\n' "$label" "$(awk -v ms="$median" 'BEGIN { printf "%.2f", ms / 1000 }')" \
    "$((rss_max / 1024))" "${codes:+  (exit status:$codes)}"
}

if [ "$measure" -eq 1 ]; then
  log "footprint (median wall time of 3 runs, largest peak RSS; load $(cut -d' ' -f1-3 /proc/loadavg))"
  DEMO=(run -A main.ts demo --count 3 --interval 0.5)
  printf '%-44s %10s %12s\n' "" "wall" "peak RSS"
  ARM64=(env DENO_DIR="$ARM64_DENO_DIR" "$QEMU" -L "$SYSROOT" "$DENO_ARM64")
  run_arm64 run -A main.ts --version >/dev/null 2>&1 # warm the caches first
  measure_row "aarch64 (qemu) deno eval 0" "${ARM64[@]}" eval 0
  measure_row "aarch64 (qemu) main.ts --version" "${ARM64[@]}" run -A main.ts --version
  measure_row "aarch64 (qemu) main.ts demo --count 3" "${ARM64[@]}" "${DEMO[@]}"
  measure_row "x86-64 deno eval 0" deno eval 0
  measure_row "x86-64 main.ts --version" deno run -A main.ts --version
  measure_row "x86-64 main.ts demo --count 3" deno "${DEMO[@]}"
  echo "arm64: under qemu-user the RSS includes the emulator and its translated-code cache," \
    "and times include translation: a Raspberry Pi runs natively, so take these as upper bounds"
fi

exit "$status"
