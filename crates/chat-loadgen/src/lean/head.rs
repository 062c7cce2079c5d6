//! A response head, read with `httparse`: what a lean feed needs of it.

/// Largest response head accepted.
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// What a lean feed needs of a response head.
#[derive(Debug)]
pub(super) struct Head {
    /// Its length in bytes, blank line included.
    pub(super) len: usize,
    /// The status code.
    pub(super) status: u16,
    /// Whether the body comes in chunks (`Transfer-Encoding: chunked`).
    pub(super) chunked: bool,
    /// `Content-Length`, if given.
    pub(super) content_length: Option<usize>,
}

/// The complete response head at the start of `raw`; `None` while it is
/// incomplete, an error if it is malformed or over [`MAX_HEAD`].
pub(super) fn parse(raw: &[u8]) -> anyhow::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = response.parse(raw)? else {
        anyhow::ensure!(raw.len() < MAX_HEAD, "response head over {MAX_HEAD} bytes");
        return Ok(None);
    };
    let value = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    let chunked = value("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let content_length = match value("content-length") {
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("content-length {v:?}"))?,
        ),
        None => None,
    };
    Ok(Some(Head {
        len,
        status: response.code.unwrap_or(0),
        chunked,
        content_length,
    }))
}
