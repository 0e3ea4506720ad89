//! Scraping through an HTTP proxy: `proxy_url`, `no_proxy`, `proxy_from_environment` and
//! `proxy_connect_header`, as prometheus/common builds them on Go's `http.Transport`.
//!
//! [`ProxySelector`] decides per request URL, with Go's rules: `proxy_url` alone proxies
//! every request; with `no_proxy`, or from the environment (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `NO_PROXY`, upper or lower case), `golang.org/x/net/http/httpproxy` applies, which never
//! proxies `localhost` or loopback addresses and skips hosts `NO_PROXY` names (`*`, IPs,
//! CIDRs, `domain` for it and its subdomains, `.domain`/`*.domain` for subdomains only,
//! each optionally with `:port`). [`ProxyConnector`] is the hyper connector below the TLS
//! layer: `http` targets go to the proxy as absolute-form requests (with
//! `Proxy-Authorization` from the proxy URL's user info), `https` targets through a
//! `CONNECT` tunnel (with that and `proxy_connect_header`), TLS then running end to end.
//! Only `http://` proxies are supported; another scheme fails every scrape saying so.
//!
//! Owned rather than taken from hyper-util's proxy matcher because Prometheus's choices are
//! Go's, and the loopback and `NO_PROXY` rules differ between implementations.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use http::{HeaderMap, HeaderValue, Uri};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

use super::config::ProxyConfig;

/// Largest `CONNECT` answer head read.
const MAX_CONNECT_HEAD: usize = 16 << 10;

/// One `NO_PROXY` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxy {
    All,
    Ip(IpAddr, String),
    Cidr(IpAddr, u8),
    /// `.domain` (leading dot always), port, and whether `domain` itself matches.
    Domain(String, String, bool),
}

/// Which proxy, if any, a request goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySelector {
    http: Option<url::Url>,
    https: Option<url::Url>,
    /// `http.ProxyURL`: everything, loopback included.
    always: bool,
    no_proxy: Vec<NoProxy>,
    /// Extra `CONNECT` headers.
    connect_headers: Vec<(String, String)>,
}

/// Go's `parseProxy`: a value without a scheme is an `http://` proxy.
fn parse_proxy(s: &str) -> Option<url::Url> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match url::Url::parse(s) {
        Ok(u) if u.has_host() => Some(u),
        _ => url::Url::parse(&format!("http://{s}")).ok(),
    }
}

fn parse_no_proxy(list: &str) -> Vec<NoProxy> {
    let mut out = Vec::new();
    for p in list.split(',') {
        let p = p.trim().to_ascii_lowercase();
        if p.is_empty() {
            continue;
        }
        if p == "*" {
            return vec![NoProxy::All];
        }
        if let Some((ip, bits)) = p.split_once('/') {
            if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if bits <= max {
                    out.push(NoProxy::Cidr(ip, bits));
                }
            }
            continue;
        }
        let (host, port) = split_host_port(&p).unwrap_or((p.clone(), String::new()));
        if host.is_empty() {
            continue;
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(NoProxy::Ip(ip, port));
            continue;
        }
        let host = host.strip_prefix('*').unwrap_or(&host).to_string();
        let (host, match_host) = match host.strip_prefix('.') {
            Some(_) => (host, false),
            None => (format!(".{host}"), true),
        };
        out.push(NoProxy::Domain(host, port, match_host));
    }
    out
}

/// Go's `net.SplitHostPort` for `host:port` and `[v6]:port`; None without a port.
fn split_host_port(s: &str) -> Option<(String, String)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host.to_string(), port.to_string()))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (a, b, len) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(b)) << 96,
            bits,
        ),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), bits),
        _ => return false,
    };
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(len));
    a & mask == b & mask
}

impl ProxySelector {
    /// The selector of a job's (or discovery entry's) proxy settings; the environment is
    /// read now, as Go reads it when the client is made.
    pub fn new(cfg: &ProxyConfig) -> ProxySelector {
        ProxySelector::with_env(cfg, |name| std::env::var(name).ok())
    }

