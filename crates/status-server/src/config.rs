//! Server settings: defaults, a TOML file, and command-line flags (flags win).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// etcd endpoints of the remote GC owner election; empty: the embedded single-node election.
    pub etcd_endpoints: Vec<String>,
    /// This node's id (its engine address) in the remote GC owner election.
    pub engine_addr: String,
    /// The lease TTL of the remote GC owner election.
    pub owner_ttl: Duration,
    /// HTTPS with client certificates (`ca-path`, `cert-path`, `key-path`, `cert-allowed-cn`);
    /// `None`: plain HTTP.
    pub tls: Option<status_http::TlsConfig>,
    /// How long a client may take to send a request head (`header-timeout`).
    pub header_timeout: Duration,
    /// How many dumps a `heap_activate` keeps on disk, oldest removed first
    /// (`heap-dump-max-files`).
    pub heap_dump_max_files: usize,
}

impl Config {
    /// TiFlash's `flash.proxy.status-addr` default.
    pub const DEFAULT_STATUS_ADDR: &'static str = "127.0.0.1:20292";
    /// Default data directory, relative to the working directory.
    pub const DEFAULT_DATA_DIR: &'static str = "tiflash-status-data";
    /// TiFlash's default engine address (`flash.service_addr`), the owner-election id.
    pub const DEFAULT_ENGINE_ADDR: &'static str = "127.0.0.1:3930";
    /// The default lease TTL of the owner election, seconds.
    pub const DEFAULT_OWNER_TTL_SECS: u64 = 60;
    /// The default header read timeout, seconds.
    pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
    /// The default number of periodic heap dumps kept on disk.
    pub const DEFAULT_HEAP_DUMP_MAX_FILES: usize = 32;

    /// Resolves settings: `flags` over `file` over the defaults.
    pub fn resolve(file: Settings, flags: Settings) -> Result<Config, ConfigError> {
        let s = file.overridden_by(flags);
        let (etcd_endpoints, engine_addr, owner_ttl) = remote_gc_settings(&s)?;
        let tls = tls_settings(&s)?;
        let header_timeout = header_timeout(&s)?;
        let heap_dump_max_files = match s.heap_dump_max_files {
            None => Self::DEFAULT_HEAP_DUMP_MAX_FILES,
            Some(n @ 1..=100_000) => n,
            Some(n) => {
                return Err(ConfigError::Invalid(format!(
                    "heap-dump-max-files '{n}' is out of range: expected 1 to 100000 files"
                )))
            }
        };
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
            etcd_endpoints,
            engine_addr,
            owner_ttl,
            tls,
            header_timeout,
            heap_dump_max_files,
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
            etcd_endpoints: Vec::new(),
            engine_addr: Self::DEFAULT_ENGINE_ADDR.into(),
            owner_ttl: Duration::from_secs(Self::DEFAULT_OWNER_TTL_SECS),
            tls: None,
            header_timeout: Duration::from_secs(Self::DEFAULT_HEADER_TIMEOUT_SECS),
            heap_dump_max_files: Self::DEFAULT_HEAP_DUMP_MAX_FILES,
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
    /// etcd endpoints for the remote GC owner election, comma separated [default: none, the
    /// embedded single-node election: this node always owns].
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub etcd_endpoints: Option<String>,
    /// This node's id in the remote GC owner election [default: 127.0.0.1:3930].
    #[arg(long, value_name = "HOST:PORT")]
    pub engine_addr: Option<String>,
    /// Lease TTL of the remote GC owner election, 1 to 86400 seconds [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub owner_ttl: Option<u64>,
    /// PEM file of the CA that client certificates must be signed by. With --cert-path and
    /// --key-path: HTTPS with client certificates (docs/security.md).
    #[arg(long, value_name = "FILE")]
    pub ca_path: Option<PathBuf>,
    /// PEM file of the server's certificate chain (HTTPS; needs --ca-path and --key-path).
    #[arg(long, value_name = "FILE")]
    pub cert_path: Option<PathBuf>,
    /// PEM file of the server's private key (HTTPS; needs --ca-path and --cert-path).
    #[arg(long, value_name = "FILE")]
    pub key_path: Option<PathBuf>,
    /// Client certificate common names allowed to call any route, comma separated (in the
    /// file also a list); others get 403 on every route [default: any the CA signed].
    #[arg(long, value_name = "CN[,CN...]")]
    #[serde(default, deserialize_with = "string_or_list")]
    pub cert_allowed_cn: Option<String>,
    /// Seconds a client may take to send a request head (and, on HTTPS, the TLS handshake)
    /// before it is dropped, 1 to 3600 [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub header_timeout: Option<u64>,
    /// How many dumps a running `heap_activate` keeps on disk, oldest removed first, 1 to
    /// 100000 [default: 32].
    #[arg(long, value_name = "N")]
    pub heap_dump_max_files: Option<usize>,
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
            etcd_endpoints: other.etcd_endpoints.or(self.etcd_endpoints),
            engine_addr: other.engine_addr.or(self.engine_addr),
            owner_ttl: other.owner_ttl.or(self.owner_ttl),
            ca_path: other.ca_path.or(self.ca_path),
            cert_path: other.cert_path.or(self.cert_path),
            key_path: other.key_path.or(self.key_path),
            cert_allowed_cn: other.cert_allowed_cn.or(self.cert_allowed_cn),
            header_timeout: other.header_timeout.or(self.header_timeout),
            heap_dump_max_files: other.heap_dump_max_files.or(self.heap_dump_max_files),
        }
    }
}

