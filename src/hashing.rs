//! How keys are hashed: the one policy for keys pushers control, and the
//! one pass-through hasher.
//!
//! Policy: every hash of a key a pusher controls (metric names, label names
//! and values, series) is seeded with per-process randomness (`foldhash`),
//! so that a pusher cannot choose keys that collide on purpose and turn
//! each lookup into a scan. Maps use [`Seeded`]; a hash kept as a series'
//! identity (the cache's signatures, a push's series keys) is computed once
//! from a seeded state and then used as its own hash through
//! [`PassThrough`], never hashed a second time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The hasher state for maps and sets keyed by what pushers send: fast on
/// short keys, seeded per process.
pub(crate) type Seeded = foldhash::fast::RandomState;

/// A `Hasher` for keys that already are a seeded 64-bit hash: the key is
/// its own hash (only `write_u64` is expected; other input is folded in
/// all the same so that the hasher stays total).
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    #[inline]
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// The state of [`PassThrough`] maps and sets.
pub(crate) type Prehashed = BuildHasherDefault<PassThrough>;

/// A map keyed by a seeded 64-bit hash.
pub(crate) type ByHash<V> = HashMap<u64, V, Prehashed>;
