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
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Overlay {
    pub map: BTreeMap<Vec<u8>, Logged>,
    /// Bytes of keys and values held (memory, and the size of the record
    /// a transaction's overlay encodes to).
    pub bytes: usize,
}

impl Overlay {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Logged> {
        self.map.get(key)
    }

    pub fn set(&mut self, key: &[u8], value: Option<&[u8]>, version: u64) {
        let add = key.len() + value.map_or(0, <[u8]>::len);
        let logged = Logged {
            value: value.map(<[u8]>::to_vec),
            version,
        };
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
                Op::Put(k, v) => self.set(k, Some(v), seq),
                Op::Delete(k) => self.set(k, None, seq),
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
        below.set(b"a", Some(b"1"), 5);
        below.set(b"c", Some(b"3"), 5);
        below.set(b"d", None, 6);
        let mut top = Overlay::default();
        top.set(b"b", Some(b"x"), 9);
        top.set(b"c", None, 9);
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
}
