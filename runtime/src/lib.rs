//! Kustodian runtime: cluster state, commands, storage, execution.
