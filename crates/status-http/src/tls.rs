//! HTTPS with client certificates: loading the PEM files, picking up renewed files without a
//! restart, and the allowed-common-name check.
//!
//! The files are loaded once at [`Server::bind`](crate::Server::bind), where any problem is a
//! startup error that names the file. While serving, a new connection checks (at most every
//! [`RELOAD_CHECK_INTERVAL`]) whether any of the three files changed (modification time, change
//! time, size, inode); if so the set is loaded again and, when it is usable, new connections get
//! it. A renewal that cannot be used is logged as an error and the previous certificates stay in
//! service.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::server::HttpError;

/// How often, at most, a new connection looks at the certificate files' metadata.
pub(crate) const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The loaded TLS settings and what is needed to reload them.
pub(crate) struct TlsState {
    files: TlsConfig,
    current: RwLock<Loaded>,
    next_check: Mutex<Instant>,
}

#[derive(Clone)]
struct Loaded {
    acceptor: TlsAcceptor,
    stamp: Stamp,
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsState {
    /// Loads the three files; any problem is an error naming the file.
    pub(crate) fn load(files: TlsConfig) -> Result<TlsState, HttpError> {
        // Take the stamp first: a file replaced while we read it is then seen as changed on
        // the next check and read again.
        let stamp = Stamp::of(&files);
        let acceptor = load_acceptor(&files)?;
        Ok(TlsState {
            files,
            current: RwLock::new(Loaded { acceptor, stamp }),
            next_check: Mutex::new(Instant::now() + RELOAD_CHECK_INTERVAL),
        })
    }

    /// The acceptor for a new connection, after reloading the files if they changed.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.reload_if_changed();
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .acceptor
            .clone()
    }

    /// The common names allowed to call; empty: any certificate the CA signed.
    pub(crate) fn allowed_cn(&self) -> &[String] {
        &self.files.allowed_cn
    }

    fn reload_if_changed(&self) {
        let now = Instant::now();
        {
            let mut next = self
                .next_check
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now < *next {
                return;
            }
            *next = now + RELOAD_CHECK_INTERVAL;
        }
        let stamp = Stamp::of(&self.files);
        let previous = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp
            .clone();
        if stamp == previous {
            return;
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match load_acceptor(&self.files) {
            Ok(acceptor) => {
                tracing::info!(
                    cert = %self.files.cert_path.display(),
                    "TLS certificate files changed; new connections use the renewed certificates"
                );
                *current = Loaded { acceptor, stamp };
            }
            Err(e) => {
                // Remember the stamp so that one bad renewal is logged once, not on every
                // check; the next change of any file is tried again.
                tracing::error!(
                    error = %DisplayChain(&e),
                    "renewed TLS certificate files cannot be used; still serving the previous certificates"
                );
                current.stamp = stamp;
            }
        }
    }
}

/// An error and its sources on one line.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// What identifies one version of the three files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([Option<FileStamp>; 3]);

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    changed: (i64, i64),
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(files: &TlsConfig) -> Stamp {
        Stamp([
            FileStamp::of(&files.ca_path),
            FileStamp::of(&files.cert_path),
            FileStamp::of(&files.key_path),
        ])
    }
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            changed: (meta.ctime(), meta.ctime_nsec()),
            #[cfg(unix)]
            inode: (meta.dev(), meta.ino()),
        })
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|source| HttpError::TlsFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn invalid(what: &str, path: &Path, problem: impl fmt::Display) -> HttpError {
    HttpError::Tls(format!("{what} {}: {problem}", path.display()))
}

