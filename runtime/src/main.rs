//! The kustodian binary: the command line, its REPL and rendering (the `cli` module).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
