//! The `kustodian` command line (see "The command-line contract" in the architecture notes).

pub mod encode;
mod report;
mod script;
