// SPDX-License-Identifier: MPL-2.0
//! Seeded random scripts through the two stateful fuzz targets (`gstnetaudio::fuzzing`
//! `raw_playout` and `rtp_playout`), which assert their invariants (cadence, contiguity, the
//! queue and delay bounds, the ledger, the caps) after every operation. Not coverage-guided
//! like `scripts/fuzz.sh`, but it needs no nightly tooling and runs in every test run (3000
//! scripts, about 25 s in a debug build; `FUZZ_RANDOM_SCRIPTS=N` for a longer run). A
//! 4-minute run of a generator like this one found the adaptive-mode delay-bound bug whose
//! input `fuzz/artifacts/rtp_playout/adaptive_shift_past_the_delay_bound` now keeps.

/// xorshift64: deterministic, so a failure names its script.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Script `k`: random bytes, every 17th one an operation code that exercises the drift modes
/// (23, `MODE`) or one of the first few operations, so mode changes mix with the traffic.
fn script(k: u64) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ k.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let len = 8 + (rng.next() % 3000) as usize;
    let mut v: Vec<u8> = (0..len).map(|_| (rng.next() >> 24) as u8).collect();
    for i in (0..v.len()).step_by(17) {
        v[i] = [23u8, 0, 1, 2, 3][(v[i] % 5) as usize];
    }
    v
}

#[test]
fn random_scripts_keep_every_invariant() {
    let n: u64 = std::env::var("FUZZ_RANDOM_SCRIPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    for k in 0..n {
        let v = script(k);
        for (name, target) in [
            (
                "raw_playout",
                gstnetaudio::fuzzing::raw_playout as fn(&[u8]),
            ),
            (
                "rtp_playout",
                gstnetaudio::fuzzing::rtp_playout as fn(&[u8]),
            ),
        ] {
            if std::panic::catch_unwind(|| target(&v)).is_err() {
                panic!("{name} failed on script {k} ({} bytes)", v.len());
            }
        }
    }
}
