//! Writer lock built from exclusive file creation, with leases and safe
//! stale-lock breaking. See FORMAT.md, "Writer lock", for the protocol and
//! its assumptions.

use crate::error::Error;
use crate::format::{LOCK_LEN, LockRecord};
use crate::io::{Dir, File, IoErrorKind};
use crate::prelude::*;

pub(crate) const KIND_LOCK: u32 = 0;
pub(crate) const KIND_BREAKER: u32 = 1;
pub(crate) const KIND_REQUEST: u32 = 2;

/// The name of the request marker of the lock `lock_name`: a waiter creates
/// it to ask a holder that keeps the lock across commits to hand it over.
pub(crate) fn request_name(lock_name: &str) -> String {
    format!("{lock_name}.want")
}

/// Whether a waiter asks for the lock (the holder checks this before each of
/// its commits). The holder takes the request away as it hands the lock
/// over; a waiter asks again at every look while the lock is held. If the
/// directory cannot say, the holder hands the lock over all the same: that
/// is always safe.
pub(crate) fn requested<D: Dir>(dir: &D, lock_name: &str) -> bool {
    dir.remove(&request_name(lock_name)).unwrap_or(true)
}

/// What a waiter remembers about a lock-like file it is watching.
struct Watch {
    content: Vec<u8>,
    since_mono: u64,
}

/// Reads a small file; `None` if it does not exist.
fn read_small<D: Dir>(dir: &D, name: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(f) = dir
        .open(name, false)
        .map_err(|e| Error::io(name, "open lock file", e))?
    else {
        return Ok(None);
    };
    let mut buf = vec![0u8; LOCK_LEN];
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n.min(buf.len() - done),
            Err(e) if e.kind() == IoErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(name, "read lock file", e)),
        }
    }
    buf.truncate(done);
    Ok(Some(buf))
}

fn remove_quiet<D: Dir>(dir: &D, name: &str) {
    let _ = dir.remove(name);
}

/// Decides whether the content of a lock-like file is stale: its lease
/// expired by the wall clock, or we watched it stay byte-for-byte unchanged
/// for a whole lease on our own monotonic clock (covers empty/garbled
/// files and skewed clocks).
fn is_stale<D: Dir>(
    dir: &D,
    content: &[u8],
    watch: &mut Option<Watch>,
    lease: u64,
    own_leftover: Option<u64>,
) -> bool {
    let mono = dir.monotonic_millis();
    if let Some(rec) = LockRecord::decode(content) {
        if Some(rec.token) == own_leftover {
            return true;
        }
        if dir.now_millis() > rec.expires_millis {
            return true;
        }
    }
    match watch {
        Some(w) if w.content == content => mono.saturating_sub(w.since_mono) >= lease,
        _ => {
            *watch = Some(Watch {
                content: content.to_vec(),
                since_mono: mono,
            });
            false
        }
    }
}

/// Identity of a lock-file content, used to name the breaker marker so
/// that all waiters breaking *the same* stale lock contend on one name.
fn content_id(content: &[u8]) -> u64 {
    match LockRecord::decode(content) {
        Some(r) => r.token,
        None => (1u64 << 63) | u64::from(crate::crc::crc32c(content)) << 16 | (content.len() as u64 & 0xffff),
    }
}

pub(crate) struct LockGuard {
    pub token: u64,
    pub lock_name: String,
    pub lease: u64,
    heartbeat: u64,
    acquired_millis: u64,
    last_refresh_mono: u64,
    pub released: bool,
    /// When it was taken (monotonic ms).
    pub acquired_mono: u64,
}

/// How long a waiter sleeps between looks at the lock. A holder hands the
/// lock over on request and it stays unused until the waiter's next look,
/// so waiters look every millisecond (a look costs three file calls, ~20 µs
/// under wasmtime).
const POLL_MS: u64 = 1;

/// How long a holder that handed the lock over on request stays out of the
/// race for it, so that the waiter that asked gets it (a few of its looks).
const HAND_OVER_MS: u64 = 3 * POLL_MS;

