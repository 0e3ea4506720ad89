//! The scrape HTTP request: headers as Prometheus sends them, bounded body reading, gzip,
//! redirects as Go's `http.Client` follows them, `http_headers`; and the HTTP discovery
//! request on the same plumbing.
//!
//! One hyper client (connection pool) serves every job without `tls_config`; a job with one
//! gets its own. The whole exchange, body included, runs under the target's timeout (the
//! caller's), and the body is never held past the job's `body_size_limit`, compressed or
//! not. A scrape's body is handed out piece by piece as it arrives ([`Fetched::read_into`],
//! gzip inflated as it comes), so the caller can parse it on the way and stop reading when
//! it has seen enough. `https` goes through rustls: the system's trust store unless
//! `tls_config` names a CA, client certificates, `server_name` and `insecure_skip_verify`
//! as in Prometheus.
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

use super::config::{Auth, HttpHeader, ProxyConfig, Secret, TlsConfig};
use super::proxy::{proxy_authorization, ProxyConnector, ProxySelector};

/// A scrape response whose body is still to be read.
pub struct Fetched {
    /// The `Content-Type` header (empty if absent).
    pub content_type: String,
    body: BodyReader,
}

impl Fetched {
    /// Appends the next piece of the uncompressed body to `buf`; false once the body is
    /// complete. Past `body_size_limit` (compressed or not) it fails with the limit's error.
    pub async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, String> {
        let limit = self.body.limit;
        self.body.read_into(buf).await.map_err(|e| match e {
            BodyError::TooLarge => body_limit_error(limit),
            BodyError::Failed(e) => e,
        })
    }
}

/// Why a body could not be read.
enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// The connection or the compressed stream failed: the sentence to report.
    Failed(String),
}

/// Reads a response body piece by piece, at most `limit` bytes as sent and (gzip) as
/// inflated.
struct BodyReader {
    body: hyper::body::Incoming,
    url: String,
    limit: u64,
    /// Bytes received.
    raw: u64,
    /// Inflated bytes handed out.
    inflated: u64,
    /// The gzip decoder, writing into its own buffer, emptied into the caller's.
    gzip: Option<flate2::write::GzDecoder<Vec<u8>>>,
    done: bool,
}

/// Compressed bytes given to the decoder at a time: one call inflates at most its 32 KiB
/// buffer, so the limit is checked before a gzip bomb can grow far past it.
const INFLATE_STEP: usize = 4 << 10;

impl BodyReader {
    fn new(
        resp: http::Response<hyper::body::Incoming>,
        url: &str,
        limit: u64,
        gzipped: bool,
    ) -> BodyReader {
        BodyReader {
            body: resp.into_body(),
            url: url.to_string(),
            limit,
            raw: 0,
            inflated: 0,
            gzip: gzipped.then(|| flate2::write::GzDecoder::new(Vec::new())),
            done: false,
        }
    }