    /// As [`ProxySelector::new`], the environment read through `var`.
    fn with_env(cfg: &ProxyConfig, var: impl Fn(&str) -> Option<String>) -> ProxySelector {
        let env = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.is_empty()))
                .unwrap_or_default()
        };
        let mut sel = ProxySelector {
            connect_headers: cfg
                .connect_headers
                .iter()
                .flat_map(|(n, vs)| vs.iter().map(move |v| (n.clone(), v.clone())))
                .collect(),
            ..ProxySelector::default()
        };
        if cfg.from_environment {
            sel.http = parse_proxy(&env(["HTTP_PROXY", "http_proxy"]));
            sel.https = parse_proxy(&env(["HTTPS_PROXY", "https_proxy"]));
            sel.no_proxy = parse_no_proxy(&env(["NO_PROXY", "no_proxy"]));
        } else if let Some(u) = &cfg.url {
            sel.http = parse_proxy(u);
            sel.https = sel.http.clone();
            if cfg.no_proxy.is_empty() {
                sel.always = true;
            } else {
                sel.no_proxy = parse_no_proxy(&cfg.no_proxy);
            }
        }
        sel
    }

    /// Whether any request may be proxied.
    pub fn is_active(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// The proxy for a request to `uri`, if any.
    pub fn proxy_for(&self, uri: &Uri) -> Option<&url::Url> {
        let https = uri.scheme_str() == Some("https");
        let proxy = if https { &self.https } else { &self.http };
        let proxy = proxy.as_ref()?;
        if self.always {
            return Some(proxy);
        }
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 })
            .to_string();
        if host.is_empty() || host == "localhost" {
            return None;
        }
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return None;
        }
        for m in &self.no_proxy {
            let skip = match m {
                NoProxy::All => true,
                NoProxy::Ip(want, p) => ip == Some(*want) && (p.is_empty() || *p == port),
                NoProxy::Cidr(net, bits) => ip.is_some_and(|ip| in_cidr(ip, *net, *bits)),
                NoProxy::Domain(d, p, match_host) => {
                    (host.ends_with(d.as_str()) || (*match_host && host == d[1..]))
                        && (p.is_empty() || *p == port)
                }
            };
            if skip {
                return None;
            }
        }
        Some(proxy)
    }
}

/// `Proxy-Authorization` from a proxy URL's user info, as Go sets it.
pub fn proxy_authorization(proxy: &url::Url) -> Option<HeaderValue> {
    if proxy.username().is_empty() && proxy.password().is_none() {
        return None;
    }
    let creds = format!(
        "{}:{}",
        percent_decode(proxy.username()),
        percent_decode(proxy.password().unwrap_or(""))
    );
    HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    ))
    .ok()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP connection, direct or to a proxy; a proxied plain-HTTP connection tells hyper to
