//! Scratch directories that tests and servers clean up after themselves.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh, empty directory (whatever was at its path is removed first),
/// removed again when dropped, unless the thread is panicking: a failed
/// test leaves its files for a look, a passing one leaves nothing (etcd
/// alone preallocates 64 MB per server, and a full run would otherwise
/// leave gigabytes behind).
#[derive(Debug)]
pub struct WorkDir(PathBuf);

impl WorkDir {
    pub fn fresh(path: PathBuf) -> WorkDir {
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        WorkDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Deref for WorkDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for WorkDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

/// As for `Path`: a `WorkDir` is a command's argument as it is.
impl AsRef<std::ffi::OsStr> for WorkDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}
