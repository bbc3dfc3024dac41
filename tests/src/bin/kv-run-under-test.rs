//! `kv-run` as the tests run it in processes of its own (crash and serve
//! tests). It is a binary of this package so that cargo builds it, up to
//! date, for every test run (`CARGO_BIN_EXE_kv-run-under-test`); the command
//! line is `kv_runner::cli`, the same as the `kv-run` users run.

fn main() -> std::process::ExitCode {
    kv_runner::cli::main()
}