    /// Appends the next piece of the body to `buf`; false once it is complete.
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, BodyError> {
        while !self.done {
            let Some(frame) = self.body.frame().await else {
                self.done = true;
                if let Some(gz) = &mut self.gzip {
                    gz.try_finish().map_err(gzip_error)?;
                    Self::take_inflated(gz, buf, &mut self.inflated, self.limit)?;
                }
                break;
            };
            let frame = frame.map_err(|e| {
                BodyError::Failed(format!(
                    "Get {:?}: reading the body: {}",
                    self.url,
                    chain(&e)
                ))
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.raw += data.len() as u64;
            if self.raw > self.limit {
                return Err(BodyError::TooLarge);
            }
            let Some(gz) = &mut self.gzip else {
                buf.extend_from_slice(&data);
                return Ok(true);
            };
            let mut rest = &data[..];
            while !rest.is_empty() {
                let step = rest.len().min(INFLATE_STEP);
                let n = std::io::Write::write(gz, &rest[..step]).map_err(gzip_error)?;
                if n == 0 {
                    // Bytes after the first gzip member are ignored (exporters send one; Go's
                    // reader would go on to a second), as Lookout always has.
                    break;
                }
                rest = &rest[n..];
                Self::take_inflated(gz, buf, &mut self.inflated, self.limit)?;
            }
            std::io::Write::flush(gz).map_err(gzip_error)?;
            Self::take_inflated(gz, buf, &mut self.inflated, self.limit)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Moves what the decoder has inflated into `buf`, counting it against `limit`.
    fn take_inflated(
        gz: &mut flate2::write::GzDecoder<Vec<u8>>,
        buf: &mut Vec<u8>,
        inflated: &mut u64,
        limit: u64,
    ) -> Result<(), BodyError> {
        let out = gz.get_mut();
        *inflated += out.len() as u64;
        if *inflated > limit {
            return Err(BodyError::TooLarge);
        }
        buf.append(out);
        Ok(())
    }
}

fn gzip_error(e: std::io::Error) -> BodyError {
    BodyError::Failed(format!("decompressing the gzip body: {e}"))
}

/// A scrape client: connection pool, TLS settings.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<ProxyConnector>, Empty<Bytes>>,
    /// Which requests go through a proxy (to add `Proxy-Authorization` to plain-HTTP ones).
    proxy: Arc<ProxySelector>,
    user_agent: String,
    /// Why the TLS settings could not be used (a missing CA file): every scrape reports it.
    broken: Option<String>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new(&TlsConfig::default(), &ProxyConfig::default())
    }
}

/// The certificate checks rustls's own verifier cannot do as configured: accepting any
/// certificate, or trusting the system's roots loaded late. Handshake signatures are checked
/// in both cases, with the provider's algorithms, as rustls's own verifier does.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    trust: Trust,
}

#[derive(Debug)]
enum Trust {
    /// `insecure_skip_verify`: any certificate.
    Any,
    /// The system's trusted roots, loaded when the first certificate is verified: loading
    /// and parsing the store costs about half a megabyte and a few milliseconds, and most
    /// installations never scrape or notify over HTTPS.
    SystemRoots {
        /// Where the roots come from: the system store, or a test's.
        load: fn() -> Vec<CertificateDer<'static>>,
        verifier: std::sync::OnceLock<Option<Arc<rustls::client::WebPkiServerVerifier>>>,
    },
}

impl Verifier {
    fn system_roots(provider: Arc<CryptoProvider>) -> Verifier {
        Verifier {
            provider,
            trust: Trust::SystemRoots {
                load: || rustls_native_certs::load_native_certs().certs,
                verifier: std::sync::OnceLock::new(),
            },
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (load, verifier) = match &self.trust {
            Trust::Any => return Ok(ServerCertVerified::assertion()),
            Trust::SystemRoots { load, verifier } => (load, verifier),
        };
        let verifier = verifier.get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(load());
            // Without any root (a system without a CA bundle) nothing can be trusted.
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                self.provider.clone(),
            )
            .build()
            .ok()
        });
        match verifier {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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

/// An HTTP/1 connector speaking TLS with `config` for `https` URLs (plain HTTP otherwise) over
/// `inner`, naming `tls.server_name` to the server instead of the URL's host when it is set.
/// Scrapes and Alertmanager notifications connect through it.
pub fn https_connector<C>(
    config: rustls::ClientConfig,
    tls: &TlsConfig,
    inner: C,
) -> hyper_rustls::HttpsConnector<C> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let name = tls
        .server_name
        .as_ref()
        .and_then(|n| ServerName::try_from(n.clone()).ok());
    match name {
        Some(name) => builder
            .with_server_name_resolver(FixedServerNameResolver::new(name))
            .enable_http1()
            .wrap_connector(inner),
        None => builder.enable_http1().wrap_connector(inner),
    }
}

pub fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                provider,
                trust: Trust::Any,
            }))
    } else if let Some(ca) = &tls.ca {
        let mut roots = rustls::RootCertStore::empty();
        let pem = read_pem(ca, "CA")?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("unable to parse the CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("unable to use the CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the CA file holds no PEM certificate".into());
        }
        builder.with_root_certificates(roots)
    } else {
        // The system's roots, with rustls's own verification, loaded on first use.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier::system_roots(provider)))
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
    /// A client with these TLS and proxy settings. Settings that cannot be used (a missing
    /// CA file) make every request fail with the reason, so the targets show it as
    /// `lastError`.
    pub fn new(tls: &TlsConfig, proxy: &ProxyConfig) -> HttpClient {
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
        let selector = Arc::new(ProxySelector::new(proxy));
        let http = ProxyConnector {
            http,
            selector: selector.clone(),
        };
        let connector = https_connector(config, tls, http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build(connector);
        HttpClient {
            client,
            proxy: selector,
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
pub fn chain(e: &dyn std::error::Error) -> String {
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

/// How one request authenticates and what it adds: a job's or a discovery entry's HTTP
/// client settings.
#[derive(Clone, Copy)]
pub struct RequestSettings<'a> {
    pub auth: Option<&'a Auth>,
    /// Follow 3xx redirects (Prometheus's default) or report them as the scrape's status.
    pub follow_redirects: bool,
    /// `http_headers`, added to every request of the exchange.
    pub headers: &'a [HttpHeader],
}

/// Go's `http.Client` stops at this many requests.
const MAX_REQUESTS: usize = 10;

/// Go's `isDomainOrSubdomain`: whether credentials meant for `initial` may go to `host`.
fn domain_or_subdomain(host: &str, initial: &str) -> bool {
    host.eq_ignore_ascii_case(initial)
        || (host.len() > initial.len()
            && host.is_char_boundary(host.len() - initial.len() - 1)
            && host[host.len() - initial.len() - 1..].starts_with('.')
            && host[host.len() - initial.len()..].eq_ignore_ascii_case(initial))
}

/// A URL as Go prints it in a `Referer`: without user info and fragment.
fn referer(u: &url::Url) -> String {
    let mut r = u.clone();
    let _ = r.set_username("");
    let _ = r.set_password(None);
    r.set_fragment(None);
    r.to_string()
}

/// `resp.Status` as Go has it: the code and the reason phrase the server sent.
fn status_text(resp: &http::Response<hyper::body::Incoming>) -> String {
    let status = resp.status();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    format!("{} {reason}", status.as_u16())
        .trim_end()
        .to_string()
}

impl HttpClient {
    /// GETs `url` with `base` headers, following redirects as Go's `http.Client` does when
    /// `settings.follow_redirects` (301, 302, 303, 307 and 308 with a `Location`, at most 10
    /// requests, a `Referer` on each hop). Credentials go only to the first host and its
    /// subdomains (Go's rule for headers set on the request; Prometheus adds them in its
    /// transport, so it sends them to any host it is redirected to); `http_headers` go to
    /// every hop, as in Prometheus. The caller bounds the time.
    async fn get(
        &self,
        url: &str,
        base: &http::HeaderMap,
        settings: RequestSettings<'_>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        if let Some(e) = &self.broken {
            return Err(format!("Get {url:?}: {e}"));
        }
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!(
                "Get {url:?}: unsupported protocol scheme; use http or https"
            ));
        }
        let mut current =
            url::Url::parse(url).map_err(|e| format!("invalid scrape URL {url:?}: {e}"))?;
        let initial_host = current.host_str().unwrap_or("").to_string();
        let mut referer_of: Option<String> = None;
        let mut sent = 0;
        loop {
            // The first hop is named as given (the target's URL), later ones as resolved.
            let shown = if sent == 0 {
                url.to_string()
            } else {
                current.as_str().to_string()
            };
            let uri: http::Uri = shown
                .parse()
                .map_err(|e| format!("invalid scrape URL {shown:?}: {e}"))?;
            let mut req = http::Request::get(uri.clone());
            let Some(headers) = req.headers_mut() else {
                return Err(format!("invalid scrape request for {shown:?}"));
            };
            headers.extend(base.clone());
            if let Some(r) = &referer_of {
                if let Ok(v) = http::HeaderValue::from_str(r) {
                    headers.insert(http::header::REFERER, v);
                }
            }
            if current.scheme() == "http" {
                if let Some(v) = self.proxy.proxy_for(&uri).and_then(proxy_authorization) {
                    headers.insert(http::header::PROXY_AUTHORIZATION, v);
                }
            }
            let host = current.host_str().unwrap_or("");
            if domain_or_subdomain(host, &initial_host) {
                if let Some(v) = auth_header(settings.auth)? {
                    headers.insert(http::header::AUTHORIZATION, v);
                }
            }
            for h in settings.headers {
                let name = http::HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                    format!(
                        "Get {shown:?}: net/http: invalid header field name {:?}",
                        h.name
                    )
                })?;
                for v in &h.values {
                    let value = header_value(v).map_err(|e| format!("Get {shown:?}: {e}"))?;
                    let value = http::HeaderValue::from_str(&value).map_err(|_| {
                        format!(
                            "Get {shown:?}: net/http: invalid header field value for {:?}",
                            h.name
                        )
                    })?;
                    headers.append(name.clone(), value);
                }
            }
            let req = req
                .body(Empty::new())
                .map_err(|e| format!("invalid scrape request for {shown:?}: {e}"))?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("Get {shown:?}: {}", chain(&e)))?;
            sent += 1;
            let redirect = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            if !settings.follow_redirects || !redirect {
                return Ok(resp);
            }
            let Some(loc) = resp
                .headers()
                .get(http::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .filter(|l| !l.is_empty())
            else {
                // Go hands back a 3xx without a Location as it is.
                return Ok(resp);
            };
            let next = current.join(&loc).map_err(|e| {
                format!("Get {shown:?}: failed to parse Location header {loc:?}: {e}")
            })?;
            if sent >= MAX_REQUESTS {
                return Err(format!("Get {loc:?}: stopped after 10 redirects"));
            }
            if next.scheme() != "http" && next.scheme() != "https" {
                return Err(format!(
                    "Get {:?}: unsupported protocol scheme {:?}",
                    next.as_str(),
                    next.scheme()
                ));
            }
            // Go sends no Referer from https to http.
            referer_of = (!(current.scheme() == "https" && next.scheme() == "http"))
                .then(|| referer(&current));
            current = next;
        }
    }

    /// A scrape: GETs `url` with Prometheus's scrape headers (`accept` from the job's
    /// `scrape_protocols`, [`super::config::accept_header`]) and fails on any status but 200
    /// as Prometheus does; the body is read from the answer, at most `body_limit` bytes
    /// (before and after gzip).
    pub async fn fetch(
        &self,
        url: &str,
        timeout: Duration,
        settings: RequestSettings<'_>,
        accept: &str,
        body_limit: u64,
        gzip: bool,
    ) -> Result<Fetched, String> {
        let mut base = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(accept) {
            base.insert(http::header::ACCEPT, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&self.user_agent) {
            base.insert(http::header::USER_AGENT, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())) {
            base.insert("x-prometheus-scrape-timeout-seconds", v);
        }
        base.insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static(if gzip { "gzip" } else { "identity" }),
        );
        let resp = self.get(url, &base, settings).await?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {}",
                status_text(&resp)
            ));
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
        Ok(Fetched {
            content_type,
            body: BodyReader::new(resp, url, body_limit, gzipped),
        })
    }

    /// An `http_sd_configs` refresh: GETs `url` as Prometheus's HTTP discovery does
    /// (`Accept: application/json`, `X-Prometheus-Refresh-Interval-Seconds`) and returns
    /// the body of a 200 answer whose Content-Type is JSON, with Prometheus's error texts.
    pub async fn fetch_sd(
        &self,
        url: &str,
        refresh_interval: Duration,
        settings: RequestSettings<'_>,
        body_limit: u64,
    ) -> Result<Vec<u8>, String> {
        let mut base = http::HeaderMap::new();
        base.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = http::HeaderValue::from_str(&self.user_agent) {
            base.insert(http::header::USER_AGENT, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&format!("{}", refresh_interval.as_secs_f64())) {
            base.insert("x-prometheus-refresh-interval-seconds", v);
        }
        let resp = self.get(url, &base, settings).await?;
        if resp.status() != http::StatusCode::OK {
            return Err(format!(
                "server returned HTTP status {}",
                status_text(&resp)
            ));
        }
        let ct = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json_content_type(ct.trim()) {
            return Err(format!("unsupported content type {ct:?}"));
        }
        let mut reader = BodyReader::new(resp, url, body_limit, false);
        let mut body = Vec::new();
        loop {
            match reader.read_into(&mut body).await {
                Ok(true) => {}
                Ok(false) => return Ok(body),
                Err(BodyError::TooLarge) => {
                    return Err(format!(
                        "the discovery answer is larger than {body_limit} bytes"
                    ))
                }
                Err(BodyError::Failed(e)) => return Err(e),
            }
        }
    }
}

