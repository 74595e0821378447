//! Which web pages may talk to this server. A page on another site can make the
//! browser send requests to loopback; two checks keep it out without a token:
//! the `Host` a request is addressed to must be one of this server's names (a rebound
//! DNS name is not), and anything that changes state or opens a WebSocket must come
//! from this server's own origin or a configured one. Requests without `Origin` do
//! not come from a web page (CLI, curl, SDKs) and pass.
use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The host names and origins this server accepts.
#[derive(Debug, Clone)]
pub struct Access {
    /// Lower-case host names without port; `None` accepts any.
    hosts: Option<Vec<String>>,
    /// Lower-case origins (`scheme://host[:port]`) besides the server's own.
    origins: Vec<String>,
}

impl Default for Access {
    fn default() -> Self {
        Self::new("127.0.0.1:0".parse().expect("literal address"), &[], &[])
    }
}

impl Access {
    /// Loopback names and the bound address, plus `allowed_hosts` (`"*"` for any). A
    /// server bound to every address (`0.0.0.0`) cannot know its names, so without
    /// `allowed_hosts` it accepts any: it needs a token there, and the token guards it.
    pub fn new(bind: SocketAddr, allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        match bind.ip() {
            ip if ip.is_unspecified() && allowed_hosts.is_empty() => {
                return Self {
                    hosts: None,
                    origins: normalise_origins(allowed_origins),
                }
            }
            IpAddr::V4(ip) if !ip.is_unspecified() => hosts.push(ip.to_string()),
            IpAddr::V6(ip) if !ip.is_unspecified() => hosts.push(format!("[{ip}]")),
            _ => {}
        }
        let mut any = false;
        for h in allowed_hosts {
            let h = h.trim().to_ascii_lowercase();
            if h == "*" {
                any = true;
            } else if let Some(name) = host_name(&h) {
                hosts.push(name.to_string());
            }
        }
        Self {
            hosts: (!any).then_some(hosts),
            origins: normalise_origins(allowed_origins),
        }
    }

    /// The configured extra origins, for the CORS policy.
    pub fn extra_origins(&self) -> &[String] {
        &self.origins
    }

    fn host_allowed(&self, host: &str) -> bool {
        let Some(hosts) = &self.hosts else {
            return true;
        };
        match host_name(host) {
            Some(name) => hosts.iter().any(|h| h.eq_ignore_ascii_case(name)),
            None => false,
        }
    }

    /// Same origin means the page was served by this server under the name the request
    /// is addressed to (already checked against the allowed hosts).
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            for scheme in ["http://", "https://"] {
                if origin.strip_prefix(scheme) == Some(host.as_str()) {
                    return true;
                }
            }
        }
        self.origins.contains(&origin)
    }
}

fn normalise_origins(list: &[String]) -> Vec<String> {
    list.iter()
        .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|o| !o.is_empty())
        .collect()
}

/// The name part of a `Host` value: `[::1]:7777` → `[::1]`, `localhost:7777` →
/// `localhost`. `None` when the port is not a number or the name is empty.
fn host_name(host: &str) -> Option<&str> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        (&host[..=end], rest.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty()
        || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(name)
}

fn changes_state(method: &Method, headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    upgrade || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match verdict(&state.config.access, &req) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(method = %req.method(), path = %req.uri().path(), reason = %e, "refused");
            e.into_response()
        }
    }
}

fn verdict(access: &Access, req: &Request) -> Result<(), ApiError> {
    let headers = req.headers();
    let host = match headers.get(header::HOST) {
        Some(v) => Some(v.to_str().map_err(|_| forbidden_host("(not text)"))?),
        None => req.uri().authority().map(|a| a.as_str()),
    };
    if let Some(host) = host {
        if !access.host_allowed(host) {
            return Err(forbidden_host(host));
        }
    }
    if !changes_state(req.method(), headers) {
        return Ok(());
    }
    match headers.get(header::ORIGIN) {
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("(not text)");
            if access.origin_allowed(origin, host) {
                Ok(())
            } else {
                Err(ApiError::Forbidden {
                    code: "forbidden_origin",
                    message: format!(
                        "requests from the web page at '{}' may not change anything here; \
                         add its origin to server.allowed_origins if it is yours",
                        origin.chars().take(200).collect::<String>()
                    ),
                })
            }
        }
        // Browsers send Origin with every such request; this covers any that do not.
        None => match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
            Some(b"cross-site" | b"same-site") => Err(ApiError::Forbidden {
                code: "forbidden_origin",
                message: "requests from another site's web page may not change anything here"
                    .into(),
            }),
            _ => Ok(()),
        },
    }
}

fn forbidden_host(host: &str) -> ApiError {
    ApiError::Forbidden {
        code: "forbidden_host",
        message: format!(
            "this server does not answer to the host name '{}'; add it to server.allowed_hosts if it is yours",
            host.chars().take(200).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(bind: &str, hosts: &[&str], origins: &[&str]) -> Access {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Access::new(bind.parse().unwrap(), &s(hosts), &s(origins))
    }

    #[test]
    fn host_names_are_compared_without_port_or_case() {
        let a = access("127.0.0.1:7777", &[], &[]);
        for ok in [
            "localhost:7777",
            "LOCALHOST",
            "127.0.0.1:7777",
            "[::1]:7777",
            "[::1]",
        ] {
            assert!(a.host_allowed(ok), "{ok}");
        }
        for bad in [
            "attacker.example:7777",
            "localhost.attacker.example",
            "127.0.0.2",
            "localhost:x",
            ":7777",
            "[::1",
        ] {
            assert!(!a.host_allowed(bad), "{bad}");
        }
        let b = access("127.0.0.1:7777", &["baton.internal"], &[]);
        assert!(b.host_allowed("baton.internal:80"));
        assert!(access("127.0.0.1:7777", &["*"], &[]).host_allowed("anything"));
        assert!(access("0.0.0.0:7777", &[], &[]).host_allowed("anything"));
        assert!(!access("0.0.0.0:7777", &["team.example"], &[]).host_allowed("anything"));
        assert!(access("10.1.2.3:7777", &[], &[]).host_allowed("10.1.2.3:7777"));
    }

    #[test]
    fn same_origin_or_listed_origins_only() {
        let a = access("127.0.0.1:7777", &[], &["http://localhost:5173/"]);
        assert!(a.origin_allowed("http://localhost:7777", Some("localhost:7777")));
        assert!(a.origin_allowed("http://localhost:5173", Some("localhost:7777")));
        assert!(!a.origin_allowed("http://localhost:8080", Some("localhost:7777")));
        assert!(!a.origin_allowed("null", Some("localhost:7777")));
        assert!(!a.origin_allowed("http://127.0.0.1:7777", Some("localhost:7777")));
    }
}
