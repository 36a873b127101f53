//! HTTPS with client certificates, end to end: the real binary, the real `curl --key --cert
//! --cacert`, certificates made at test time with rcgen. An allowed client is served; a client
//! whose common name is not allowed gets 403 on every route (the CPU profile route included,
//! unlike TiKV); no certificate, a foreign CA and plain HTTP fail; renewed files are served
//! without a restart; bad TLS settings stop the binary at startup with a sentence.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{curl, server_binary, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

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

    /// Writes `<name>.crt` and `<name>.key` for common name `cn` (valid for 127.0.0.1 and
    /// localhost) into `dir`; returns their paths.
    fn issue(&self, dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, pem_key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        replace(&crt, &cert.pem());
        replace(&pem_key, &key.serialize_pem());
        (crt, pem_key)
    }

    fn write(&self, path: &Path) -> PathBuf {
        replace(path, &self.pem);
        path.to_path_buf()
    }
}

/// Replaces a file as renewal tools do: write a temporary file, rename it over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TLS server with its PKI: CA, server certificate and key in a temporary directory.
struct Tls {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_path: PathBuf,
    server: TestServer,
}

impl Tls {
    fn start(allowed_cn: Option<&str>) -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("status test CA");
        let ca_path = ca.write(&dir.path().join("ca.crt"));
        let (crt, key) = ca.issue(dir.path(), "server", "status-server-1");
        let mut args = vec![
            "--ca-path".to_string(),
            s(&ca_path).to_string(),
            "--cert-path".to_string(),
            s(&crt).to_string(),
            "--key-path".to_string(),
            s(&key).to_string(),
        ];
        if let Some(cn) = allowed_cn {
            args.extend(["--cert-allowed-cn".to_string(), cn.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = TestServer::start(&args);
        Tls {
            dir,
            ca,
            ca_path,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.server.addr())
    }

    /// A client certificate and key signed by the server's CA.
    fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        self.ca.issue(self.dir.path(), &format!("client-{cn}"), cn)
    }

    /// `curl --key --cert --cacert [extra…] URL`: (HTTP status, body); panics if curl fails.
    fn get(&self, client: &(PathBuf, PathBuf), extra: &[&str], path: &str) -> (u16, String) {
        let url = self.url(path);
        let mut args = vec![
            "--key",
            s(&client.1),
            "--cert",
            s(&client.0),
            "--cacert",
            s(&self.ca_path),
            "--write-out",
            "\n%{http_code}",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        let (status, out, err) = curl(&args);
        assert!(status.success(), "curl {path}: {status:?} {err}");
        let out = String::from_utf8_lossy(&out).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap();
        (code.parse().unwrap(), body.to_string())
    }
}

#[test]
fn an_allowed_client_is_served_like_the_published_example() {
    let tls = Tls::start(Some("tidb,pd"));
    let tidb = tls.client("tidb");
    let (status, body) = tls.get(&tidb, &[], "/tiflash/store-status");
    assert_eq!((status, body.as_str()), (200, "Running"));
    let (status, _) = tls.get(&tls.client("pd"), &[], "/tiflash/livez");
    assert_eq!(status, 200);
    // The TLS example of the published API document, a short profile.
    let (status, body) = tls.get(&tidb, &[], "/debug/pprof/profile?seconds=1");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<svg"),
        "not a flame graph: {}",
        &body[..body.len().min(200)]
    );
    assert!(
        tls.server.stderr().contains("listening"),
        "{}",
        tls.server.stderr()
    );
}

#[test]
fn a_common_name_not_allowed_gets_403_on_every_route() {
    let tls = Tls::start(Some("tidb"));
    let eve = tls.client("eve");
    let expected = "client certificate common name 'eve' is not allowed to call this server\n";
    let with_params = [
        "/debug/pprof/profile?seconds=1&format=protobuf",
        "/debug/pprof/heap_activate?interval=1",
        "/no/such/route",
    ];
    let routes = integration_tests::GET_ROUTES
        .iter()
        .chain(with_params.iter());
    for route in routes {
        let (status, body) = tls.get(&eve, &[], route);
        assert_eq!((status, body.as_str()), (403, expected), "{route}");
    }
    // POST with a body, and HEAD, are refused the same way.
    let (status, body) = tls.get(&eve, &["--data-binary", "0x1"], "/debug/pprof/symbol");
    assert_eq!((status, body.as_str()), (403, expected));
    let (status, _) = tls.get(&eve, &["--head"], "/tiflash/store-status");
    assert_eq!(status, 403);

    // Nothing ran: the heap activation eve asked for did not start.
    let tidb = tls.client("tidb");
    let (status, body) = tls.get(&tidb, &[], "/debug/pprof/heap_list");
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(
        tls.server
            .stderr()
            .contains("client certificate not allowed"),
        "the refusal is logged"
    );
}

#[test]
fn no_certificate_a_foreign_ca_and_plain_http_fail() {
    let tls = Tls::start(None);
    let url = tls.url("/tiflash/store-status");

    // No client certificate.
    let (status, out, err) = curl(&["--cacert", s(&tls.ca_path), &url]);
    assert!(
        !status.success(),
        "served without a client certificate: {out:?}"
    );
    assert!(out.is_empty(), "{err}");

    // A client certificate from another CA.
    let other = Ca::new("another CA");
    let (crt, key) = other.issue(tls.dir.path(), "foreign", "tidb");
    let (status, out, err) = curl(&[
        "--key",
        s(&key),
        "--cert",
        s(&crt),
        "--cacert",
        s(&tls.ca_path),
        &url,
    ]);
    assert!(!status.success(), "served a foreign certificate: {out:?}");
    assert!(out.is_empty(), "{err}");

    // Plain HTTP to the HTTPS port: a 400 sentence, never the route.
    let plain = tls.server.url("/tiflash/store-status");
    assert!(plain.starts_with("http://"));
    let (status, _, _) = curl(&["--fail", &plain]);
    assert!(!status.success());
    let (status, out, _) = curl(&["--write-out", "\n%{http_code}", &plain]);
    assert!(status.success());
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        out,
        "this port serves HTTPS with client certificates: use an https:// URL and present a client certificate\n\n400"
    );

