//! `kv-run`: run a composed component on the embedded wasmtime (see `kv_runner::cli`).

fn main() -> std::process::ExitCode {
    kv_runner::cli::main()
}
