// SPDX-License-Identifier: MPL-2.0
//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) and every crash kept as a regression input
//! (`fuzz/artifacts/<target>/`) through the same library functions the cargo-fuzz targets call,
//! so the normal test command checks them. See docs/fuzzing.md.

use std::path::Path;

use gstnetaudio::fuzzing;

/// Runs every file of `fuzz/<kind>/<target>/` through the target; returns how many, and the
/// failing ones.
fn replay_dir(kind: &str, target: &str) -> (usize, Vec<String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return (0, Vec::new());
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("readable corpus file");
            std::panic::catch_unwind(|| fuzzing::run(target, &data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    (files.len(), failed)
}

fn replay(target: &str) {
    let (corpus, mut failed) = replay_dir("corpus", target);
    let (artifacts, failed_artifacts) = replay_dir("artifacts", target);
    failed.extend(failed_artifacts);
    eprintln!("{target}: {corpus} corpus files, {artifacts} regression inputs");
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
    assert!(
        corpus > 0,
        "fuzz/corpus/{target}/ is empty: regenerate it (docs/fuzzing.md)"
    );
}

#[test]
fn raw_datagram_corpus() {
    replay("raw_datagram");
}

#[test]
fn rtp_header_corpus() {
    replay("rtp_header");
}

#[test]
fn pcm_payload_corpus() {
    replay("pcm_payload");
}

#[test]
fn opus_packet_corpus() {
    replay("opus_packet");
}

#[test]
fn rtp_playout_corpus() {
    replay("rtp_playout");
}

#[test]
fn raw_playout_corpus() {
    replay("raw_playout");
}

/// The generated seeds pass their targets, and the playout scripts really play received audio
/// (a seed that only produced concealment would not exercise the playout).
#[test]
fn seeds_pass_and_play_audio() {
    let seeds = fuzzing::seeds::all();
    for target in fuzzing::TARGETS {
        assert!(
            seeds.iter().any(|(t, _, _)| *t == target),
            "no seed for {target}"
        );
    }
    for (target, name, data) in &seeds {
        let summary = match *target {
            "rtp_playout" => fuzzing::rtp_playout_summary(data),
            "raw_playout" => fuzzing::raw_playout_summary(data),
            _ => {
                fuzzing::run(target, data);
                continue;
            }
        };
        assert!(
            summary.chunks >= 20 && summary.real_frames * 2 > summary.frames,
            "{target}/{name}: {summary:?}"
        );
    }
}
