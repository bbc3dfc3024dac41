//! `kv-run`: run a composed component on the embedded wasmtime (`kv-runner`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use kv_runner::{RunOptions, Runtime};

/// Run a WASI 0.2 command component (wasi:cli/run) on an embedded wasmtime 48
/// with WASI 0.2 and outgoing wasi:http. Like `wasmtime run`, without any
/// wasi:keyvalue host support.
///
/// Example: kv-run --dir ./data::/data counter.wasm -- hits
#[derive(Parser)]
#[command(version, verbatim_doc_comment)]
struct Cli {
    /// Preopen a host directory as HOST::GUEST (or HOST, seen as the same path).
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Pass an environment variable NAME=VALUE to the guest.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    envs: Vec<String>,
    /// The component to run.
    component: PathBuf,
    /// Arguments for the component.
    #[arg(last = true)]
    args: Vec<String>,
}

fn run(cli: Cli) -> Result<i32> {
    let mut options = RunOptions {
        args: cli.args,
        ..RunOptions::default()
    };
    for dir in &cli.dirs {
        let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
        options.preopens.push((PathBuf::from(host), guest.to_string()));
    }
    for env in &cli.envs {
        let Some((name, value)) = env.split_once('=') else {
            bail!("--env {env:?}: expected NAME=VALUE");
        };
        options.env.push((name.to_string(), value.to_string()));
    }
    let runtime = Runtime::new()?;
    let command = runtime.command_from_file(&cli.component)?;
    let output = command
        .run(&options)
        .with_context(|| format!("running {}", cli.component.display()))?;
    Ok(output.exit_code)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("kv-run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
