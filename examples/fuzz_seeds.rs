// SPDX-License-Identifier: MPL-2.0
//! Writes the seed inputs of the fuzz targets (`gstnetaudio::fuzzing::seeds`) into
//! `<dir>/<target>/seed_<name>` (default `fuzz/corpus`), after running each through its target.
//!
//! `cargo run --example fuzz_seeds [-- dir]`; see docs/fuzzing.md.

use gstnetaudio::fuzzing;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".to_owned());
    for (target, name, bytes) in fuzzing::seeds::all() {
        fuzzing::run(target, &bytes);
        let sub = std::path::Path::new(&dir).join(target);
        std::fs::create_dir_all(&sub)?;
        std::fs::write(sub.join(format!("seed_{name}")), &bytes)?;
        println!("{target}/seed_{name}: {} bytes", bytes.len());
    }
    Ok(())
}
