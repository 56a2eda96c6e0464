//! The kustodian binary.
fn main() {}
