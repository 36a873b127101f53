//! Server settings: defaults, a TOML file, and command-line flags (flags win).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Every setting of the server, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`status-addr`); port 0 picks a free port.
    pub status_addr: SocketAddr,
    /// The only directory the server writes to (heap dumps). Created on first use.
    pub data_dir: PathBuf,
    /// Log filter in the `EnvFilter` syntax of tracing-subscriber (`info`, `debug,hyper=warn`, …).
    pub log_level: String,
}

impl Config {
    /// TiFlash's `flash.proxy.status-addr` default.
    pub const DEFAULT_STATUS_ADDR: &'static str = "127.0.0.1:20292";
    /// Default data directory, relative to the working directory.
    pub const DEFAULT_DATA_DIR: &'static str = "tiflash-status-data";

    /// Resolves settings: `flags` over `file` over the defaults.
    pub fn resolve(file: Settings, flags: Settings) -> Result<Config, ConfigError> {
        let s = file.overridden_by(flags);
        let addr = s
            .status_addr
            .unwrap_or_else(|| Self::DEFAULT_STATUS_ADDR.to_string());
        let status_addr = addr.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "status-addr '{addr}' is not HOST:PORT with a numeric IP, e.g. 127.0.0.1:20292"
            ))
        })?;
        Ok(Config {
            status_addr,
            data_dir: s
                .data_dir
                .unwrap_or_else(|| PathBuf::from(Self::DEFAULT_DATA_DIR)),
            log_level: s.log_level.unwrap_or_else(|| "info".to_string()),
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        // The defaults are valid by construction.
        Config::resolve(Settings::default(), Settings::default()).unwrap_or_else(|_| Config {
            status_addr: SocketAddr::from(([127, 0, 0, 1], 20292)),
            data_dir: PathBuf::from(Self::DEFAULT_DATA_DIR),
            log_level: "info".into(),
        })
    }
}

/// One layer of settings, every key optional: the TOML file (`--config`) and the flags share
/// these names (`status-addr = "…"` in the file is `--status-addr …` on the command line).
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    /// Listen address HOST:PORT [default: 127.0.0.1:20292]; port 0 picks a free port.
    #[arg(long, value_name = "HOST:PORT")]
    pub status_addr: Option<String>,
    /// The only directory the server writes to (heap dumps) [default: ./tiflash-status-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing EnvFilter [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl Settings {
    /// Reads a TOML file of settings.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| {
            ConfigError::Invalid(format!("config file {}: {}", path.display(), e.message()))
        })
    }

    /// `self` with every key that `other` sets replaced by `other`'s value.
    pub fn overridden_by(self, other: Settings) -> Settings {
        Settings {
            status_addr: other.status_addr.or(self.status_addr),
            data_dir: other.data_dir.or(self.data_dir),
            log_level: other.log_level.or(self.log_level),
        }
    }
}

/// Settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value is malformed or settings contradict each other.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let file: Settings =
            toml::from_str("status-addr = \"127.0.0.1:1\"\ndata-dir = \"/f\"").unwrap();
        let flags = Settings {
            status_addr: Some("127.0.0.1:2".into()),
            ..Settings::default()
        };
        let c = Config::resolve(file, flags).unwrap();
        assert_eq!(c.status_addr.port(), 2);
        assert_eq!(c.data_dir, PathBuf::from("/f"));
        assert_eq!(Config::default().status_addr.to_string(), "127.0.0.1:20292");
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::resolve(
            Settings::default(),
            Settings {
                status_addr: Some("nope".into()),
                ..Settings::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("status-addr 'nope'"));
        assert!(toml::from_str::<Settings>("bogus = 1").is_err());
    }
}
