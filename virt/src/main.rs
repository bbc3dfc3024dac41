use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use kv_virt::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = Stdout {
        inner: io::stdout(),
        reader_gone: false,
    };
    match run(cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        // `kv-virt inspect app.wasm | head -1`: the reader has all it wanted;
        // like other Unix tools, end quietly.
        Err(_) if stdout.reader_gone => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain, outermost first.
            eprintln!("kv-virt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Standard output that notes when its reader went away (a broken pipe),
/// so that only that error, and only on stdout, is taken for success.
struct Stdout {
    inner: io::Stdout,
    reader_gone: bool,
}

impl Stdout {
    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            self.reader_gone |= e.kind() == io::ErrorKind::BrokenPipe;
        }
        result
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.note(result)
    }
}