/// The remote GC owner-election settings, checked (see docs/remote-gc.md).
fn remote_gc_settings(s: &Settings) -> Result<(Vec<String>, String, Duration), ConfigError> {
    let endpoints: Vec<String> = match &s.etcd_endpoints {
        None => Vec::new(),
        Some(list) => {
            let eps: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect();
            if eps.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "etcd-endpoints '{list}' names no endpoint: expected HOST:PORT[,HOST:PORT...]"
                )));
            }
            eps
        }
    };
    let engine_addr = s
        .engine_addr
        .clone()
        .unwrap_or_else(|| Config::DEFAULT_ENGINE_ADDR.to_string());
    if engine_addr.trim().is_empty() {
        return Err(ConfigError::Invalid(
            "engine-addr is empty: expected this node's engine address, e.g. 127.0.0.1:3930".into(),
        ));
    }
    let ttl_secs = s.owner_ttl.unwrap_or(Config::DEFAULT_OWNER_TTL_SECS);
    if !(1..=86_400).contains(&ttl_secs) {
        return Err(ConfigError::Invalid(format!(
            "owner-ttl '{ttl_secs}' is out of range: expected 1 to 86400 seconds"
        )));
    }
    let ttl = Duration::from_secs(ttl_secs);
    if !endpoints.is_empty() {
        #[cfg(feature = "etcd")]
        remote_gc::EtcdConfig::new(endpoints.clone(), engine_addr.clone())
            .with_ttl(ttl)
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("etcd-endpoints: {e}")))?;
        #[cfg(not(feature = "etcd"))]
        return Err(ConfigError::Invalid(
            "etcd-endpoints is set, but this build has no etcd support: build status-server with the 'etcd' feature".into(),
        ));
    }
    Ok((endpoints, engine_addr, ttl))
}

/// `cert-allowed-cn` in the file: `"a,b"` or `["a", "b"]`, kept comma separated like the flag.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s,
        OneOrMany::Many(v) => v.join(","),
    }))
}

/// The TLS settings, checked: all three paths or none (docs/security.md).
fn tls_settings(s: &Settings) -> Result<Option<status_http::TlsConfig>, ConfigError> {
    let paths = [
        ("ca-path", &s.ca_path),
        ("cert-path", &s.cert_path),
        ("key-path", &s.key_path),
    ];
    let set: Vec<&str> = paths
        .iter()
        .filter(|(_, p)| p.is_some())
        .map(|(n, _)| *n)
        .collect();
    let (Some(ca_path), Some(cert_path), Some(key_path)) = (&s.ca_path, &s.cert_path, &s.key_path)
    else {
        if !set.is_empty() {
            let missing: Vec<&str> = paths
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(n, _)| *n)
                .collect();
            return Err(ConfigError::Invalid(format!(
                "HTTPS needs all three of ca-path, cert-path and key-path, but {} {} not set",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            )));
        }
        if s.cert_allowed_cn.is_some() {
            return Err(ConfigError::Invalid(
                "cert-allowed-cn needs HTTPS: set ca-path, cert-path and key-path as well".into(),
            ));
        }
        return Ok(None);
    };
    let allowed_cn = match &s.cert_allowed_cn {
        None => Vec::new(),
        Some(list) => {
            let names: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            if names.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "cert-allowed-cn '{list}' names no common name: expected CN[,CN...]"
                )));
            }
            names
        }
    };
    Ok(Some(status_http::TlsConfig {
        ca_path: ca_path.clone(),
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
        allowed_cn,
    }))
}

