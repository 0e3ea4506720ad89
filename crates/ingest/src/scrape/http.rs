//! The scrape HTTP request: headers as Prometheus sends them, bounded body reading, gzip.
//!
//! One hyper client (connection pool) serves every loop. The whole exchange, body included,
//! runs under the target's timeout (the caller's), and the body is never held past the
//! job's `body_size_limit`, compressed or not. Plain HTTP only for now: `https` targets fail
//! with a clear `lastError`.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::config::{Auth, Secret};

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

/// The shared client.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Empty<Bytes>>,
    user_agent: String,
}

impl Default for HttpClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(30)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build(connector);
        HttpClient {
            client,
            user_agent: format!("Lookout/{}", env!("CARGO_PKG_VERSION")),
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
        if url.starts_with("https://") {
            return Err(format!(
                "Get {url:?}: https targets are not supported yet; scrape the target over http"
            ));
        }
        if !url.starts_with("http://") {
            return Err(format!(
                "Get {url:?}: unsupported protocol scheme; use http"
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
