//! The proxy commands of the language: `proxy` (its options are the
//! `muxcat proxy` subcommand's too), `hold` and `release`.

use std::path::PathBuf;

use clap::Args;

use super::SessionArgs;
use crate::core::command::{Command, ListenSpec, ProxySpec};
use crate::core::session::RelayDir;
use crate::core::tls::{ClientTls, ServerTls};
use crate::core::transport::Target;
use crate::core::{CoreResult, ErrorCode};

/// `proxy`: a listener whose clients are each connected to a target; the
/// pair is one session of kind `proxy`.
#[derive(Args, Clone, Debug)]
pub struct ProxyArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Clients speak TLS, terminated here (self-signed certificate unless --cert/--key)
    #[arg(long)]
    pub tls_in: bool,
    /// Certificate chain shown to clients (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_in")]
    pub cert: Option<PathBuf>,
    /// Its private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_in")]
    pub key: Option<PathBuf>,
    /// Speak TLS to the target (verified against the system roots and --ca)
    #[arg(long)]
    pub tls_out: bool,
    /// Also trust this CA certificate for the target (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_out")]
    pub ca: Option<PathBuf>,
    /// Server name to send and verify (default: the target's host)
    #[arg(long, value_name = "NAME", requires = "tls_out")]
    pub sni: Option<String>,
    /// Accept any certificate from the target
    #[arg(long, requires = "tls_out")]
    pub insecure: bool,
    /// Clients relayed at once; one more is accepted and closed at once
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_connections: usize,
    #[command(flatten)]
    pub acl: super::AclArgs,
    /// Where clients connect (no host: IPv4 and IPv6); or unix:PATH
    #[arg(value_name = "[HOST:]PORT|unix:PATH")]
    pub listen: String,
    /// Where each client is relayed to
    #[arg(value_name = "HOST:PORT|unix:PATH")]
    pub target: String,
}

impl ProxyArgs {
    pub fn spec(&self) -> CoreResult<ProxySpec> {
        let mut opts = self.session.options();
        // A relay passes each side's end on: one side's FIN half-closes
        // the other, and the session lasts until both ended.
        opts.half_open = true;
        Ok(ProxySpec {
            listen: ListenSpec {
                bind: Target::parse(&self.listen, |t| {
                    crate::core::addr::parse_bind(t, crate::core::addr::ANY_HOST)
                })?,
                opts,
                tls: self.tls_in.then(|| ServerTls {
                    cert: self.cert.clone(),
                    key: self.key.clone(),
                    client_ca: None,
                }),
                max_connections: self.max_connections,
                acl: self.acl.spec(),
            },
            target: Target::parse_connect(&self.target)?,
            tls_out: self.tls_out.then(|| ClientTls {
                ca: self.ca.clone(),
                sni: self.sni.clone(),
                insecure: self.insecure,
                cert: None,
                key: None,
            }),
        })
    }
}

/// `hold [SESSION] c2s|s2c` / `release …`.
pub(super) fn lower_hold(args: Vec<String>, hold: bool) -> CoreResult<Command> {
    let (session, value) = super::session_and_value(args);
    let name = if hold { "hold" } else { "release" };
    let dir = RelayDir::parse(&value).ok_or_else(|| {
        crate::core::CoreError::new(
            ErrorCode::CommandInvalid,
            format!("{name}: {value:?} is not c2s or s2c. Usage: {name} [SESSION] c2s|s2c"),
        )
    })?;
    Ok(Command::Hold { session, dir, hold })
}
