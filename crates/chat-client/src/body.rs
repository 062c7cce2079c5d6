//! Answer bodies, gzipped or not.
//!
//! The servers never compress, but a proxy in front of them may, for any
//! client that says it accepts gzip. An Auto subscription says so, as every
//! browser does (see the crate's essay), so it must read what comes back.
//! Decoding follows the answer's `Content-Encoding`, whatever was asked.

use std::io::{self, Read, Write};
use std::pin::Pin;

use bytes::Bytes;
use flate2::read::GzDecoder;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING};

use crate::ClientError;

/// A body that arrives in pieces (an event stream, a JSON-line stream).
pub(crate) type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Adds `Accept-Encoding: gzip` to a request when `gzip` is set.
pub(crate) fn accept(request: reqwest::RequestBuilder, gzip: bool) -> reqwest::RequestBuilder {
    if gzip {
        request.header(ACCEPT_ENCODING, "gzip")
    } else {
        request
    }
}

/// Whether the answer's body is gzipped.
fn is_gzip(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"))
}

/// The whole body, gunzipped if it came gzipped.
pub(crate) async fn whole(response: reqwest::Response) -> Result<Bytes, ClientError> {
    let gzip = is_gzip(&response);
    let body = response.bytes().await?;
    if !gzip {
        return Ok(body);
    }
    let mut plain = Vec::new();
    GzDecoder::new(&body[..])
        .read_to_end(&mut plain)
        .map_err(|e| ClientError::Protocol(format!("gzipped body: {e}")))?;
    Ok(plain.into())
}

/// The body as it arrives, each piece gunzipped as far as it goes when the
/// body is gzipped (a piece may then decode to nothing yet).
pub(crate) fn chunks(response: reqwest::Response) -> Chunks {
    let gzip = is_gzip(&response);
    let raw = response.bytes_stream().map(|r| r.map_err(io::Error::other));
    if !gzip {
        return Box::pin(raw);
    }
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    Box::pin(raw.map(move |chunk| {
        decoder.write_all(&chunk?)?;
        decoder.flush()?;
        Ok(Bytes::from(std::mem::take(decoder.get_mut())))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    /// A gzipped stream cut at arbitrary points decodes to the original
    /// bytes, piece by piece.
    #[test]
    fn gunzips_a_stream_piece_by_piece() {
        let text = b"id: 1\ndata: {\"id\":1}\n\n".repeat(50);
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&text).expect("writing to a Vec");
        let gzipped = encoder.finish().expect("writing to a Vec");

        let mut decoder = flate2::write::GzDecoder::new(Vec::new());
        let mut out = Vec::new();
        for piece in gzipped.chunks(7) {
            decoder.write_all(piece).expect("valid gzip");
            decoder.flush().expect("valid gzip");
            out.append(decoder.get_mut());
        }
        assert_eq!(out, text);
    }
}
