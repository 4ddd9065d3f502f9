#!/usr/bin/env bash
# Builds the addon for the Linux targets this machine can build correctly (x64 and arm64 glibc)
# into npm/<platform>/, where `napi pre-publish` finds them, then smoke-tests the arm64 build: the
# Rust unit tests compiled for aarch64 run under qemu-user. About 8 minutes from cold on 2 cores.
# Needs (Debian): gcc-aarch64-linux-gnu qemu-user, and the rustup targets below.
# The musl targets are not built here: Debian's musl-gcc has no libgcc_s to unwind through, and
# linking the glibc one makes an addon that needs glibc; macOS and Windows cannot be built here
# either (see README, "Releasing").
set -euo pipefail
cd "$(dirname "$0")/.."
unset CARGO_BUILD_TARGET

targets="${TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu}"
rustup target add $targets >/dev/null

# The cross linker and C compiler (aws-lc builds C code).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc

for target in $targets; do
  start=$(date +%s)
  echo "== $target"
  npx napi build --platform --release --target "$target" --output-dir "target/napi-$target" >/dev/null
  node=$(ls "target/napi-$target"/*.node)
  platform=$(basename "$node" .node); platform=${platform#calsync.}
  cp "$node" "npm/$platform/"
  echo "   npm/$platform/$(basename "$node") ($(du -h "$node" | cut -f1), $(( $(date +%s) - start )) s)"
done

echo "== arm64 smoke test: the unit tests for aarch64-unknown-linux-gnu under qemu-user"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
  cargo test --release --target aarch64-unknown-linux-gnu --lib 2>&1 | grep -E "^test result|FAILED|panicked"
