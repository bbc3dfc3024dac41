//! CRC-32C (Castagnoli), the checksum of every page and record.
//!
//! With `std`, the `crc32c` crate (hardware-accelerated where the CPU has
//! it); without, a portable slice-by-8 table implementation. Both compute
//! the same function (checked by the tests below).

#[cfg(feature = "std")]
pub(crate) use ::crc32c::{crc32c, crc32c_append};

#[cfg(not(feature = "std"))]
pub(crate) use soft::{crc32c, crc32c_append};

#[cfg(any(not(feature = "std"), test))]
mod soft {
    use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    /// CRC-32C polynomial, bit-reversed.
    const POLY: u32 = 0x82F6_3B78;

    /// The slice-by-8 tables, zero until [`tables`] fills them at the first
    /// checksum: zeroed statics take no bytes in the `.wasm` file, which
    /// 8 KB of computed ones would. (Atomics, so that this takes no
    /// `unsafe`; a relaxed load is a plain load.)
    static TABLES: [[AtomicU32; 256]; 8] = [const { [const { AtomicU32::new(0) }; 256] }; 8];
    static FILLED: AtomicBool = AtomicBool::new(false);

    fn tables() -> &'static [[AtomicU32; 256]; 8] {
        if !FILLED.load(Ordering::Acquire) {
            // Threads that race here store the same values.
            for (n, entry) in (0u32..).zip(&TABLES[0]) {
                let mut c = n;
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
                }
                entry.store(c, Ordering::Relaxed);
            }
            for k in 1..8 {
                for (entry, previous) in TABLES[k].iter().zip(&TABLES[k - 1]) {
                    let prev = previous.load(Ordering::Relaxed);
                    let next = (prev >> 8) ^ TABLES[0][(prev & 0xff) as usize].load(Ordering::Relaxed);
                    entry.store(next, Ordering::Relaxed);
                }
            }
            FILLED.store(true, Ordering::Release);
        }
        &TABLES
    }

    /// CRC-32C of `data`.
    pub(crate) fn crc32c(data: &[u8]) -> u32 {
        crc32c_append(0, data)
    }

    /// CRC-32C of the concatenation of the bytes `crc` covers and `data`.
    pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
        let t = tables();
        let t = |table: usize, index: u32| t[table][index as usize].load(Ordering::Relaxed);
        let mut c = !crc;
        let mut chunks = data.chunks_exact(8);
        for ch in &mut chunks {
            let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
            let hi = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
            c = t(7, lo & 0xff)
                ^ t(6, (lo >> 8) & 0xff)
                ^ t(5, (lo >> 16) & 0xff)
                ^ t(4, lo >> 24)
                ^ t(3, hi & 0xff)
                ^ t(2, (hi >> 8) & 0xff)
                ^ t(1, (hi >> 16) & 0xff)
                ^ t(0, hi >> 24);
        }
        for &b in chunks.remainder() {
            c = t(0, (c ^ u32::from(b)) & 0xff) ^ (c >> 8);
        }
        !c
    }
}

#[cfg(test)]
mod tests {
    use super::soft;
    use crate::prelude::*;

    #[test]
    fn known_vectors() {
        assert_eq!(soft::crc32c(b""), 0);
        assert_eq!(soft::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(soft::crc32c(b"Hello world!"), 0x7B98_E751);
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn soft_matches_the_selected_implementation() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let data: Vec<u8> = (0..5008)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in (0..70).chain([511, 512, 1000, 4096, 4999]) {
            for start in [0, 1, 3, 7] {
                let d = &data[start..start + len];
                assert_eq!(soft::crc32c(d), super::crc32c(d), "len {len} start {start}");
                let split = len / 3;
                let a = soft::crc32c_append(soft::crc32c(&d[..split]), &d[split..]);
                assert_eq!(a, super::crc32c(d));
                assert_eq!(super::crc32c_append(super::crc32c(&d[..split]), &d[split..]), a);
            }
        }
    }
}
