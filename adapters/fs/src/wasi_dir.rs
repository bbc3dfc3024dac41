//! The engine's storage traits on `wasi:filesystem` 0.2, through the
//! `wasip2` bindings directly (not `std::fs`, which opens files with the
//! `mutate-directory` flag that jco's preview2-shim refuses, and would pull
//! in the C library's imports): only a directory below a preopen is opened
//! with that flag, and without it where the runtime refuses it.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use kv_core::{Error, Quoted};
use kv_fs_engine::{IoError, IoErrorKind, IoResult};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

/// The configured directory (a preopen, or a directory below one).
#[derive(Clone)]
pub struct WasiDir {
    dir: Rc<Descriptor>,
}

/// An open bucket or lock file.
pub struct WasiFile {
    file: Descriptor,
}

fn io_error(op: &str, code: ErrorCode) -> IoError {
    let kind = match code {
        ErrorCode::NoEntry => IoErrorKind::NotFound,
        ErrorCode::Exist => IoErrorKind::AlreadyExists,
        ErrorCode::Unsupported | ErrorCode::NotPermitted => IoErrorKind::Unsupported,
        ErrorCode::Interrupted | ErrorCode::WouldBlock => IoErrorKind::Interrupted,
        _ => IoErrorKind::Other,
    };
    IoError::new(kind, format!("{op}: {}", code.message()))
}

/// Splits `/data/kv` into the preopen that contains it and the rest.
fn find_preopen(path: &str) -> Option<(Descriptor, String)> {
    let wanted: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut best: Option<(Descriptor, usize)> = None;
    for (descriptor, guest_path) in get_directories() {
        let prefix: Vec<&str> = guest_path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let longer = best.as_ref().is_none_or(|(_, len)| prefix.len() > *len);
        if wanted.starts_with(&prefix) && longer {
            best = Some((descriptor, prefix.len()));
        }
    }
    best.map(|(descriptor, len)| (descriptor, wanted[len..].join("/")))
}

impl WasiDir {
    /// Opens the configured directory: `path` must be a preopened directory
    /// (as the guest sees it) or lie below one.
    pub fn open(path: &str) -> Result<WasiDir, Error> {
        let Some((preopen, rest)) = find_preopen(path) else {
            let preopens: Vec<String> = get_directories().into_iter().map(|(_, p)| p).collect();
            return Err(Error::other(format!(
                "kv-fs: directory {} is not under a preopened directory (the runtime preopened: {}); \
                 give the runtime the directory (e.g. `wasmtime run --dir HOST::{path}`) or compose with `--dir`",
                Quoted(path),
                if preopens.is_empty() {
                    "none".into()
                } else {
                    preopens.join(", ")
                }
            )));
        };
        if rest.is_empty() {
            return Ok(WasiDir {
                dir: Rc::new(preopen),
            });
        }
        let open = |flags| preopen.open_at(PathFlags::empty(), &rest, OpenFlags::DIRECTORY, flags);
        // wasmtime lets a directory's descriptor create and remove files only
        // if it was opened with `mutate-directory`; jco's preview2-shim
        // refuses that flag as unsupported (and checks no permissions).
        let dir = match open(DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY) {
            Err(ErrorCode::Unsupported) => open(DescriptorFlags::READ),
            result => result,
        }
        .map_err(|code| {
            Error::other(format!(
                "kv-fs: opening directory {}: {}",
                Quoted(path),
                code.message()
            ))
        })?;
        Ok(WasiDir { dir: Rc::new(dir) })
    }

    fn open_file(&self, name: &str, open: OpenFlags) -> Result<Descriptor, ErrorCode> {
        let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
        self.dir.open_at(PathFlags::empty(), name, open, flags)
    }
}

impl kv_fs_engine::File for WasiFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> IoResult<usize> {
        let (bytes, _end) = self
            .file
            .read(buf.len() as u64, offset)
            .map_err(|c| io_error("read", c))?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn write_at(&self, mut buf: &[u8], mut offset: u64) -> IoResult<()> {
        while !buf.is_empty() {
            let written = self.file.write(buf, offset).map_err(|c| io_error("write", c))?;
            if written == 0 {
                return Err(IoError::new(IoErrorKind::Other, "write: wrote nothing".into()));
            }
            let written = usize::try_from(written).unwrap_or(buf.len()).min(buf.len());
            buf = &buf[written..];
            offset += written as u64;
        }
        Ok(())
    }

    fn sync(&self) -> IoResult<()> {
        self.file.sync_data().map_err(|c| io_error("sync", c))
    }

    fn len(&self) -> IoResult<u64> {
        Ok(self.file.stat().map_err(|c| io_error("stat", c))?.size)
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        self.file.set_size(len).map_err(|c| io_error("set-size", c))
    }
}

impl kv_fs_engine::Dir for WasiDir {
    type File = WasiFile;

    fn open(&self, name: &str, create: bool) -> IoResult<Option<WasiFile>> {
        let flags = if create {
            OpenFlags::CREATE
        } else {
            OpenFlags::empty()
        };
        match self.open_file(name, flags) {
            Ok(file) => Ok(Some(WasiFile { file })),
            Err(ErrorCode::NoEntry) if !create => Ok(None),
            Err(code) => Err(io_error("open", code)),
        }
    }

    fn create_exclusive(&self, name: &str) -> IoResult<Option<WasiFile>> {
        match self.open_file(name, OpenFlags::CREATE | OpenFlags::EXCLUSIVE) {
            Ok(file) => Ok(Some(WasiFile { file })),
            Err(ErrorCode::Exist) => Ok(None),
            Err(code) => Err(io_error("create", code)),
        }
    }

    fn link(&self, existing: &str, new_name: &str) -> IoResult<bool> {
        match self
            .dir
            .link_at(PathFlags::empty(), existing, &self.dir, new_name)
        {
            Ok(()) => Ok(true),
            Err(ErrorCode::Exist) => Ok(false),
            Err(code) => Err(io_error("link", code)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> IoResult<()> {
        self.dir
            .rename_at(from, &self.dir, to)
            .map_err(|c| io_error("rename", c))
    }

    fn remove(&self, name: &str) -> IoResult<bool> {
        match self.dir.unlink_file_at(name) {
            Ok(()) => Ok(true),
            Err(ErrorCode::NoEntry) => Ok(false),
            Err(code) => Err(io_error("remove", code)),
        }
    }

    fn sync_dir(&self) -> IoResult<()> {
        // Not every runtime can sync a directory descriptor; the entries
        // the engine depends on are made durable through the files.
        match self.dir.sync() {
            Ok(())
            | Err(
                ErrorCode::Unsupported
                | ErrorCode::BadDescriptor
                | ErrorCode::Access
                | ErrorCode::NotPermitted
                | ErrorCode::Invalid,
            ) => Ok(()),
            Err(code) => Err(io_error("sync directory", code)),
        }
    }

    fn now_millis(&self) -> u64 {
        let now = wall_clock::now();
        now.seconds * 1000 + u64::from(now.nanoseconds / 1_000_000)
    }

    fn monotonic_millis(&self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn sleep_millis(&self, ms: u64) {
        monotonic_clock::subscribe_duration(ms * 1_000_000).block();
    }

    fn random_u64(&self) -> u64 {
        wasip2::random::random::get_random_u64()
    }
}