fn header_timeout(s: &Settings) -> Result<Duration, ConfigError> {
    let secs = s
        .header_timeout
        .unwrap_or(Config::DEFAULT_HEADER_TIMEOUT_SECS);
    if !(1..=3600).contains(&secs) {
        return Err(ConfigError::Invalid(format!(
            "header-timeout '{secs}' is out of range: expected 1 to 3600 seconds"
        )));
    }
    Ok(Duration::from_secs(secs))
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

    #[test]
    fn tls_settings_all_three_or_none() {
        assert!(Config::default().tls.is_none());
        let file: Settings = toml::from_str(
            "ca-path = \"/ca\"\ncert-path = \"/c\"\nkey-path = \"/k\"\ncert-allowed-cn = [\"tidb\", \"pd\"]\nheader-timeout = 2",
        )
        .unwrap();
        let c = Config::resolve(file, Settings::default()).unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca_path, PathBuf::from("/ca"));
        assert_eq!(tls.allowed_cn, ["tidb", "pd"]);
        assert_eq!(c.header_timeout, Duration::from_secs(2));
        let flags = Settings {
            ca_path: Some("/ca".into()),
            cert_path: Some("/c".into()),
            key_path: Some("/k".into()),
            cert_allowed_cn: Some(" a , b ".into()),
            ..Settings::default()
        };
        assert_eq!(
            Config::resolve(Settings::default(), flags)
                .unwrap()
                .tls
                .unwrap()
                .allowed_cn,
            ["a", "b"]
        );

        for (flags, needle) in [
            (
                Settings { ca_path: Some("/ca".into()), ..Settings::default() },
                "HTTPS needs all three of ca-path, cert-path and key-path, but cert-path and key-path are not set",
            ),
            (
                Settings { ca_path: Some("/ca".into()), cert_path: Some("/c".into()), ..Settings::default() },
                "but key-path is not set",
            ),
            (
                Settings { cert_allowed_cn: Some("tidb".into()), ..Settings::default() },
                "cert-allowed-cn needs HTTPS",
            ),
            (
                Settings {
                    ca_path: Some("/ca".into()),
                    cert_path: Some("/c".into()),
                    key_path: Some("/k".into()),
                    cert_allowed_cn: Some(" , ".into()),
                    ..Settings::default()
                },
                "names no common name",
            ),
            (Settings { header_timeout: Some(0), ..Settings::default() }, "header-timeout '0'"),
        ] {
            let e = Config::resolve(Settings::default(), flags).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn remote_gc_settings_defaults_and_errors() {
        let c = Config::default();
        assert!(c.etcd_endpoints.is_empty());
        assert_eq!(c.engine_addr, "127.0.0.1:3930");
        assert_eq!(c.owner_ttl, Duration::from_secs(60));

        let file: Settings =
            toml::from_str("etcd-endpoints = \"127.0.0.1:2379, 127.0.0.1:2381\"\nowner-ttl = 3")
                .unwrap();
        let c = Config::resolve(file, Settings::default());
        if cfg!(feature = "etcd") {
            let c = c.unwrap();
            assert_eq!(c.etcd_endpoints, ["127.0.0.1:2379", "127.0.0.1:2381"]);
            assert_eq!(c.owner_ttl, Duration::from_secs(3));
        } else {
            assert!(c.unwrap_err().to_string().contains("'etcd' feature"));
        }

        for (flags, needle) in [
            (
                Settings {
                    owner_ttl: Some(0),
                    ..Settings::default()
                },
                "owner-ttl '0'",
            ),
            (
                Settings {
                    etcd_endpoints: Some(" , ".into()),
                    ..Settings::default()
                },
                "names no endpoint",
            ),
            (
                Settings {
                    engine_addr: Some(" ".into()),
                    ..Settings::default()
                },
                "engine-addr is empty",
            ),
        ] {
            let e = Config::resolve(Settings::default(), flags).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        #[cfg(feature = "etcd")]
        {
            let flags = Settings {
                etcd_endpoints: Some("https://e:2379".into()),
                ..Settings::default()
            };
            let e = Config::resolve(Settings::default(), flags).unwrap_err();
            assert!(e.to_string().contains("etcd-endpoints: "), "{e}");
        }
    }
}
