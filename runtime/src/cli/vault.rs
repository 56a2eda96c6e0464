//! `kustodian vault`: a local file key vault (`kustodian_runtime::keys::vault`), for customer-
//! managed keys without a cloud: create it, add keys and versions, grant and revoke the
//! cluster's access, soft-delete and recover keys, disable versions.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kustodian_runtime::ErrorCode;
use kustodian_runtime::keys::vault::{LocalVault, PERMISSIONS};

use super::report::Failure;

#[derive(Debug, Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    command: VaultCommand,
}

#[derive(Debug, Subcommand)]
enum VaultCommand {
    /// Create a vault (soft delete and purge protection on unless turned off).
    Create {
        dir: PathBuf,
        #[arg(long)]
        no_soft_delete: bool,
        #[arg(long)]
        no_purge_protection: bool,
    },
    /// Add an RSA key, or a new version of it; prints the version.
    AddKey {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 3072)]
        size: usize,
    },
    /// Grant an identity permissions on the vault's keys (default: get, wrapKey, unwrapKey).
    Grant {
        dir: PathBuf,
        #[arg(long)]
        identity: String,
        #[arg(long, value_delimiter = ',', default_values_t = PERMISSIONS.iter().map(|p| p.to_string()).collect::<Vec<_>>())]
        permissions: Vec<String>,
    },
    /// Revoke every permission of an identity.
    Revoke {
        dir: PathBuf,
        #[arg(long)]
        identity: String,
    },
    /// Soft-delete a key.
    DeleteKey {
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Recover a soft-deleted key.
    RecoverKey {
        dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Disable one version of a key.
    Disable {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
    },
    /// Enable one version of a key.
    Enable {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        version: String,
    },
}

pub fn vault(args: &VaultArgs) -> Result<bool, Failure> {
    let fail = |e: kustodian_runtime::keys::KeyError| Failure::new(ErrorCode::BadRequest, e.to_string());
    // The vault's owner manages it; the identity only matters for wrap and unwrap.
    let open = |dir: &PathBuf| LocalVault::open(dir, "owner");
    match &args.command {
        VaultCommand::Create { dir, no_soft_delete, no_purge_protection } => {
            LocalVault::create(dir, !no_soft_delete, !no_purge_protection).map_err(fail)?;
            println!("created key vault {}", LocalVault::uri_of(dir));
        }
        VaultCommand::AddKey { dir, name, size } => println!("{}", open(dir).create_key(name, *size).map_err(fail)?),
        VaultCommand::Grant { dir, identity, permissions } => {
            let p: Vec<&str> = permissions.iter().map(String::as_str).collect();
            open(dir).set_access(identity, &p).map_err(fail)?;
        }
        VaultCommand::Revoke { dir, identity } => open(dir).set_access(identity, &[]).map_err(fail)?,
        VaultCommand::DeleteKey { dir, name } => open(dir).delete_key(name).map_err(fail)?,
        VaultCommand::RecoverKey { dir, name } => open(dir).recover_key(name).map_err(fail)?,
        VaultCommand::Disable { dir, name, version } => open(dir).set_enabled(name, version, false).map_err(fail)?,
        VaultCommand::Enable { dir, name, version } => open(dir).set_enabled(name, version, true).map_err(fail)?,
    }
    Ok(true)
}

/// `kustodian hsm`: key pairs in a PKCS#11 token (an HSM; SoftHSM2), for
/// `.alter cluster policy encryption` with a `pkcs11:` key vault URI.
#[derive(Debug, Args)]
pub struct HsmArgs {
    #[command(subcommand)]
    command: HsmCommand,
}

#[derive(Debug, Subcommand)]
enum HsmCommand {
    /// Generate an RSA key pair labelled NAME with the next version (the private key may not be
    /// destroyed); prints the version.
    AddKey {
        /// pkcs11:/path/to/module.so?token=LABEL
        #[arg(long)]
        uri: String,
        /// A file holding the token's user PIN.
        #[arg(long)]
        pin_file: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 2048)]
        size: u64,
    },
    /// Change the token's user PIN.
    SetPin {
        #[arg(long)]
        uri: String,
        #[arg(long)]
        pin_file: PathBuf,
        /// A file holding the new PIN.
        #[arg(long)]
        new_pin_file: PathBuf,
    },
}

pub fn hsm(args: &HsmArgs) -> Result<bool, Failure> {
    use kustodian_runtime::keys::pkcs11::Pkcs11Token;
    let fail = |e: kustodian_runtime::keys::KeyError| Failure::new(ErrorCode::BadRequest, e.to_string());
    match &args.command {
        HsmCommand::AddKey { uri, pin_file, name, size } => {
            let token = Pkcs11Token::new(uri, &format!("pin-file:{}", pin_file.display())).map_err(fail)?;
            println!("{}", token.create_key(name, *size).map_err(fail)?);
        }
        HsmCommand::SetPin { uri, pin_file, new_pin_file } => {
            let token = Pkcs11Token::new(uri, &format!("pin-file:{}", pin_file.display())).map_err(fail)?;
            let new = std::fs::read_to_string(new_pin_file)
                .map_err(|e| Failure::new(ErrorCode::BadRequest, format!("cannot read '{}': {e}", new_pin_file.display())))?;
            token.set_pin(new.trim()).map_err(fail)?;
        }
    }
    Ok(true)
}
