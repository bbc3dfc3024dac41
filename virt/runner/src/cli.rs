//! The `kv-run` command line: run a composed component on the embedded
//! wasmtime, or serve it. Its binary (`src/bin/kv-run.rs`) only calls [`main`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{RunOptions, Runtime, ServeOptions};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

/// Run a command component (wasi:cli/run of WASI 0.2 or 0.3) on an embedded
/// wasmtime 48 with WASI 0.2, WASI 0.3 and outgoing wasi:http, or serve a
/// wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3 component
/// (`kv-run serve`). Like `wasmtime run` and `wasmtime serve`, without any
/// wasi:keyvalue host support.
///
/// Example: kv-run --dir ./data::/data counter.wasm -- hits
#[derive(Parser)]
#[command(
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    serve: Option<Serve>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// The component to run.
    #[arg(required = true)]
    component: Option<PathBuf>,
    /// Arguments for the component.
    #[arg(last = true)]
    args: Vec<String>,
}

/// What every instance sees.
#[derive(Args)]
struct InstanceArgs {
    /// Preopen a host directory as HOST::GUEST (or HOST, seen as the same path).
    #[arg(long = "dir", value_name = "HOST::GUEST")]
    dirs: Vec<String>,
    /// Pass an environment variable to the guest: NAME=VALUE, or NAME for
    /// kv-run's own value of it (as `wasmtime run --env NAME`).
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,
    /// Send outgoing HTTP requests over pooled keep-alive connections
    /// (plain http only), instead of a new connection per request as
    /// `wasmtime run` and `wasmtime serve` do.
    #[arg(long)]
    reuse_connections: bool,
}

#[derive(Subcommand)]
enum Serve {
    /// Serve a wasi:http/incoming-handler@0.2 or wasi:http/handler@0.3
    /// component over HTTP/1.1, a fresh instance per request, many at once.
    /// Prints the address it listens on.
    ///
    /// Example: kv-run serve --addr 127.0.0.1:8080 --dir ./data::/data notes.wasm
    #[command(verbatim_doc_comment)]
    Serve {
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        instance: InstanceArgs,
        /// The component to serve.
        component: PathBuf,
    },
}

type Preopens = Vec<(PathBuf, String)>;
type Env = Vec<(String, String)>;

impl InstanceArgs {
    fn parse(&self) -> Result<(Preopens, Env)> {
        let preopens = self
            .dirs
            .iter()
            .map(|dir| {
                let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
                (PathBuf::from(host), guest.to_string())
            })
            .collect();
        let mut env = Vec::new();
        for var in &self.envs {
            let (name, value) = match var.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => match std::env::var(var) {
                    Ok(value) => (var.clone(), value),
                    Err(_) => bail!("--env {var}: kv-run has no such variable (or give NAME=VALUE)"),
                },
            };
            env.push((name, value));
        }
        Ok((preopens, env))
    }
}

fn run(args: RunArgs) -> Result<i32> {
    let component = args.component.context("no component given")?;
    let (preopens, env) = args.instance.parse()?;
    let options = RunOptions {
        args: args.args,
        env,
        preopens,
        reuse_connections: args.instance.reuse_connections,
        ..RunOptions::default()
    };
    let command = Runtime::new()?.command_from_file(&component)?;
    let output = command
        .run(&options)
        .with_context(|| format!("running {}", component.display()))?;
    Ok(output.exit_code)
}

fn serve(addr: SocketAddr, instance: InstanceArgs, component: PathBuf) -> Result<i32> {
    let (preopens, env) = instance.parse()?;
    #[allow(
        clippy::needless_update,
        reason = "ServeOptions has one more field with kv-runner's wasi-keyvalue feature"
    )]
    let options = ServeOptions {
        addr,
        env,
        preopens,
        reuse_connections: instance.reuse_connections,
        ..ServeOptions::default()
    };
    let service = Runtime::new()?.service_from_file(&component)?;
    let server = service.serve(&options)?;
    // One line a script (or a test) can read the address from.
    println!(
        "kv-run: serving {} on http://{}/",
        component.display(),
        server.addr()
    );
    std::io::stdout().flush()?;
    server.wait()?;
    Ok(0)
}

/// Parses the command line, runs it, and gives the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.serve {
        Some(Serve::Serve {
            addr,
            instance,
            component,
        }) => serve(addr, instance, component),
        None => run(cli.run),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("kv-run: {e:#}");
            ExitCode::FAILURE
        }
    }
}