/// Takes the writer lock, waiting at most `wait` ms. While the lock is held
/// by another instance, the waiter asks for it with the request marker
/// (see [`requested`]); whoever takes the lock after waiting removes it.
/// `after_hand_over`: this instance has just released the lock because a
/// waiter asked: let that waiter take it first.
pub(crate) fn acquire<D: Dir>(
    dir: &D,
    file: &str,
    lock_name: &str,
    lease: u64,
    wait: u64,
    own_leftover: Option<u64>,
    after_hand_over: bool,
) -> Result<LockGuard, Error> {
    let start = dir.monotonic_millis();
    let token = dir.random_u64() | 1;
    let mut watch: Option<Watch> = None;
    let mut marker_watch: Option<Watch> = None;
    let mut waited_for_holder = false;
    if after_hand_over {
        while dir.monotonic_millis().saturating_sub(start) < HAND_OVER_MS {
            if read_small(dir, lock_name)?.is_some() {
                break;
            }
            dir.sleep_millis(POLL_MS);
        }
    }
    loop {
        if let Some(f) = dir
            .create_exclusive(lock_name)
            .map_err(|e| Error::io(lock_name, "create lock file", e))?
        {
            if waited_for_holder {
                remove_quiet(dir, &request_name(lock_name));
            }
            let now = dir.now_millis();
            let mono = dir.monotonic_millis();
            let rec = LockRecord::fresh(token, now, lease, KIND_LOCK);
            if let Err(e) = f.write_at(&rec.encode(), 0) {
                remove_quiet(dir, lock_name);
                return Err(Error::io(lock_name, "write lock file", e));
            }
            return Ok(LockGuard {
                token,
                lock_name: lock_name.to_string(),
                lease,
                heartbeat: 0,
                acquired_millis: now,
                last_refresh_mono: mono,
                released: false,
                acquired_mono: mono,
            });
        }
        // Held (or just released). Inspect it.
        if let Some(content) = read_small(dir, lock_name)? {
            if is_stale(dir, &content, &mut watch, lease, own_leftover) {
                break_stale(dir, lock_name, &content, token, lease, &mut marker_watch)?;
                watch = None;
                continue;
            }
        } else {
            continue; // released between our create and read: retry at once
        }
        // Ask at every look: the request may have been taken away by
        // another waiter that got the lock before us. (Asking is a courtesy:
        // unasked, the holder still lets go once idle, or its lease runs out.)
        waited_for_holder = true;
        let _ = ask_for_lock(dir, lock_name, token, wait.saturating_add(lease));
        let waited = dir.monotonic_millis().saturating_sub(start);
        if waited >= wait {
            remove_quiet(dir, &request_name(lock_name));
            return Err(Error::LockTimeout {
                file: file.to_string(),
                waited_millis: waited,
            });
        }
        dir.sleep_millis(POLL_MS.min(wait - waited).max(1));
    }
}

/// Places the request marker unless one is there (another waiter's: one
/// request serves all). Its record (the waiter and the time it would give
/// up) is for people looking at the directory.
pub(crate) fn ask_for_lock<D: Dir>(
    dir: &D,
    lock_name: &str,
    token: u64,
    valid_for: u64,
) -> Result<(), Error> {
    let name = request_name(lock_name);
    if let Some(f) = dir
        .create_exclusive(&name)
        .map_err(|e| Error::io(&name, "create lock request", e))?
    {
        let rec = LockRecord::fresh(token, dir.now_millis(), valid_for, KIND_REQUEST);
        f.write_at(&rec.encode(), 0)
            .map_err(|e| Error::io(&name, "write lock request", e))?;
    }
    Ok(())
}

/// Breaks a stale lock whose observed content is `stale`.
///
/// 1. Contend for the breaker marker `<lock>.break-<id of stale content>`
///    with exclusive create: among all waiters that saw *this* stale lock,
///    exactly one proceeds (a marker left by a dead breaker is itself
///    broken after a lease).
/// 2. Re-read the lock: if it changed, someone else already dealt with it.
/// 3. Rename it to a name unique to us, re-read what we got: if it is not
///    the stale content (a new holder slipped in), put it back with
///    `link` (which never replaces), else delete it.
/// 4. Remove the marker.
fn break_stale<D: Dir>(
    dir: &D,
    lock_name: &str,
    stale: &[u8],
    token: u64,
    lease: u64,
    marker_watch: &mut Option<Watch>,
) -> Result<(), Error> {
    let id = content_id(stale);
    let marker = format!("{lock_name}.break-{id:016x}");
    let Some(mf) = dir
        .create_exclusive(&marker)
        .map_err(|e| Error::io(&marker, "create lock breaker marker", e))?
    else {
        // Someone else is breaking it; if that breaker died, clear its marker.
        if let Some(mc) = read_small(dir, &marker)?
            && is_stale(dir, &mc, marker_watch, lease, None)
        {
            remove_quiet(dir, &marker);
            *marker_watch = None;
        }
        dir.sleep_millis(1);
        return Ok(());
    };
    let now = dir.now_millis();
    let rec = LockRecord::fresh(token, now, lease, KIND_BREAKER);
    let _ = mf.write_at(&rec.encode(), 0);
    let result = (|| -> Result<(), Error> {
        match read_small(dir, lock_name)? {
            Some(cur) if cur == stale => {}
            _ => return Ok(()),
        }
        let grave = format!("{lock_name}.stale-{token:016x}");
        match dir.rename(lock_name, &grave) {
            Ok(()) => {}
            Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(lock_name, "rename stale lock", e)),
        }
        let got = read_small(dir, &grave)?.unwrap_or_default();
        if got != stale {
            // We took a live lock by mistake: restore it without clobbering.
            let _ = dir.link(&grave, lock_name);
        }
        remove_quiet(dir, &grave);
        Ok(())
    })();
    remove_quiet(dir, &marker);
    result
}

