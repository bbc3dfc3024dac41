use std::process::ExitCode;

use clap::Parser;
use kv_virt::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain, outermost first.
            eprintln!("kv-virt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