fn load_acceptor(files: &TlsConfig) -> Result<TlsAcceptor, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    const CA: &str = "CA certificate file";
    let ca_pem = read(&files.ca_path, CA)?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|e| invalid(CA, &files.ca_path, pem_problem(&e)))?;
        roots.add(cert).map_err(|e| {
            invalid(
                CA,
                &files.ca_path,
                format!("not a usable CA certificate ({e})"),
            )
        })?;
    }
    if roots.is_empty() {
        return Err(invalid(
            CA,
            &files.ca_path,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(CA, &files.ca_path, e))?;

    const CERT: &str = "certificate file";
    let cert_pem = read(&files.cert_path, CERT)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(CERT, &files.cert_path, pem_problem(&e)))?;
    if chain.is_empty() {
        return Err(invalid(
            CERT,
            &files.cert_path,
            "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }

    const KEY: &str = "private key file";
    let key_pem = read(&files.key_path, KEY)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            KEY,
            &files.key_path,
            "contains no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ),
        e => invalid(KEY, &files.key_path, pem_problem(&e)),
    })?;

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            HttpError::Tls(format!(
                "certificate file {} and private key file {} cannot be used together: {e}",
                files.cert_path.display(),
                files.key_path.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn pem_problem(e: &pem::Error) -> String {
    format!("not valid PEM ({e})")
}

/// The outcome of the common-name check for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerCheck {
    /// The client certificate's common name (the first one, if it has several).
    pub(crate) common_name: Option<String>,
    /// `Some(sentence)`: every request on this connection gets 403 with this sentence.
    pub(crate) denied: Option<String>,
}

/// Reads the common name of the verified client certificate and checks it against `allowed`
/// (empty: every certificate the CA signed may call). A certificate with several common names
/// is allowed only if all of them are listed.
pub(crate) fn check_peer(end_entity: Option<&CertificateDer<'_>>, allowed: &[String]) -> PeerCheck {
    let names = match end_entity.map(|c| common_names(c.as_ref())) {
        Some(Ok(names)) => names,
        Some(Err(problem)) => {
            return PeerCheck {
                common_name: None,
                denied: (!allowed.is_empty()).then(|| {
                    format!("the client certificate's common name cannot be read ({problem}), and this server allows only listed common names")
                }),
            }
        }
        None => Vec::new(),
    };
    let common_name = names.first().cloned();
    if allowed.is_empty() {
        return PeerCheck {
            common_name,
            denied: None,
        };
    }
    let denied = if names.is_empty() {
        Some(
            "the client certificate has no common name, and this server allows only listed common names"
                .to_string(),
        )
    } else {
        names.iter().find(|n| !allowed.contains(n)).map(|n| {
            format!(
                "client certificate common name '{}' is not allowed to call this server",
                printable(n)
            )
        })
    };
    PeerCheck {
        common_name,
        denied,
    }
}

fn common_names(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    cert.subject()
        .iter_common_name()
        .map(|cn| cn.as_str().map(str::to_owned).map_err(|e| e.to_string()))
        .collect()
}

/// A name fit for a one-line reply: control characters replaced, at most 128 characters.
fn printable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if name.chars().count() > 128 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cert_with_cn(cn: Option<&str>) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn common_name_checks() {
        let alice = cert_with_cn(Some("alice"));
        let allowed = vec!["alice".to_string(), "bob".to_string()];
        assert_eq!(
            check_peer(Some(&alice), &allowed),
            PeerCheck {
                common_name: Some("alice".into()),
                denied: None
            }
        );
        assert_eq!(check_peer(Some(&alice), &[]).denied, None);
        let eve = cert_with_cn(Some("eve\n"));
        let check = check_peer(Some(&eve), &allowed);
        assert_eq!(check.common_name.as_deref(), Some("eve\n"));
        assert_eq!(
            check.denied.as_deref(),
            Some("client certificate common name 'eve?' is not allowed to call this server")
        );
        let anonymous = cert_with_cn(None);
        assert!(check_peer(Some(&anonymous), &allowed)
            .denied
            .unwrap()
            .contains("no common name"));
        assert!(check_peer(None, &allowed).denied.is_some());
        assert_eq!(check_peer(None, &[]).denied, None);
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
        assert!(check_peer(Some(&garbage), &allowed)
            .denied
            .unwrap()
            .contains("cannot be read"));
    }
}
