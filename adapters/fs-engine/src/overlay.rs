//! The changes logged since a checkpoint, held in memory on top of its tree
//! (FORMAT.md §8): the newest value (or deletion) of every key a logged
//! commit wrote, with the commit's sequence number as its version.
//!
//! An instance builds it from the log as it follows it; a write
//! transaction keeps its own changes in one too. Reads look a key up in
//! the overlays first (the transaction's, then the log's) and in the tree
//! only if neither has it.

use alloc::collections::BTreeMap;
use alloc::collections::btree_map;
use core::ops::Bound as RangeBound;

use crate::prelude::*;
use crate::tree::Bound;
use crate::wal::Op;

/// The newest logged state of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Logged {
    /// `None`: deleted.
    pub value: Option<Vec<u8>>,
    /// Sequence number of the commit that wrote it.
    pub version: u64,
    /// When it expires (wall-clock ms), if it does.
    pub expires: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Overlay {
    map: BTreeMap<Vec<u8>, Logged>,
    /// Every key of `map` is in it (changed only with `map`).
    filter: KeyFilter,
    /// Bytes of keys and values held (memory, and the size of the record
    /// a transaction's overlay encodes to).
    pub bytes: usize,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The entries in key order.
    pub fn iter(&self) -> btree_map::Iter<'_, Vec<u8>, Logged> {
        self.map.iter()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Logged> {
        if !self.filter.may_contain(key) {
            return None;
        }
        self.map.get(key)
    }

    pub fn set(&mut self, key: &[u8], value: Option<&[u8]>, version: u64, expires: Option<u64>) {
        let add = key.len() + value.map_or(0, <[u8]>::len);
        let logged = Logged {
            value: value.map(<[u8]>::to_vec),
            version,
            expires,
        };
        if self.filter.is_full(self.map.len() + 1) {
            self.filter = KeyFilter::of(self.map.keys(), self.map.len() + 1);
        }
        self.filter.insert(key);
        match self.map.entry(key.to_vec()) {
            btree_map::Entry::Occupied(mut e) => {
                let old = e.get().value.as_ref().map_or(0, Vec::len);
                self.bytes = self.bytes - old + value.map_or(0, <[u8]>::len);
                e.insert(logged);
            }
            btree_map::Entry::Vacant(e) => {
                self.bytes += add;
                e.insert(logged);
            }
        }
    }

    /// Applies the operations of commit `seq`.
    pub fn apply(&mut self, ops: &[Op<'_>], seq: u64) {
        for op in ops {
            match *op {
                Op::Put(k, v, expires) => self.set(k, Some(v), seq, expires),
                Op::Delete(k) => self.set(k, None, seq, None),
            }
        }
    }

    /// Forgets what a checkpoint at `seq` now holds in its tree.
    pub fn forget_up_to(&mut self, seq: u64) {
        let mut bytes = self.bytes;
        self.map.retain(|k, l| {
            let keep = l.version > seq;
            if !keep {
                bytes -= k.len() + l.value.as_ref().map_or(0, Vec::len);
            }
            keep
        });
        self.bytes = bytes;
        self.filter = KeyFilter::of(self.map.keys(), self.map.len());
    }

    /// Entries from `from` on, in key order.
    pub fn range<'a>(&'a self, from: Bound<'_>) -> btree_map::Range<'a, Vec<u8>, Logged> {
        let lo = match from {
            Bound::Start => RangeBound::Unbounded,
            Bound::Excl(k) => RangeBound::Excluded(k),
            Bound::Incl(k) => RangeBound::Included(k),
        };
        self.map.range::<[u8], _>((lo, RangeBound::Unbounded))
    }
}

/// A Bloom filter over an overlay's keys: most lookups are of keys the
/// log has not touched since the checkpoint, and the filter answers them
/// without a search of the map (which can hold half a log ring of keys).
/// 16 bits and 2 probes per key: about one key in 70 that is not there
/// still searches the map.
#[derive(Clone, Debug, Default)]
struct KeyFilter {
    /// Empty: no key can be present.
    words: Vec<u64>,
}

const FILTER_BITS_PER_KEY: usize = 16;

impl KeyFilter {
    /// A filter holding `keys`, with room for `room` keys.
    fn of<'k>(keys: impl Iterator<Item = &'k Vec<u8>>, room: usize) -> KeyFilter {
        let mut f = KeyFilter::default();
        if room > 0 {
            let words = (room * FILTER_BITS_PER_KEY).div_ceil(64).next_power_of_two();
            f.words = vec![0; words];
            keys.for_each(|k| f.insert(k));
        }
        f
    }

    /// Whether holding `keys` keys would overfill it.
    fn is_full(&self, keys: usize) -> bool {
        keys * FILTER_BITS_PER_KEY > self.words.len() * 64
    }

    /// The two bits of `key` (double hashing on FNV-1a, finished by a
    /// multiply-xorshift so that both halves are well mixed).
    fn bits(&self, key: &[u8]) -> [usize; 2] {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in key {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        let mask = self.words.len() * 64 - 1;
        let (a, b) = (h as u32 as usize, (h >> 32) as usize | 1);
        [a & mask, a.wrapping_add(b) & mask]
    }

    fn insert(&mut self, key: &[u8]) {
        for bit in self.bits(key) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, key: &[u8]) -> bool {
        !self.words.is_empty()
            && self
                .bits(key)
                .iter()
                .all(|&bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The entries of two overlays from `from` on, in key order; where both
/// hold a key, `top`'s entry wins.
pub(crate) fn merged<'a>(top: &'a Overlay, below: &'a Overlay, from: Bound<'_>) -> Merged<'a> {
    Merged {
        top: top.range(from).peekable(),
        below: below.range(from).peekable(),
    }
}

pub(crate) struct Merged<'a> {
    top: core::iter::Peekable<btree_map::Range<'a, Vec<u8>, Logged>>,
    below: core::iter::Peekable<btree_map::Range<'a, Vec<u8>, Logged>>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a Vec<u8>, &'a Logged);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.top.peek(), self.below.peek()) {
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                core::cmp::Ordering::Less => self.top.next(),
                core::cmp::Ordering::Greater => self.below.next(),
                core::cmp::Ordering::Equal => {
                    self.below.next();
                    self.top.next()
                }
            },
            (Some(_), None) => self.top.next(),
            (None, _) => self.below.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_prefers_the_top_layer_and_keeps_order() {
        let mut below = Overlay::default();
        below.set(b"a", Some(b"1"), 5, None);
        below.set(b"c", Some(b"3"), 5, None);
        below.set(b"d", None, 6, None);
        let mut top = Overlay::default();
        top.set(b"b", Some(b"x"), 9, None);
        top.set(b"c", None, 9, None);
        let got: Vec<_> = merged(&top, &below, Bound::Start)
            .map(|(k, l)| (k.clone(), l.value.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), Some(b"x".to_vec())),
                (b"c".to_vec(), None),
                (b"d".to_vec(), None),
            ]
        );
        let from_b: Vec<_> = merged(&top, &below, Bound::Excl(b"b"))
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(from_b, vec![b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(below.bytes, 5);
        below.forget_up_to(5);
        assert_eq!(below.map.len(), 1);
        assert_eq!(below.bytes, 1);
    }

    #[test]
    fn the_filter_never_hides_a_key_it_holds() {
        let mut o = Overlay::default();
        let key = |i: u32| format!("key/{i}").into_bytes();
        for i in 0..5000u32 {
            o.set(
                &key(i),
                (i % 3 != 0).then_some(b"v".as_slice()),
                u64::from(i),
                None,
            );
        }
        assert!((0..5000).all(|i| o.get(&key(i)).is_some()));
        let false_hits = (5000..15000).filter(|&i| o.filter.may_contain(&key(i))).count();
        assert!(
            false_hits < 500,
            "{false_hits} of 10,000 absent keys pass the filter"
        );
        o.forget_up_to(2499);
        assert!((0..2500).all(|i| o.get(&key(i)).is_none()));
        assert!((2500..5000).all(|i| o.get(&key(i)).is_some()));
        o.forget_up_to(u64::MAX);
        assert!(o.is_empty() && o.get(&key(4999)).is_none());
    }
}
