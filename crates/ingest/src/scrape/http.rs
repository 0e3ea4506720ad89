//! The scrape HTTP request: headers as Prometheus sends them, bounded body reading, gzip.
//!
//! One hyper client (connection pool) serves every job without `tls_config`; a job with one
//! gets its own. The whole exchange, body included, runs under the target's timeout (the
//! caller's), and the body is never held past the job's `body_size_limit`, compressed or
//! not. `https` goes through rustls: the system's trust store unless `tls_config` names a
//! CA, client certificates, `server_name` and `insecure_skip_verify` as in Prometheus.
//! One difference from Go's TLS: rustls refuses a self-signed certificate that is its own
//! CA as a server certificate (`CaUsedAsEndEntity`); such targets need a CA-signed
//! certificate or `insecure_skip_verify`.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

use super::config::{Auth, Secret, TlsConfig};

/// What Prometheus 3.x asks for, narrowed to the formats Lookout parses.
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// A scrape response.
pub struct Fetched {
    /// The uncompressed body.
    pub body: Vec<u8>,
    /// The `Content-Type` header (empty if absent).
    pub content_type: String,
}

/// A scrape client: connection pool, TLS settings.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    user_agent: String,
    /// Why the TLS settings could not be used (a missing CA file): every scrape reports it.
    broken: Option<String>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(&TlsConfig::default())
    }
}

/// `insecure_skip_verify`: accepts any certificate, still checks the handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn read_pem(s: &Secret, what: &str) -> Result<Vec<u8>, String> {
    match s {
        Secret::Inline(v) => Ok(v.clone().into_bytes()),
        Secret::File(p) => {
            let mut v = Vec::new();
            std::fs::File::open(p)
                .and_then(|f| f.take(16 << 20).read_to_end(&mut v))
                .map_err(|e| format!("unable to read the {what} file {}: {e}", p.display()))?;
            Ok(v)
        }
    }
}

fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &tls.ca {
            Some(ca) => {
                let pem = read_pem(ca, "CA")?;
                let mut n = 0;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert =
                        cert.map_err(|e| format!("unable to parse the CA certificate: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("unable to use the CA certificate: {e}"))?;
                    n += 1;
                }
                if n == 0 {
                    return Err("the CA file holds no PEM certificate".into());
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(&read_pem(cert, "client certificate")?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("unable to parse the client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(&read_pem(key, "client key")?)
                .map_err(|e| format!("unable to parse the client key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("unable to use the client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

impl HttpClient {
    /// A client with these TLS settings. Settings that cannot be used (a missing CA file)
    /// make every request fail with the reason, so the targets show it as `lastError`.
    pub fn new(tls: &TlsConfig) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let (config, broken) = match rustls_config(tls) {
            Ok(c) => (c, None),
            Err(e) => (
                rustls_config(&TlsConfig::default()).unwrap_or_else(|_| {
                    rustls::ClientConfig::builder_with_provider(Arc::new(
                        rustls::crypto::ring::default_provider(),
                    ))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
                }),
                Some(e),
            ),
        };
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http();
        let name = tls
            .server_name
            .as_ref()
            .and_then(|n| ServerName::try_from(n.clone()).ok());
        let connector = match name {
            Some(name) => builder
                .with_server_name_resolver(FixedServerNameResolver::new(name))
                .enable_http1()
                .wrap_connector(http),
            None => builder.enable_http1().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build(connector);
        HttpClient {
            client,
            user_agent: format!("Lookout/{}", env!("CARGO_PKG_VERSION")),
            broken,
        }
    }
}

fn read_secret(s: &Secret) -> Result<String, String> {
    match s {
        Secret::Inline(v) => Ok(v.clone()),
        Secret::File(p) => {
            let mut f = std::fs::File::open(p)
                .map_err(|e| format!("unable to read secret file {}: {e}", p.display()))?;
            let mut v = String::new();
            f.by_ref()
                .take(64 << 10)
                .read_to_string(&mut v)
                .map_err(|e| format!("unable to read secret file {}: {e}", p.display()))?;
            Ok(v.trim().to_string())
        }
    }
}

/// The full error chain, as Go prints wrapped errors.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl HttpClient {
    /// GETs `url`; the caller bounds the time.
    pub async fn fetch(
        &self,
        url: &str,
        timeout: Duration,
        auth: Option<&Auth>,
        body_limit: u64,
        gzip: bool,
    ) -> Result<Fetched, String> {
        if let Some(e) = &self.broken {
            return Err(format!("Get {url:?}: {e}"));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "Get {url:?}: unsupported protocol scheme; use http or https"
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("invalid scrape URL {url:?}: {e}"))?;
        let mut req = http::Request::get(uri)
            .header(http::header::ACCEPT, ACCEPT)
            .header(http::header::USER_AGENT, &self.user_agent)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            );
        if gzip {
            req = req.header(http::header::ACCEPT_ENCODING, "gzip");
        } else {
            req = req.header(http::header::ACCEPT_ENCODING, "identity");
        }
        match auth {
            None => {}
            Some(Auth::Basic { username, password }) => {
                let pw = password
                    .as_ref()
                    .map(read_secret)
                    .transpose()?
                    .unwrap_or_default();
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{pw}"));
                req = req.header(http::header::AUTHORIZATION, format!("Basic {token}"));
            }
            Some(Auth::Authorization { kind, credentials }) => {
                let c = read_secret(credentials)?;
                req = req.header(http::header::AUTHORIZATION, format!("{kind} {c}"));
            }
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| format!("invalid scrape request for {url:?}: {e}"))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("Get {url:?}: {}", chain(&e)))?;
        let status = resp.status();
        if status != http::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string());
        }
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let gzipped = resp
            .headers()
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
        let mut body = resp.into_body();
        let mut raw = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("Get {url:?}: reading the body: {}", chain(&e)))?;
            if let Ok(data) = frame.into_data() {
                if raw.len() as u64 + data.len() as u64 > body_limit {
                    return Err(body_limit_error(body_limit));
                }
                raw.extend_from_slice(&data);
            }
        }
        if !gzipped {
            return Ok(Fetched {
                body: raw,
                content_type,
            });
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .take(body_limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("decompressing the gzip body: {e}"))?;
        if out.len() as u64 > body_limit {
            return Err(body_limit_error(body_limit));
        }
        Ok(Fetched {
            body: out,
            content_type,
        })
    }
}

fn body_limit_error(limit: u64) -> String {
    format!("body size limit exceeded (body_size_limit is {limit} bytes)")
}
