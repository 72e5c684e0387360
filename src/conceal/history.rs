// SPDX-License-Identifier: MPL-2.0
//! The most recent output, real and concealed, in a fixed-size ring.

/// A ring of the last `len() / channels` frames of output. Frames never written read as zeros.
#[derive(Debug)]
pub(super) struct History {
    samples: Vec<f32>,
    channels: usize,
    /// Index of the oldest sample, where the next one is written.
    head: usize,
    /// Frames output since the last clear, up to the capacity.
    available: usize,
}

impl History {
    pub(super) fn new(frames: usize, channels: usize) -> Self {
        Self {
            samples: vec![0.0; frames.max(1) * channels],
            channels,
            head: 0,
            available: 0,
        }
    }

    /// Interleaved samples held (capacity in frames times channels).
    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Frames of real output held (0 right after `new` or `clear`).
    pub(super) fn available(&self) -> usize {
        self.available
    }

    pub(super) fn clear(&mut self) {
        self.samples.fill(0.0);
        self.head = 0;
        self.available = 0;
    }

    /// Appends whole frames; only the newest capacity's worth is kept.
    pub(super) fn push(&mut self, new: &[f32]) {
        let cap = self.samples.len();
        let new = &new[new.len().saturating_sub(cap)..];
        let first = new.len().min(cap - self.head);
        self.samples[self.head..self.head + first].copy_from_slice(&new[..first]);
        self.samples[..new.len() - first].copy_from_slice(&new[first..]);
        self.head = (self.head + new.len()) % cap;
        let frames = new.len() / self.channels;
        self.available = (self.available + frames).min(cap / self.channels);
    }

    /// Copies the history, oldest first, into `dst` (of length `len()`).
    pub(super) fn copy_to(&self, dst: &mut [f32]) {
        let (newer, older) = self.samples.split_at(self.head);
        dst[..older.len()].copy_from_slice(older);
        dst[older.len()..].copy_from_slice(newer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear(h: &History) -> Vec<f32> {
        let mut v = vec![0.0; h.len()];
        h.copy_to(&mut v);
        v
    }

    #[test]
    fn keeps_newest_frames_in_order_across_wraps() {
        let mut h = History::new(4, 2);
        h.push(&[1.0, 1.5]);
        assert_eq!(linear(&h), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.5]);
        assert_eq!(h.available(), 1);
        h.push(&[2.0, 2.5, 3.0, 3.5, 4.0, 4.5]);
        h.push(&[5.0, 5.5]);
        assert_eq!(linear(&h), [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5]);
        assert_eq!(h.available(), 4);
        // Longer than the capacity: only the tail is kept.
        let long: Vec<f32> = (0..20).map(|i| i as f32).collect();
        h.push(&long);
        assert_eq!(linear(&h), long[12..]);
        h.push(&[]);
        assert_eq!(linear(&h), long[12..]);
        h.clear();
        assert_eq!(linear(&h), [0.0; 8]);
        assert_eq!(h.available(), 0);
    }
}
