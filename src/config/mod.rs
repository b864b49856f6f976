//! Configuration as plain data, validated once at start. [`cli`] builds it from flags.
pub mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::conn::{Limits, Millis};
use crate::fs::{CacheConfig, MimeTable};
use crate::handler::Site;
use crate::log::{Level, LogFormat, LogTarget};

#[derive(Clone, Debug)]
pub struct Config {
    pub root: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub reuse_port: bool,
    pub site: Site,
    pub limits: Limits,
    pub max_connections: usize,
    pub shutdown_timeout: Millis,
    pub access_log: Option<(LogTarget, LogFormat)>,
    pub error_log: LogTarget,
    pub log_level: Level,
    pub cache: CacheConfig,
    pub mime: MimeTable,
}
