//! Shared by the CLI tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn kv_virt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kv-virt"))
        .args(args)
        .output()
        .unwrap()
}

/// A fresh directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