    // The server is unharmed.
    let (status, body) = tls.get(&tls.client("tidb"), &[], "/tiflash/store-status");
    assert_eq!((status, body.as_str()), (200, "Running"));
}

/// The subject of the certificate the server presents, from `curl --verbose`.
fn served_subject(tls: &Tls, client: &(PathBuf, PathBuf)) -> String {
    let url = tls.url("/tiflash/livez");
    let (status, _, err) = curl(&[
        "--verbose",
        "--key",
        s(&client.1),
        "--cert",
        s(&client.0),
        "--cacert",
        s(&tls.ca_path),
        &url,
    ]);
    assert!(status.success(), "{err}");
    err.lines()
        .find_map(|l| l.trim_start_matches(['*', ' ']).strip_prefix("subject: "))
        .unwrap_or_else(|| panic!("no subject in curl's output: {err}"))
        .to_string()
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let tls = Tls::start(None);
    let client = tls.client("tidb");
    assert_eq!(served_subject(&tls, &client), "CN=status-server-1");

    // Renew: a new key and certificate over the old files.
    tls.ca.issue(tls.dir.path(), "server", "status-server-2");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let subject = served_subject(&tls, &client);
        if subject == "CN=status-server-2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still serving {subject} after renewal"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(tls
        .server
        .stderr()
        .contains("TLS certificate files changed"));

    // A broken renewal (garbage key) is logged and the current certificate stays in service.
    replace(&tls.dir.path().join("server.key"), "not a key\n");
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..2 {
        assert_eq!(served_subject(&tls, &client), "CN=status-server-2");
    }
    let log = tls.server.stderr();
    assert!(
        log.contains("renewed TLS certificate files cannot be used")
            && log.contains("contains no PEM private key"),
        "{log}"
    );
}

/// Runs the binary with `args` and expects it to refuse to start: (exit code, stderr).
fn refuses_to_start(args: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(server_binary())
        .args(["--status-addr", "127.0.0.1:0", "--data-dir", s(data.path())])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "started with {args:?}: {stdout}");
    assert!(!stdout.contains("listening"), "{stdout}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_tls_settings_stop_the_binary_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let ca_path = ca.write(&dir.path().join("ca.crt"));
    let (crt, key) = ca.issue(dir.path(), "server", "server");

    let err = refuses_to_start(&["--ca-path", s(&ca_path)]);
    assert!(
        err.contains("HTTPS needs all three of ca-path, cert-path and key-path, but cert-path and key-path are not set"),
        "{err}"
    );
    let err = refuses_to_start(&["--ca-path", s(&ca_path), "--cert-path", s(&crt)]);
    assert!(err.contains("but key-path is not set"), "{err}");
    let err = refuses_to_start(&["--cert-allowed-cn", "tidb"]);
    assert!(err.contains("cert-allowed-cn needs HTTPS"), "{err}");

    let missing = dir.path().join("missing.crt");
    let err = refuses_to_start(&[
        "--ca-path",
        s(&ca_path),
        "--cert-path",
        s(&missing),
        "--key-path",
        s(&key),
    ]);
    assert!(
        err.contains(&format!(
            "cannot read the TLS certificate file {}",
            missing.display()
        )) && err.contains("No such file"),
        "{err}"
    );
    let err = refuses_to_start(&[
        "--ca-path",
        s(&crt),
        "--cert-path",
        s(&crt),
        "--key-path",
        s(&crt),
    ]);
    assert!(
        err.contains(&format!(
            "private key file {}: contains no PEM private key",
            crt.display()
        )),
        "{err}"
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    let err = refuses_to_start(&[
        "--ca-path",
        s(&garbage),
        "--cert-path",
        s(&crt),
        "--key-path",
        s(&key),
    ]);
    assert!(
        err.contains(&format!(
            "CA certificate file {}: contains no PEM certificate",
            garbage.display()
        )),
        "{err}"
    );
}
