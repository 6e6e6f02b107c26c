//! The `smsgate` binary: parse the command line and hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    smsgate::memory::limit_arenas();
    smsgate::cli::run(smsgate::cli::Cli::parse())
}
