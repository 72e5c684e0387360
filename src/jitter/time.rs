// SPDX-License-Identifier: MPL-2.0
//! Conversions between frame counts and nanoseconds at a sample rate.
//!
//! Always computed from absolute counts (never by adding rounded steps), so timestamps derived from
//! a sample counter never accumulate rounding error.

pub const NS_PER_SEC: i64 = 1_000_000_000;
pub const NS_PER_MS: i64 = 1_000_000;

/// `frames` at `rate` in nanoseconds, rounded towards negative infinity.
pub fn frames_to_ns(frames: i64, rate: u32) -> i64 {
    let v = i128::from(frames) * i128::from(NS_PER_SEC);
    v.div_euclid(i128::from(rate)) as i64
}

/// `ns` at `rate` in frames, rounded towards negative infinity.
pub fn ns_to_frames(ns: i64, rate: u32) -> i64 {
    let v = i128::from(ns) * i128::from(rate);
    v.div_euclid(i128::from(NS_PER_SEC)) as i64
}

/// `ns` at `rate` in frames, rounded to the nearest frame.
pub fn ns_to_frames_round(ns: i64, rate: u32) -> i64 {
    let v = i128::from(ns) * i128::from(rate) + i128::from(NS_PER_SEC / 2);
    v.div_euclid(i128::from(NS_PER_SEC)) as i64
}

/// First frame of 10 ms chunk number `chunk`: `floor(chunk * rate / 100)`. Chunks are exactly
/// `rate / 100` frames when 100 divides the rate; otherwise their sizes alternate so that every
/// 100 chunks hold exactly `rate` frames.
pub fn chunk_start(chunk: i64, rate: u32) -> i64 {
    (i128::from(chunk) * i128::from(rate)).div_euclid(100) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_down_and_handle_negatives() {
        assert_eq!(frames_to_ns(80, 8000), 10_000_000);
        assert_eq!(frames_to_ns(1, 48000), 20_833);
        assert_eq!(frames_to_ns(-1, 48000), -20_834);
        assert_eq!(ns_to_frames(10_000_000, 8000), 80);
        assert_eq!(ns_to_frames(-1, 8000), -1);
        assert_eq!(ns_to_frames_round(62_500 * 3 + 31_250, 16000), 4);
    }

    #[test]
    fn chunks_of_non_divisible_rates_sum_exactly() {
        let rate = 22050;
        let sizes: Vec<i64> = (0..100)
            .map(|c| chunk_start(c + 1, rate) - chunk_start(c, rate))
            .collect();
        assert!(sizes.iter().all(|&s| s == 220 || s == 221));
        assert_eq!(sizes.iter().sum::<i64>(), 22050);
        assert!((0..10).all(|c| chunk_start(c + 1, 44100) - chunk_start(c, 44100) == 441));
    }

    #[test]
    fn timestamps_from_counter_do_not_drift_over_a_day() {
        // 24 h of 10 ms chunks at 44.1 kHz: the last PTS is exact.
        let chunks = 24 * 3600 * 100;
        let frames = chunk_start(chunks, 44100);
        assert_eq!(frames, 44100 * 24 * 3600);
        assert_eq!(frames_to_ns(frames, 44100), 24 * 3600 * NS_PER_SEC);
    }
}