/// send absolute-form request targets.
pub struct ProxyStream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for ProxyStream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for ProxyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for ProxyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connector under the TLS layer: direct, or through the selected proxy.
#[derive(Clone)]
pub struct ProxyConnector {
    pub http: HttpConnector,
    pub selector: std::sync::Arc<ProxySelector>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn err(msg: String) -> BoxError {
    msg.into()
}

impl Service<Uri> for ProxyConnector {
    type Response = ProxyStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ProxyStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut http = self.http.clone();
        let selector = self.selector.clone();
        Box::pin(async move {
            let Some(proxy) = selector.proxy_for(&dst).cloned() else {
                let io = http.call(dst).await?;
                return Ok(ProxyStream { io, proxied: false });
            };
            if proxy.scheme() != "http" {
                return Err(err(format!(
                    "proxyconnect: proxy scheme {:?} is not supported (use an http:// proxy)",
                    proxy.scheme()
                )));
            }
            let proxy_uri: Uri = format!(
                "http://{}:{}",
                proxy.host_str().unwrap_or(""),
                proxy.port_or_known_default().unwrap_or(80)
            )
            .parse()
            .map_err(|e| err(format!("proxyconnect: bad proxy address: {e}")))?;
            let io = http
                .call(proxy_uri)
                .await
                .map_err(|e| err(format!("proxyconnect tcp: {e}")))?;
            if dst.scheme_str() != Some("https") {
                return Ok(ProxyStream { io, proxied: true });
            }
            let authority = match (dst.host(), dst.port_u16()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => format!("{h}:443"),
                _ => return Err(err("proxyconnect: the target has no host".into())),
            };
            let mut tcp = io.into_inner();
            let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
            if let Some(auth) = proxy_authorization(&proxy) {
                if let Ok(a) = auth.to_str() {
                    head.push_str(&format!("Proxy-Authorization: {a}\r\n"));
                }
            }
            let mut extra = HeaderMap::new();
            for (n, v) in &selector.connect_headers {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    extra.append(n, v);
                }
            }
            for (n, v) in &extra {
                head.push_str(&format!(
                    "{}: {}\r\n",
                    n.as_str(),
                    String::from_utf8_lossy(v.as_bytes())
                ));
            }
            head.push_str("\r\n");
            tcp.write_all(head.as_bytes())
                .await
                .map_err(|e| err(format!("proxyconnect: {e}")))?;
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            // Byte by byte: what follows the head belongs to the TLS handshake.
            while !answer.ends_with(b"\r\n\r\n") {
                if answer.len() > MAX_CONNECT_HEAD {
                    return Err(err("proxyconnect: the proxy's answer is too long".into()));
                }
                let n = tcp
                    .read(&mut byte)
                    .await
                    .map_err(|e| err(format!("proxyconnect: {e}")))?;
                if n == 0 {
                    return Err(err("proxyconnect: unexpected EOF".into()));
                }
                answer.push(byte[0]);
            }
            let status_line = String::from_utf8_lossy(&answer);
            let status_line = status_line.lines().next().unwrap_or("");
            let mut parts = status_line.splitn(3, ' ');
            let _version = parts.next();
            let code = parts.next().unwrap_or("");
            if code != "200" {
                // Go reports the status text after the code.
                let text = parts.next().unwrap_or(code).trim();
                return Err(err(text.to_string()));
            }
            Ok(ProxyStream {
                io: TokioIo::new(tcp),
                proxied: false,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(url: &str, no_proxy: &str) -> ProxySelector {
        ProxySelector::new(&ProxyConfig {
            url: Some(url.into()),
            no_proxy: no_proxy.into(),
            ..ProxyConfig::default()
        })
    }

    fn proxied(s: &ProxySelector, target: &str) -> bool {
        s.proxy_for(&target.parse().unwrap()).is_some()
    }

    #[test]
    fn proxy_url_alone_proxies_everything() {
        let s = sel("http://p:3128", "");
        assert!(proxied(&s, "http://127.0.0.1:9/metrics"));
        assert!(proxied(&s, "http://localhost:9/metrics"));
        assert!(proxied(&s, "https://example.com/metrics"));
        assert!(!sel("", "").is_active());
    }

    #[test]
    fn no_proxy_follows_go() {
        let s = sel(
            "p:3128",
            "example.com, .sub.org,*.star.net, 10.0.0.0/8, 192.168.1.1, host.io:8080, [::2]:9",
        );
        assert_eq!(s.http.as_ref().unwrap().as_str(), "http://p:3128/");
        // Loopback and localhost are never proxied once no_proxy is set.
        assert!(!proxied(&s, "http://127.0.0.1:9/"));
        assert!(!proxied(&s, "http://localhost:9/"));
        assert!(!proxied(&s, "http://[::1]:9/"));
        // domain: itself and subdomains.
        assert!(!proxied(&s, "http://example.com/"));
        assert!(!proxied(&s, "http://a.example.com/"));
        assert!(proxied(&s, "http://badexample.com/"));
        // .domain and *.domain: subdomains only.
        assert!(proxied(&s, "http://sub.org/"));
        assert!(!proxied(&s, "http://x.sub.org/"));
        assert!(proxied(&s, "http://star.net/"));
        assert!(!proxied(&s, "http://x.star.net/"));
        // IPs and CIDRs.
        assert!(!proxied(&s, "http://10.1.2.3/"));
        assert!(proxied(&s, "http://11.1.2.3/"));
        assert!(!proxied(&s, "http://192.168.1.1:9100/"));
        // Ports.
        assert!(!proxied(&s, "http://host.io:8080/"));
        assert!(proxied(&s, "http://host.io:8081/"));
        assert!(!proxied(&s, "http://[::2]:9/"));
        assert!(proxied(&s, "http://[::2]:10/"));
        // Default ports count.
        let s = sel("http://p:1", "web.io:80");
        assert!(!proxied(&s, "http://web.io/"));
        assert!(proxied(&s, "https://web.io/"));
        assert!(!proxied(&sel("http://p:1", "*"), "http://any.where/"));
    }

    #[test]
    fn proxy_from_environment() {
        let cfg = ProxyConfig {
            from_environment: true,
            ..ProxyConfig::default()
        };
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = ProxySelector::with_env(
            &cfg,
            env(&[
                ("http_proxy", "plain:3128"),
                ("HTTPS_PROXY", "http://secure:3129"),
                ("no_proxy", "skip.me"),
            ]),
        );
        assert_eq!(
            s.proxy_for(&"http://a.b/".parse().unwrap())
                .map(|u| u.as_str()),
            Some("http://plain:3128/")
        );
        assert_eq!(
            s.proxy_for(&"https://a.b/".parse().unwrap())
                .map(|u| u.as_str()),
            Some("http://secure:3129/")
        );
        assert!(!proxied(&s, "http://skip.me/"));
        assert!(!proxied(&s, "http://127.0.0.1:9/"));
        // Upper case wins over lower case, as in Go.
        let s = ProxySelector::with_env(
            &cfg,
            env(&[("HTTP_PROXY", "upper:1"), ("http_proxy", "lower:1")]),
        );
        assert_eq!(s.http.unwrap().host_str(), Some("upper"));
        assert!(!ProxySelector::with_env(&cfg, env(&[])).is_active());
    }

    #[test]
    fn proxy_credentials() {
        let u = url::Url::parse("http://us%40er:p%3Ass@p:1").unwrap();
        let v = proxy_authorization(&u).unwrap();
        let want = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(v.to_str().unwrap(), format!("Basic {want}"));
        assert!(proxy_authorization(&url::Url::parse("http://p:1").unwrap()).is_none());
    }
}
