//! Which host a request was addressed to, and whom to believe about it.
//!
//! Behind a proxy, the `Host` a request reaches the server with may be the
//! proxy's view (nginx sends its upstream's address by default), and the
//! public name travels in `Forwarded: host=…` (RFC 7239) or
//! `X-Forwarded-Host`. But anyone can send those headers, so they count only
//! when the request comes from one of `--trusted-proxies`; from anyone else
//! they are ignored. By default no proxy is trusted.
//!
//! The same holds for who the client is ([`client_address`], which the
//! per-client limits key on): the peer's address, or the one a trusted proxy
//! forwards, never the one anybody else claims.

use std::net::IpAddr;

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

/// The address of the client a request comes from: its peer's, or, when the
/// peer is one of `--trusted-proxies`, the one the proxies forward
/// (`Forwarded: for=`, else `X-Forwarded-For`). The forwarded list is read
/// from the nearest hop outwards, skipping trusted proxies: the first hop
/// that is not one is the client (anything further left was written by that
/// client and proves nothing). A hop that names no address (`unknown`, an
/// obfuscated name) stops the walk at the last address known. `None` only
/// for a request with no peer (a test's own app).
pub fn client_address(req: &HttpRequest, config: &Config) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    if !config.is_trusted_proxy(peer) {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = match header_value(req, header::FORWARDED.as_str()) {
        Some(forwarded) => forwarded
            .split(',')
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| hop_address(value))
                })?
            })
            .collect(),
        None => header_value(req, "x-forwarded-for")
            .map(|list| list.split(',').map(hop_address).collect())
            .unwrap_or_default(),
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(address) if config.is_trusted_proxy(address) => client = address,
            Some(address) => return Some(address),
            None => break,
        }
    }
    Some(client)
}

/// One hop of a forwarded list as an address: `192.0.2.7`,
/// `"192.0.2.7:4711"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn hop_address(raw: &str) -> Option<IpAddr> {
    let hop = raw.trim().trim_matches('"');
    if let Some(bracketed) = hop.strip_prefix('[') {
        return bracketed.split(']').next()?.parse().ok();
    }
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.rsplit_once(':')?.0.parse().ok())
        .map(|address| address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::hop_address;

    /// Every way RFC 7239 and `X-Forwarded-For` write a hop.
    #[test]
    fn hops() {
        let v4 = Some("192.0.2.7".parse().expect("an address"));
        let v6 = Some("2001:db8::1".parse().expect("an address"));
        assert_eq!(hop_address(" 192.0.2.7"), v4);
        assert_eq!(hop_address("\"192.0.2.7:4711\""), v4);
        assert_eq!(hop_address("\"[2001:db8::1]:4711\""), v6);
        assert_eq!(hop_address("2001:db8::1"), v6);
        assert_eq!(hop_address("unknown"), None);
        assert_eq!(hop_address("_hidden"), None);
    }
}
