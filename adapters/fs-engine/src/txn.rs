//! Write transactions (FORMAT.md §9): the changes of one transaction are
//! collected in memory, on top of the view of the newest commit taken
//! under the writer lock, and committed at the end as one log record (or,
//! when they are too large for the log, by a checkpoint): see `commit.rs`.

use crate::bucket::{BucketFile, Found};
use crate::error::{Error, PageError};
use crate::io::Dir;
use crate::lock::LockGuard;
use crate::overlay::Overlay;
use crate::prelude::*;
use crate::read::{Range, lookup, newest_checkpoint, scan, unexpired};
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

/// A write transaction (see [`BucketFile::write`]). Reads see the
/// transaction's own writes on top of the newest commit at the time the
/// lock was taken.
pub struct WriteTxn<'s, D: Dir> {
    pub(crate) bucket: &'s mut BucketFile<D>,
    pub(crate) lock: Option<LockGuard>,
    /// This transaction's changes; their version is [`WriteTxn::commit_seq`].
    pub(crate) changes: Overlay,
    /// Fold the log into the tree when committing, even if it has room.
    pub(crate) force_checkpoint: bool,
}

impl<'s, D: Dir> WriteTxn<'s, D> {
    pub(crate) fn new(bucket: &'s mut BucketFile<D>, lock: LockGuard) -> Self {
        WriteTxn {
            bucket,
            lock: Some(lock),
            changes: Overlay::default(),
            force_checkpoint: false,
        }
    }

    /// Sequence of the commit this transaction started from.
    pub fn base_seq(&self) -> u64 {
        self.bucket.view.seq
    }

    /// Sequence this transaction will commit as (and the version its writes get).
    pub fn commit_seq(&self) -> u64 {
        self.bucket.view.seq + 1
    }

    /// Maps a page error met under the lock: a validation mismatch means
    /// corruption, unless another writer committed meanwhile (our lock was
    /// broken).
    pub(crate) fn fail(&mut self, e: PageError) -> Error {
        let b = &self.bucket;
        match e {
            PageError::Fatal(e) => e,
            PageError::Mismatch { page, what } => match newest_checkpoint(&b.pager, &b.header) {
                Ok(s) if s.newest.number != b.view.ckpt.number => Error::LockLost {
                    file: b.name.clone(),
                    detail: format!(
                        "checkpoint {} appeared while this transaction (based on checkpoint {}) held the lock",
                        s.newest.number, b.view.ckpt.number
                    ),
                },
                Ok(_) => Error::corrupt(
                    &b.name,
                    if page == 0 {
                        what
                    } else {
                        format!("page {page}: {what}")
                    },
                ),
                Err(e) => e,
            },
        }
    }

    pub(crate) fn keep_alive(&mut self) -> Result<(), Error> {
        match self.lock.as_mut() {
            Some(l) => l.ensure(&self.bucket.dir, &self.bucket.name),
            None => Err(Error::LockLost {
                file: self.bucket.name.clone(),
                detail: "transaction already finished".into(),
            }),
        }
    }

    /// Value of `key` as seen by this transaction.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get_versioned(key)?.map(|f| f.value))
    }

    /// Value, version and expiry of `key` as seen by this transaction (keys
    /// written by it report [`WriteTxn::commit_seq`]); an expired entry is
    /// absent.
    pub fn get_versioned(&mut self, key: &[u8]) -> Result<Option<Found>, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        self.keep_alive()?;
        let b = &mut *self.bucket;
        let found = lookup(&mut b.pager, &b.view, Some(&self.changes), key);
        let found = found.map_err(|e| self.fail(e))?;
        Ok(unexpired(found, || self.bucket.dir.now_millis()))
    }

    /// Up to `limit` keys greater than `after`, as seen by this transaction.
    pub fn keys_after(&mut self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.keep_alive()?;
        let b = &mut *self.bucket;
        let mut out = Vec::new();
        let range = Range {
            after,
            prefix: b"",
            now: Some(b.dir.now_millis()),
        };
        let r = scan(
            &mut b.pager,
            &b.view,
            Some(&self.changes),
            &range,
            false,
            &mut |_, it| {
                out.push(it.key);
                Ok(out.len() < limit)
            },
        );
        r.map_err(|e| self.fail(e))?;
        Ok(out)
    }

    /// Sets `key` to `value` (an entry that never expires).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.put_expiring(key, value, None)
    }

    /// Sets `key` to `value`, expiring at `expires_at` (wall-clock ms since
    /// the Unix epoch; `None`: never).
    pub fn put_expiring(&mut self, key: &[u8], value: &[u8], expires_at: Option<u64>) -> Result<(), Error> {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge { len: key.len() });
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge { len: value.len() });
        }
        self.keep_alive()?;
        let seq = self.commit_seq();
        self.changes.set(key, Some(value), seq, expires_at);
        Ok(())
    }

    /// Deletes `key`; returns whether it existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        if key.len() > MAX_KEY_LEN {
            return Ok(false);
        }
        let existed = self.get_versioned(key)?.is_some();
        if existed {
            let seq = self.commit_seq();
            self.changes.set(key, None, seq, None);
        }
        Ok(existed)
    }

    /// Makes this transaction's commit fold the log into the tree
    /// ([`BucketFile::checkpoint`]).
    pub(crate) fn checkpoint_on_commit(&mut self) -> Result<(), Error> {
        self.force_checkpoint = true;
        Ok(())
    }

    /// Ends the transaction, handing its lock back to the bucket.
    pub(crate) fn into_lock(mut self) -> Option<LockGuard> {
        self.lock.take()
    }
}

impl<D: Dir> Drop for WriteTxn<'_, D> {
    fn drop(&mut self) {
        if let Some(mut l) = self.lock.take() {
            let _ = l.release(&self.bucket.dir);
        }
    }
}