/// Prometheus's `^(?i:application\/json(;\s*charset=("utf-8"|utf-8))?)$`.
fn is_json_content_type(ct: &str) -> bool {
    let lower = ct.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("application/json") else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix(';') else {
        return false;
    };
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    rest == "charset=utf-8" || rest == "charset=\"utf-8\""
}

/// The `Authorization` header of `auth`, secrets read now (files change under us).
pub fn auth_header(auth: Option<&Auth>) -> Result<Option<http::HeaderValue>, String> {
    let value = match auth {
        None => return Ok(None),
        Some(Auth::Basic { username, password }) => {
            let pw = password
                .as_ref()
                .map(read_secret)
                .transpose()?
                .unwrap_or_default();
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{pw}"));
            format!("Basic {token}")
        }
        Some(Auth::Authorization { kind, credentials }) => {
            format!("{kind} {}", read_secret(credentials)?)
        }
    };
    http::HeaderValue::from_str(&value)
        .map(Some)
        .map_err(|_| "the credentials hold characters a header cannot carry".to_string())
}

/// One `http_headers` value: inline, or a file read now and trimmed, as prometheus/common
/// reads it (and with its error text).
fn header_value(v: &Secret) -> Result<String, String> {
    match v {
        Secret::Inline(s) => Ok(s.clone()),
        Secret::File(p) => {
            let mut s = String::new();
            std::fs::File::open(p)
                .and_then(|f| f.take(64 << 10).read_to_string(&mut s))
                .map_err(|e| format!("unable to read headers file {}: {e}", p.display()))?;
            Ok(s.trim().to_string())
        }
    }
}

