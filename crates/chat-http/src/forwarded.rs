//! Which host a request was addressed to, and whom to believe about it.
//!
//! Behind a proxy, the `Host` a request reaches the server with may be the
//! proxy's view (nginx sends its upstream's address by default), and the
//! public name travels in `Forwarded: host=…` (RFC 7239) or
//! `X-Forwarded-Host`. But anyone can send those headers, so they count only
//! when the request comes from one of `--trusted-proxies`; from anyone else
//! they are ignored. By default no proxy is trusted.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::config::Config;

/// The host names (with port, as sent) this request was addressed to: its
/// `Host` header, and, if it comes from a trusted proxy, the host that proxy
/// forwards.
pub fn public_hosts(req: &HttpRequest, config: &Config) -> Vec<String> {
    let mut hosts: Vec<String> = header_value(req, header::HOST.as_str())
        .map(str::to_owned)
        .into_iter()
        .collect();
    let trusted = req
        .peer_addr()
        .is_some_and(|peer| config.is_trusted_proxy(peer.ip()));
    if trusted {
        hosts.extend(forwarded_host(req));
    }
    hosts
}

/// The host the nearest proxy names: `Forwarded`'s first element's `host=`,
/// else `X-Forwarded-Host`'s first value.
fn forwarded_host(req: &HttpRequest) -> Option<String> {
    let from_forwarded = header_value(req, header::FORWARDED.as_str()).and_then(|value| {
        let first = value.split(',').next()?;
        first.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("host")
                .then(|| value.trim().trim_matches('"').to_owned())
        })
    });
    from_forwarded
        .or_else(|| {
            header_value(req, "x-forwarded-host")
                .and_then(|value| value.split(',').next())
                .map(|host| host.trim().to_owned())
        })
        .filter(|host| !host.is_empty())
}

/// A header's value as text, if present and ASCII.
fn header_value<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name)?.to_str().ok()
}
