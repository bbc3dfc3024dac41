//! Per-instance page cache (CLOCK eviction).
//!
//! Entries are keyed by page number but only returned when the caller's
//! pointer carries the same `(seq, crc)` the cached copy was validated
//! against. Because every pointer names the exact page version it expects,
//! cached pages stay valid across other instances' commits for as long as
//! the tree still points at them, and can never be confused with a newer
//! page written at the same position.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;

use crate::prelude::*;

struct Slot {
    page: u32,
    seq: u64,
    crc: u32,
    data: Arc<[u8]>,
    referenced: bool,
}

pub(crate) struct PageCache {
    cap: usize,
    map: BTreeMap<u32, usize>,
    slots: Vec<Slot>,
    hand: usize,
}

impl PageCache {
    pub fn new(cap: usize) -> PageCache {
        PageCache {
            cap,
            map: BTreeMap::new(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    pub fn get(&mut self, page: u32, seq: u64, crc: u32) -> Option<Arc<[u8]>> {
        let &i = self.map.get(&page)?;
        let s = self.slots.get_mut(i)?;
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
        if let Some(&i) = self.map.get(&page) {
            self.slots[i] = Slot {
                page,
                seq,
                crc,
                data,
                referenced: true,
            };
            return;
        }
        if self.slots.len() < self.cap {
            self.map.insert(page, self.slots.len());
            self.slots.push(Slot {
                page,
                seq,
                crc,
                data,
                referenced: false,
            });
            return;
        }
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if self.slots[i].referenced {
                self.slots[i].referenced = false;
                continue;
            }
            self.map.remove(&self.slots[i].page);
            self.map.insert(page, i);
            self.slots[i] = Slot {
                page,
                seq,
                crc,
                data,
                referenced: false,
            };
            return;
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.slots.clear();
        self.hand = 0;
    }
}
