//! Per-instance page cache (CLOCK eviction).
//!
//! Entries are keyed by page number but only returned when the caller's
//! pointer carries the same `(seq, crc)` the cached copy was validated
//! against. Because every pointer names the exact page version it expects,
//! cached pages stay valid across other instances' commits for as long as
//! the tree still points at them, and can never be confused with a newer
//! page written at the same position.
//!
//! Every lookup of a warm read goes through [`PageCache::get`] once per tree
//! level, so the index is an open-addressing hash table (linear probing,
//! backward-shift deletion) rather than an ordered map.

use alloc::sync::Arc;

use crate::prelude::*;

struct Slot {
    page: u32,
    seq: u64,
    crc: u32,
    data: Arc<[u8]>,
    referenced: bool,
}

/// Marks an empty index bucket.
const EMPTY: u32 = u32::MAX;

pub(crate) struct PageCache {
    cap: usize,
    /// Slot numbers, at the bucket of their page's hash or after it.
    index: Vec<u32>,
    slots: Vec<Slot>,
    hand: usize,
}

impl PageCache {
    pub fn new(cap: usize) -> PageCache {
        PageCache {
            cap,
            index: Vec::new(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    fn mask(&self) -> usize {
        self.index.len() - 1
    }

    fn home(&self, page: u32) -> usize {
        // Fibonacci hashing: neighbouring pages land far apart.
        (page.wrapping_mul(0x9E37_79B9) as usize) & self.mask()
    }

    /// The bucket holding `page`, if cached.
    fn find(&self, page: u32) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mut b = self.home(page);
        loop {
            let s = *self.index.get(b)?;
            if s == EMPTY {
                return None;
            }
            if self.slots.get(s as usize).is_some_and(|x| x.page == page) {
                return Some(b);
            }
            b = (b + 1) & self.mask();
        }
    }

    fn index_insert(&mut self, page: u32, slot: usize) {
        if self.index.is_empty() {
            // At most half full, so probes stay short and always end.
            let buckets = (self.cap.max(1) * 2).next_power_of_two();
            self.index = vec![EMPTY; buckets];
        }
        let mut b = self.home(page);
        while self.index[b] != EMPTY {
            b = (b + 1) & self.mask();
        }
        self.index[b] = slot as u32;
    }

    /// Empties bucket `b`, shifting later entries of the probe run back so
    /// that every entry stays reachable from its home bucket.
    fn index_remove(&mut self, mut b: usize) {
        let mask = self.mask();
        let mut next = (b + 1) & mask;
        while self.index[next] != EMPTY {
            let home = self.home(self.slots[self.index[next] as usize].page);
            // Move the entry at `next` into the hole at `b` unless its home
            // lies cyclically in (b, next].
            if (next.wrapping_sub(home) & mask) >= (next.wrapping_sub(b) & mask) {
                self.index[b] = self.index[next];
                b = next;
            }
            next = (next + 1) & mask;
        }
        self.index[b] = EMPTY;
    }

    pub fn get(&mut self, page: u32, seq: u64, crc: u32) -> Option<Arc<[u8]>> {
        let b = self.find(page)?;
        let s = self.slots.get_mut(self.index[b] as usize)?;
        if s.seq == seq && s.crc == crc {
            s.referenced = true;
            Some(s.data.clone())
        } else {
            None
        }
    }

    pub fn insert(&mut self, page: u32, seq: u64, crc: u32, data: Arc<[u8]>) {
        if self.cap == 0 {
            return;
        }
        if let Some(b) = self.find(page) {
            self.slots[self.index[b] as usize] = Slot {
                page,
                seq,
                crc,
                data,
                referenced: true,
            };
            return;
        }
        let slot = Slot {
            page,
            seq,
            crc,
            data,
            referenced: false,
        };
        if self.slots.len() < self.cap {
            self.slots.push(slot);
            self.index_insert(page, self.slots.len() - 1);
            return;
        }
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if self.slots[i].referenced {
                self.slots[i].referenced = false;
                continue;
            }
            if let Some(b) = self.find(self.slots[i].page) {
                self.index_remove(b);
            }
            self.slots[i] = slot;
            self.index_insert(page, i);
            return;
        }
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: u32) -> Arc<[u8]> {
        n.to_le_bytes().to_vec().into()
    }

    /// Against a model: whatever is held is found (at its version only),
    /// whatever was evicted is not, and the cache never holds more than its
    /// capacity, through many evictions that exercise the index's
    /// backward-shift deletion.
    #[test]
    fn finds_exactly_what_it_holds() {
        let cap = 64;
        let mut c = PageCache::new(cap);
        let mut rng = crate::testing::Rng::new(7);
        let mut inserted = alloc::collections::BTreeMap::new();
        for step in 1..20_000u64 {
            let p = rng.below(300) as u32 * 7;
            if rng.chance(1, 2) {
                c.insert(p, step, p ^ 1, page(p));
                inserted.insert(p, (step, p ^ 1));
            }
            assert!(c.slots.len() <= cap);
            for (&pg, &(seq, crc)) in &inserted {
                let held = c.slots.iter().any(|s| s.page == pg);
                let got = c.get(pg, seq, crc);
                assert_eq!(got.is_some(), held, "page {pg} at step {step}");
                if let Some(d) = got {
                    assert_eq!(&d[..], &pg.to_le_bytes()[..]);
                }
                assert!(c.get(pg, seq + 1, crc).is_none(), "a version never inserted");
            }
        }
        c.clear();
        assert!(c.get(0, 1, 1).is_none());
    }
}
