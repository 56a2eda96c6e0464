//! Authentication as the server applies it: a bearer token validated against the trusted
//! issuers and mapped to the engine's identity (with the directory's help), or, on loopback
//! only, no authentication and one fixed principal.

use super::directory::Directory;
use super::principal::identity_from_token;
use super::token::TokenValidator;
use crate::request::Identity;
use crate::{Result, RuntimeError};

/// How callers are identified.
pub enum Authenticator {
    /// `Authorization: Bearer` tokens of the configured issuers.
    Tokens { validator: Box<TokenValidator>, directory: Option<Box<Directory>> },
    /// `--no-auth --as PRINCIPAL`: every caller is this principal (loopback only).
    Anonymous(Identity),
}

impl Authenticator {
    /// Every caller is `principal`: the server only listens on loopback then.
    pub fn anonymous(principal: &str) -> Result<Authenticator> {
        kustodian_planner::Principal::parse(principal).map_err(RuntimeError::bad_request)?;
        Ok(Authenticator::Anonymous(Identity::new(principal)))
    }

    /// Who sent a request with this `Authorization` header; the error is the reason for a
    /// 401, never echoing the token.
    pub async fn authenticate(&self, authorization: Option<&str>) -> std::result::Result<Identity, String> {
        match self {
            Authenticator::Anonymous(id) => Ok(id.clone()),
            Authenticator::Tokens { validator, directory } => {
                let token = validator.validate_header(authorization).await.map_err(|e| e.to_string())?;
                let who = identity_from_token(&token, directory.as_deref()).map_err(|e| e.to_string())?;
                Ok(who.identity())
            }
        }
    }
}
