//! HTTPS with client certificates against a tiny handler, with a rustls client: allowed and
//! refused common names, no certificate, a foreign CA, plain HTTP, renewal, bad files.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use status_http::{
    ConnInfo, Handler, HttpError, Request, Response, Server, ServerConfig, TlsConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Counts calls and answers with the client's common name.
#[derive(Default)]
struct WhoAmI {
    calls: AtomicUsize,
}

impl Handler for WhoAmI {
    async fn handle(&self, req: Request) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let info = req.extensions().get::<ConnInfo>().unwrap();
        http::Response::new(Bytes::from(format!(
            "hello {}",
            info.peer_common_name.as_deref().unwrap_or("?")
        )))
    }
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `cn`, valid for localhost and 127.0.0.1.
    fn issue(&self, cn: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn write(ca: &Ca, server: &(String, String)) -> Files {
        let dir = tempfile::tempdir().unwrap();
        let files = Files { dir };
        files.put("ca.crt", &ca.pem);
        files.put("server.crt", &server.0);
        files.put("server.key", &server.1);
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Replaces a file the way renewal tools do: write a temporary file, rename it over.
    fn put(&self, name: &str, text: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    fn tls(&self, allowed_cn: &[&str]) -> TlsConfig {
        TlsConfig {
            ca_path: self.path("ca.crt"),
            cert_path: self.path("server.crt"),
            key_path: self.path("server.key"),
            allowed_cn: allowed_cn.iter().map(|s| s.to_string()).collect(),
        }
    }
}

struct Running {
    addr: SocketAddr,
    handler: Arc<WhoAmI>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(tls: TlsConfig, cfg: impl FnOnce(&mut ServerConfig)) -> Running {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.tls = Some(tls);
        cfg(&mut config);
        let server = Server::bind(config).await.unwrap();
        assert!(server.is_tls());
        let addr = server.local_addr();
        let handler = Arc::new(WhoAmI::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(handler.clone(), async move {
            let _ = rx.await;
        }));
        Running {
            addr,
            handler,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn client_config(trust: &Ca, client: Option<&(String, String)>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(&trust.pem) {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certs(cert),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// What a client saw: the response text, or the error that ended the exchange.
#[derive(Debug)]
struct Outcome {
    response: Result<String, String>,
    server_cert: Option<CertificateDer<'static>>,
}

async fn https_get(addr: SocketAddr, config: rustls::ClientConfig, path: &str) -> Outcome {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = match connector.connect(name, tcp).await {
        Ok(s) => s,
        Err(e) => {
            return Outcome {
                response: Err(e.to_string()),
                server_cert: None,
            }
        }
    };
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let response = async {
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        if out.is_empty() {
            return Err("connection closed without a response".to_string());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
    .await;
    Outcome {
        response,
        server_cert,
    }
}

#[tokio::test]
async fn allowed_and_refused_common_names() {
    let ca = Ca::new("test CA");
    let files = Files::write(&ca, &ca.issue("status-server"));
    let server = Running::start(files.tls(&["tidb", "pd"]), |_| {}).await;

    let tidb = ca.issue("tidb");
    let out = https_get(server.addr, client_config(&ca, Some(&tidb)), "/any").await;
    let text = out.response.unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("hello tidb"),
        "{text}"
    );
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 1);

    let eve = ca.issue("eve");
    for path in ["/any", "/debug/pprof/profile?seconds=1", "/no/such/route"] {
        let out = https_get(server.addr, client_config(&ca, Some(&eve)), path).await;
        let text = out.response.unwrap();
        assert!(text.starts_with("HTTP/1.1 403"), "{path}: {text}");
        assert!(
            text.ends_with(
                "\r\n\r\nclient certificate common name 'eve' is not allowed to call this server\n"
            ),
            "{path}: {text}"
        );
        assert!(text.contains("content-type: text/plain; charset=utf-8"));
    }
    // The handler never ran for the refused client.
    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn without_an_allow_list_any_certificate_of_the_ca_may_call() {
    let ca = Ca::new("test CA");
    let files = Files::write(&ca, &ca.issue("status-server"));
    let server = Running::start(files.tls(&[]), |_| {}).await;
    let out = https_get(
        server.addr,
        client_config(&ca, Some(&ca.issue("anyone"))),
        "/",
    )
    .await;
    assert!(out.response.unwrap().ends_with("hello anyone"));
    server.stop().await;
}

#[tokio::test]
async fn no_certificate_a_foreign_ca_and_plain_http_are_refused() {
    let ca = Ca::new("test CA");
    let files = Files::write(&ca, &ca.issue("status-server"));
    let server = Running::start(files.tls(&[]), |_| {}).await;

    let out = https_get(server.addr, client_config(&ca, None), "/").await;
    assert!(out.response.is_err(), "no client certificate: {out:?}");

    let other = Ca::new("another CA");
    let out = https_get(
        server.addr,
        client_config(&ca, Some(&other.issue("tidb"))),
        "/",
    )
    .await;
    assert!(out.response.is_err(), "foreign CA: {out:?}");

    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /tiflash/store-status HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_string(&mut out))
        .await
        .expect("the server closes a plain HTTP connection")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.ends_with("this port serves HTTPS with client certificates: use an https:// URL and present a client certificate\n"), "{out}");

    // Random bytes that are neither TLS nor HTTP: closed without a reply.
    let mut junk = TcpStream::connect(server.addr).await.unwrap();
    junk.write_all(&[0x00, 0xff, 0x13, 0x37]).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), junk.read_to_end(&mut out))
        .await
        .expect("closed");
    assert!(out.is_empty());

    assert_eq!(server.handler.calls.load(Ordering::SeqCst), 0);
    // Still serving.
    let out = https_get(server.addr, client_config(&ca, Some(&ca.issue("ok"))), "/").await;
    assert!(out.response.unwrap().ends_with("hello ok"));
    server.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_header_timeout() {
    let ca = Ca::new("test CA");
    let files = Files::write(&ca, &ca.issue("status-server"));
    let server = Running::start(files.tls(&[]), |c| {
        c.header_read_timeout = Duration::from_millis(300)
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("dropped within the timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() >= Duration::from_millis(250));
    server.stop().await;
}

/// Polls until the server presents `want` (bounded), returning whether it did.
async fn wait_for_cert(
    addr: SocketAddr,
    ca: &Ca,
    client: &(String, String),
    want: &CertificateDer<'_>,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let out = https_get(addr, client_config(ca, Some(client)), "/").await;
        if out.server_cert.as_ref() == Some(&want.clone().into_owned()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn renewed_certificates_are_served_without_a_restart_and_a_bad_renewal_is_ignored() {
    let ca = Ca::new("test CA");
    let first = ca.issue("status-server");
    let files = Files::write(&ca, &first);
    let server = Running::start(files.tls(&[]), |_| {}).await;
    let client = ca.issue("tidb");
    let first_der = pem_certs(&first.0).remove(0);
    let out = https_get(server.addr, client_config(&ca, Some(&client)), "/").await;
    assert_eq!(out.server_cert.as_ref(), Some(&first_der));

    let renewed = ca.issue("status-server");
    files.put("server.key", &renewed.1);
    files.put("server.crt", &renewed.0);
    let renewed_der = pem_certs(&renewed.0).remove(0);
    assert!(
        wait_for_cert(server.addr, &ca, &client, &renewed_der).await,
        "the renewed certificate was not served"
    );

    // A broken renewal: the key does not match; the renewed certificate stays in service.
    files.put("server.key", &ca.issue("other").1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for _ in 0..3 {
        let out = https_get(server.addr, client_config(&ca, Some(&client)), "/").await;
        assert_eq!(out.server_cert.as_ref(), Some(&renewed_der));
        assert!(out.response.unwrap().ends_with("hello tidb"));
    }
    server.stop().await;
}

fn bind_error(tls: TlsConfig) -> String {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    config.tls = Some(tls);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err: HttpError = rt.block_on(Server::bind(config)).unwrap_err();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[test]
fn unusable_files_are_startup_errors_that_name_them() {
    let ca = Ca::new("test CA");
    let files = Files::write(&ca, &ca.issue("status-server"));
    let path = |n: &str| files.path(n).display().to_string();

    let mut tls = files.tls(&[]);
    tls.cert_path = files.path("missing.crt");
    let e = bind_error(tls);
    assert!(
        e.starts_with(&format!(
            "cannot read the TLS certificate file {}",
            path("missing.crt")
        )) && e.contains("No such file"),
        "{e}"
    );

    files.put("empty.pem", "");
    let mut tls = files.tls(&[]);
    tls.ca_path = files.path("empty.pem");
    let e = bind_error(tls);
    assert!(
        e.contains(&format!(
            "CA certificate file {}: contains no PEM certificate",
            path("empty.pem")
        )),
        "{e}"
    );

    let mut tls = files.tls(&[]);
    tls.key_path = files.path("server.crt");
    let e = bind_error(tls);
    assert!(
        e.contains(&format!(
            "private key file {}: contains no PEM private key",
            path("server.crt")
        )),
        "{e}"
    );

    files.put("other.key", &ca.issue("x").1);
    let mut tls = files.tls(&[]);
    tls.key_path = files.path("other.key");
    let e = bind_error(tls);
    assert!(e.contains("cannot be used together"), "{e}");

    files.put("broken.crt", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let mut tls = files.tls(&[]);
    tls.cert_path = files.path("broken.crt");
    let e = bind_error(tls);
    assert!(
        e.contains(&format!(
            "certificate file {}: not valid PEM",
            path("broken.crt")
        )),
        "{e}"
    );
}
