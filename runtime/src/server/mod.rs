//! The security core of `kustodian serve`, independent of HTTP: the configuration, bearer
//! token validation (with the signing keys' discovery and cache), the mapping of a token to
//! the engine's identity, the local directory, the dev token issuer, network access control,
//! the outbound restriction, and the audit log.
//!
//! A request goes: [`network::NetworkPolicy::decide`] (403 before anything else) →
//! [`token::TokenValidator::validate_header`] (401) → [`principal::identity_from_token`]
//! (401) → the engine with [`principal::AuthenticatedIdentity::identity`] →
//! [`audit::AuditLog::append`].

pub mod audit;
pub mod body;
pub mod commands;
pub mod config;
pub mod dev_issuer;
pub mod directory;
pub mod errors;
pub mod frames;
pub mod gate;
pub mod http;
pub mod issuer;
pub mod jwks;
pub mod network;
pub mod outbound;
pub mod playground;
pub mod principal;
pub mod queries;
pub mod serve;
pub mod token;

pub use serve::{ServeOptions, Server};
