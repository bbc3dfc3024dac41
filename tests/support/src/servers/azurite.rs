//! Azurite, the Azure Storage emulator (its Table service), from npm:
//! pinned in `tests/azurite/package.json` and its lock file, installed by
//! `npm ci` on first use (and by `bash tests/run.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::WorkDir;

use super::{Process, free_port, http_get, temp_dir, wait_until};

/// The well-known development account and its key, built into Azurite and
/// published by Microsoft: not a secret.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Azurite's Table service on 127.0.0.1, with its data in a fresh directory.
pub struct Azurite {
    port: u16,
    _process: Process,
    // Last: removed after the process is killed.
    _dir: WorkDir,
}

impl Azurite {
    pub fn start(name: &str) -> Result<Self> {
        let program = install()?;
        let dir = temp_dir(&format!("azurite-{name}"));
        let port = free_port();
        let mut process = Process::spawn(
            "azurite-table",
            Command::new(program)
                .args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
                .arg("--location")
                .arg(&dir)
                // No telemetry: nothing leaves the machine.
                .args(["--silent", "--disableTelemetry"]),
            dir.join("azurite.log"),
        )?;
        wait_until(&mut [&mut process], "azurite", || {
            // Any answer (an unsigned request is refused) means it is up.
            http_get(port, &format!("/{DEV_ACCOUNT}/Tables")).is_ok()
        })?;
        Ok(Azurite {
            port,
            _process: process,
            _dir: dir,
        })
    }

    /// The endpoint, path-style: the account is the first path segment.
    pub fn url(&self) -> String {
        Azurite::url_at(self.port)
    }

    /// The account's URL at another port (a proxy in front of Azurite).
    pub fn url_at(port: u16) -> String {
        format!("http://127.0.0.1:{port}/{DEV_ACCOUNT}")
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `azurite-table` from `tests/azurite`, running `npm ci` there if it is not
/// installed yet (once, even with tests and test processes in parallel).
fn install() -> Result<PathBuf> {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../azurite");
    let program = dir.join("node_modules/.bin/azurite-table");
    let _guard = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lock = std::fs::File::create(dir.join(".install.lock"))?;
    lock.lock()?;
    if program.is_file() {
        return Ok(program);
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .status()
        .context(
            "azurite is not installed and npm cannot run: install Node.js and npm (`bash tests/run.sh` does)",
        )?;
    if !status.success() || !program.is_file() {
        bail!(
            "`npm ci --prefix {}` failed ({status}): azurite is not installed",
            dir.display()
        );
    }
    Ok(program)
}
