//! Test support for corpus runners.