impl LockGuard {
    /// Whether the lock may be kept for another commit without being taken
    /// again: less than half a lease since its last refresh. Nobody can have
    /// broken it then (it becomes stale a whole lease after the refresh), so
    /// keeping it rests on the same assumption as a long transaction's
    /// refresh (FORMAT.md §10). An older lock is released, never revived: a
    /// waiter may be breaking it at this moment.
    pub fn is_fresh<D: Dir>(&self, dir: &D) -> bool {
        dir.monotonic_millis().saturating_sub(self.last_refresh_mono) < self.lease / 2
    }

    /// Drops the lock without touching the lock file: it is no longer ours
    /// (another writer committed while we held it, so it was broken).
    pub fn forget(&mut self) {
        self.released = true;
    }

    /// Once a quarter of the lease has elapsed since the last refresh,
    /// verifies (by name) that the lock file still carries our token and
    /// refreshes the lease. Sooner than that nobody can have broken the lock
    /// (it is stale only a whole lease after the refresh), so there is
    /// nothing to verify and no file call is made.
    pub fn ensure<D: Dir>(&mut self, dir: &D, file: &str) -> Result<(), Error> {
        let mono = dir.monotonic_millis();
        if mono.saturating_sub(self.last_refresh_mono) < self.lease / 4 {
            return Ok(());
        }
        let lost = |detail: String| Error::LockLost {
            file: file.to_string(),
            detail,
        };
        let Some(f) = dir
            .open(&self.lock_name, false)
            .map_err(|e| Error::io(&self.lock_name, "open lock file", e))?
        else {
            return Err(lost(
                "the lock file was removed (lease expired and the lock was broken?)".into(),
            ));
        };
        let mut buf = [0u8; LOCK_LEN];
        let mut done = 0;
        while done < LOCK_LEN {
            match f.read_at(&mut buf[done..], done as u64) {
                Ok(0) => break,
                Ok(n) => done += n.min(buf.len() - done),
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.lock_name, "read lock file", e)),
            }
        }
        match LockRecord::decode(&buf[..done]) {
            Some(r) if r.token == self.token => {}
            _ => return Err(lost("the lock file now belongs to another writer".into())),
        }
        self.heartbeat += 1;
        let now = dir.now_millis();
        let rec = LockRecord {
            token: self.token,
            heartbeat: self.heartbeat,
            acquired_millis: self.acquired_millis,
            expires_millis: now.saturating_add(self.lease),
            lease_millis: self.lease,
            kind: KIND_LOCK,
        };
        f.write_at(&rec.encode(), 0)
            .map_err(|e| Error::io(&self.lock_name, "refresh lock file", e))?;
        self.last_refresh_mono = mono;
        Ok(())
    }

    /// Releases the lock. Within the lease nobody can have broken it, so a
    /// plain remove is safe; past it, rename-verify-remove so that we never
    /// delete somebody else's lock.
    pub fn release<D: Dir>(&mut self, dir: &D) -> Result<(), Error> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let mono = dir.monotonic_millis();
        if mono.saturating_sub(self.last_refresh_mono) < self.lease / 2 {
            return dir
                .remove(&self.lock_name)
                .map(|_| ())
                .map_err(|e| Error::io(&self.lock_name, "remove lock file", e));
        }
        let grave = format!("{}.stale-{:016x}", self.lock_name, self.token);
        match dir.rename(&self.lock_name, &grave) {
            Ok(()) => {}
            Err(e) if e.kind() == IoErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&self.lock_name, "rename lock file", e)),
        }
        let got = read_small(dir, &grave)?.unwrap_or_default();
        if LockRecord::decode(&got).map(|r| r.token) != Some(self.token) {
            let _ = dir.link(&grave, &self.lock_name);
        }
        remove_quiet(dir, &grave);
        Ok(())
    }
}
