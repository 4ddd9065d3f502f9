#!/usr/bin/env bash
# Builds the addon for the four Linux targets into npm/<platform>/, where `napi pre-publish` finds
# them, then smoke-tests what cannot run natively here:
#   - x64 and arm64 glibc: `napi build`, arm64 cross-compiled with Debian's gcc-aarch64-linux-gnu;
#   - x64 and arm64 musl: `napi build -x` (cargo-zigbuild; zig links against its own musl, so the
#     addon needs only musl's libc.so — Debian's musl-gcc has no libgcc_s to link with);
#   - the Rust unit tests for arm64, glibc and musl, under qemu-user;
#   - the linux-x64-musl package installed and used by a musl Node in a musl-only chroot
#     (scripts/smoke-musl.js: require, import, the CLI, connect and a read).
# About 20 minutes from cold on 2 cores (see docs/deployment.md, "Releasing").
# Needs (Debian): gcc-aarch64-linux-gnu qemu-user xz-utils, pip (for zig, if it is not on the PATH,
# and for the musl Node), root (the chroot). cargo-zigbuild is installed by napi on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
unset CARGO_BUILD_TARGET

targets="${TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl}"
rustup target add $targets >/dev/null

# The arm64 glibc cross linker and C compiler (aws-lc builds C code).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc

# zig for the musl targets: the one on the PATH, or PyPI's ziglang behind a shim.
if [[ "$targets" == *musl* ]] && ! command -v zig >/dev/null; then
  python3 -m ziglang version >/dev/null 2>&1 || python3 -m pip install -q ziglang
  mkdir -p target/zig-shim
  printf '#!/bin/sh\nexec python3 -m ziglang "$@"\n' >target/zig-shim/zig
  chmod +x target/zig-shim/zig
  export PATH="$PWD/target/zig-shim:$PATH"
fi

for target in $targets; do
  start=$(date +%s)
  echo "== $target"
  cross=()
  [[ "$target" == *musl* ]] && cross=(-x)
  npx napi build --platform --release "${cross[@]}" --target "$target" --output-dir "target/napi-$target" >/dev/null
  node=$(ls "target/napi-$target"/*.node)
  platform=$(basename "$node" .node); platform=${platform#calsync.}
  cp "$node" "npm/$platform/"
  needs=$(readelf -d "$node" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "   npm/$platform/$(basename "$node") ($(du -h "$node" | cut -f1), needs: $needs; $(( $(date +%s) - start )) s)"
done

if [[ "$targets" == *aarch64-unknown-linux-gnu* ]]; then
  echo "== arm64 glibc: the unit tests under qemu-user"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    cargo test --release --target aarch64-unknown-linux-gnu --lib 2>&1 | grep -E "^test result|FAILED|panicked"
fi
if [[ "$targets" == *aarch64-unknown-linux-musl* ]]; then
  echo "== arm64 musl: the unit tests (a static musl executable) under qemu-user"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUNNER=qemu-aarch64 \
    cargo-zigbuild test --release --target aarch64-unknown-linux-musl --lib 2>&1 | grep -E "^test result|FAILED|panicked"
fi
if [[ "$targets" == *x86_64-unknown-linux-musl* ]]; then
  echo "== x64 musl: the installed package in a musl-only root"
  node scripts/smoke-musl.js
fi