fn body_limit_error(limit: u64) -> String {
    format!("body size limit exceeded (body_size_limit is {limit} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_roots_load_on_first_verification_only() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static LOADS: AtomicUsize = AtomicUsize::new(0);
        let v = Verifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            trust: Trust::SystemRoots {
                load: || {
                    LOADS.fetch_add(1, Ordering::SeqCst);
                    Vec::new()
                },
                verifier: std::sync::OnceLock::new(),
            },
        };
        assert!(!v.supported_verify_schemes().is_empty());
        assert_eq!(
            LOADS.load(Ordering::SeqCst),
            0,
            "loaded before any handshake"
        );
        let name = ServerName::try_from("example.com").unwrap();
        let cert = CertificateDer::from(vec![0x30, 0x00]);
        for _ in 0..2 {
            // No roots at all: nothing is trusted, as with an empty store in rustls.
            let e = v
                .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .unwrap_err();
            assert_eq!(
                e,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            );
        }
        assert_eq!(LOADS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn credentials_follow_gos_domain_rule() {
        assert!(domain_or_subdomain("example.com", "example.com"));
        assert!(domain_or_subdomain("api.Example.com", "example.com"));
        assert!(!domain_or_subdomain("badexample.com", "example.com"));
        assert!(!domain_or_subdomain("localhost", "127.0.0.1"));
        assert!(!domain_or_subdomain("example.com", "api.example.com"));
    }

    #[test]
    fn json_content_types_like_prometheus() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"utf-8\"",
            "application/json;  charset=UTF-8",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json; charset=latin1",
            "application/jsonx",
            "application/json;",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }
}
