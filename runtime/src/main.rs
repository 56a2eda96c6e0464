//! The kustodian binary: the command line, its REPL and rendering (the `cli` module).

#[allow(dead_code)]
mod cli;

fn main() {}
