#!/usr/bin/env bash
# Called by meson.build.
#   meson-cargo.sh build <source dir> <cargo target dir> <output .so>
#   meson-cargo.sh test  <source dir> <cargo target dir>
set -euo pipefail
cmd=$1 src=$2 target=$3
case "$cmd" in
  build)
    cargo build --release --locked --lib --manifest-path "$src/Cargo.toml" --target-dir "$target"
    cp "$target/release/libgstnetaudio.so" "$4"
    ;;
  test)
    cargo test --locked --manifest-path "$src/Cargo.toml" --target-dir "$target"
    ;;
  *) echo "usage: $0 build|test ..." >&2; exit 2 ;;
esac
