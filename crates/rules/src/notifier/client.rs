//! The POST that delivers a batch to one Alertmanager.
//!
//! The same stack as the scrape side (hyper's pooled client over rustls), with ingest's
//! TLS settings ([`rustls_config`]: system roots or `ca_file`, client certificates,
//! `server_name`, `insecure_skip_verify`) and credentials ([`auth_header`], secret files
//! read at each request as Prometheus does). Scrapes only GET, so the client type differs
//! in its body; the settings that shape it are shared. The whole exchange runs under the
//! entry's `timeout`, and at most [`MAX_ANSWER_BYTES`] of an answer are read: Prometheus
//! only looks at the status, we keep the start of an error answer for the log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use ingest::scrape::config::{Auth, TlsConfig};
use ingest::scrape::{auth_header, chain, https_connector, rustls_config};

/// Bytes of an answer read at most; the rest is left unread (and the connection closed).
pub const MAX_ANSWER_BYTES: usize = 64 << 10;

/// Bytes of an error answer quoted in the error.
const QUOTED_ANSWER_BYTES: usize = 256;

/// A client for one `alertmanagers` entry: connection pool, TLS and credentials.
#[derive(Clone)]
pub struct AmClient {
    /// The pool, or why the TLS settings cannot be used (a missing CA file): then every
    /// send reports that.
    client: Result<Client<HttpsConnector<HttpConnector>, Full<Bytes>>, Arc<str>>,
    auth: Option<Arc<Auth>>,
    timeout: Duration,
    user_agent: Arc<str>,
}

impl AmClient {
    pub fn new(tls: &TlsConfig, auth: Option<Auth>, timeout: Duration) -> AmClient {
        let client = rustls_config(tls).map_err(Arc::from).map(|config| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.enforce_http(false);
            http.set_connect_timeout(Some(timeout));
            let connector = https_connector(config, tls, http);
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(2)
                .build(connector)
        });
        AmClient {
            client,
            auth: auth.map(Arc::new),
            timeout,
            user_agent: format!("Lookout/{}", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    /// POSTs `body` (JSON) to `url`; Ok for any 2xx answer, as Prometheus.
    pub async fn post(&self, url: &str, body: Bytes) -> Result<(), String> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => return Err(format!("Post {url:?}: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.exchange(client, url, body)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "Post {url:?}: context deadline exceeded (timeout is {}s)",
                self.timeout.as_secs_f64()
            )),
        }
    }

    async fn exchange(
        &self,
        client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
        url: &str,
        body: Bytes,
    ) -> Result<(), String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("Post {url:?}: invalid URL: {e}"))?;
        let mut req = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, &*self.user_agent);
        if let Some(v) =
            auth_header(self.auth.as_deref()).map_err(|e| format!("Post {url:?}: {e}"))?
        {
            req = req.header(http::header::AUTHORIZATION, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("Post {url:?}: {e}"))?;
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("Post {url:?}: {}", chain(&e)))?;
        let status = resp.status();
        let mut answer = Vec::new();
        let mut incoming = resp.into_body();
        while answer.len() < MAX_ANSWER_BYTES {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let room = MAX_ANSWER_BYTES - answer.len();
                        answer.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                // A broken answer body does not undo the status the server sent.
                Some(Err(_)) | None => break,
            }
        }
        if status.is_success() {
            return Ok(());
        }
        let reason = status.canonical_reason().unwrap_or("");
        let mut quoted = String::from_utf8_lossy(&answer[..answer.len().min(QUOTED_ANSWER_BYTES)])
            .trim()
            .to_string();
        if !quoted.is_empty() {
            quoted = format!(": {quoted}");
        }
        Err(format!(
            "bad response status {} {reason}{quoted}",
            status.as_u16()
        ))
    }
}
