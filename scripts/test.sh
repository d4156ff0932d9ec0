#!/usr/bin/env bash
# Builds EnclaveFS and runs every test, in this order:
#   1. a check that every C++ source is clang-formatted (.clang-format);
#   2. an AddressSanitizer + UBSan build of the unit tests;
#   3. a ThreadSanitizer build of the unit and integration tests;
#   4. the protocol decoder fuzzer for a bounded time (FUZZ_SECONDS, default 60);
#   5. the release build, and its e2e tests with FUSE over io_uring on (when
#      the kernel has it; the setting is put back afterwards);
#   6. the full CTest suite (unit, integration, e2e) with the kernel's FUSE
#      settings as the machine has them (/dev/fuse by default).
# Ends with CTest's summary line of the full suite.
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
scripts/install-deps.sh

step "clang-format check"
# Every tracked source, so a new folder needs no change here; outside a git
# checkout, every source but the build trees.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z '*.cpp' '*.h'
else
  find . -path './build*' -prune -o \( -name '*.cpp' -o -name '*.h' \) -print0
fi | xargs -0 clang-format --dry-run -Werror
echo "all C++ sources formatted"

step "ASan+UBSan build of the unit tests"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DENCLAVEFS_SANITIZE=ON -DENCLAVEFS_BENCH=OFF >/dev/null
ninja -C build-asan -j"$JOBS" blockstore_tests fs_tests enclave_mount_tests
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -L unit -j"$JOBS" --output-on-failure \
  --timeout 300

step "ThreadSanitizer build of the unit and integration tests"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENCLAVEFS_TSAN=ON -DENCLAVEFS_BENCH=OFF >/dev/null
ninja -C build-tsan -j"$JOBS" blockstore_tests fs_tests enclave_mount_tests \
  host_server_tests enclavefs-host
# Not the CLI tests, which run the host binary: RocksDB's own threads race
# with each other while a short-lived process opens and closes its store,
# and TSan cannot unwind into RocksDB (no frame pointers) to see the frames
# tests/tsan.supp matches. The release suite runs them.
TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1" \
  ctest --test-dir build-tsan -L 'unit|integration' -E '^CliTest\.' \
  -j"$JOBS" --output-on-failure --timeout 300

step "fuzzing the protocol decoders for ${FUZZ_SECONDS}s"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DENCLAVEFS_FUZZ=ON -DENCLAVEFS_BENCH=OFF >/dev/null
ninja -C build-fuzz -j"$JOBS" protocol_fuzzer
mkdir -p build-fuzz/corpus
if ! build-fuzz/tests/blockstore/protocol_fuzzer -max_total_time="$FUZZ_SECONDS" \
  -max_len=4096 build-fuzz/corpus >build-fuzz/fuzz.log 2>&1; then
  tail -n 60 build-fuzz/fuzz.log
  echo "fuzzer found a failure; see build-fuzz/fuzz.log" >&2
  exit 1
fi
grep -E "^#[0-9]+ +DONE" build-fuzz/fuzz.log || tail -n 2 build-fuzz/fuzz.log

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build -j"$JOBS"

step "end-to-end tests over FUSE io_uring"
# enclavefs mount serves over io_uring when the kernel offers it, which
# Linux 6.14+ does once the fuse module's enable_uring is Y (off by
# default). Turned on for this step only, so that the e2e suite covers both
# transports.
URING_PARAM=/sys/module/fuse/parameters/enable_uring
if [ -w "$URING_PARAM" ]; then
  uring_before=$(cat "$URING_PARAM")
  trap 'echo "$uring_before" >"$URING_PARAM"' EXIT
  echo Y >"$URING_PARAM"
  ctest --test-dir build -L e2e -j"$JOBS" --output-on-failure --timeout 600 \
    >build/ctest-uring.log 2>&1 || { tail -n 80 build/ctest-uring.log; exit 1; }
  grep -E "tests passed, [0-9]+ tests? failed out of" build/ctest-uring.log
  echo "$uring_before" >"$URING_PARAM"
  trap - EXIT
else
  echo "skipped: this kernel has no FUSE over io_uring ($URING_PARAM)"
fi

step "full test suite"
status=0
ctest --test-dir build -j"$JOBS" --output-on-failure --timeout 600 \
  >build/ctest.log 2>&1 || status=$?
grep -vE "^ +Start [0-9]+:" build/ctest.log | grep -vE "^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed" || true
# CTest's summary line, last, as CI reads it.
grep -E "tests passed, [0-9]+ tests? failed out of" build/ctest.log | tail -n 1
exit "$status"
