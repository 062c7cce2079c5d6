//! The page: the files of the workspace's `web/` folder, embedded in every
//! server binary when it is built, so a binary copied anywhere (or installed
//! with `cargo install`) serves its page. `--web-dir` serves a folder from
//! disk instead, to edit the page and reload without rebuilding.
//!
//! Both answer with the same headers: the page's Content-Security-Policy and
//! `nosniff` (added around either by `server.rs`), a content type from the
//! file name, and an `ETag` a browser revalidates with.

use std::path::{Path, PathBuf};

use actix_web::http::header::{self, EntityTag, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use crate::api;

/// The page's files, compiled into the binary (`debug-embed`: debug builds
/// too, so that every build behaves the same).
#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
struct Embedded;

/// Where the page comes from.
#[derive(Debug, Clone)]
pub enum PageSource {
    /// The files embedded at build time (the default).
    Embedded,
    /// A folder on disk (`--web-dir`), checked at start.
    Folder(PathBuf),
}

/// A `--web-dir` that cannot serve the page.
#[derive(Debug, thiserror::Error)]
#[error("--web-dir {}: {reason}", path.display())]
pub struct WebDirError {
    /// The folder given.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl PageSource {
    /// The embedded page, or `dir` once it is known to hold a readable
    /// `index.html`.
    pub fn new(dir: Option<&Path>) -> Result<Self, WebDirError> {
        let Some(dir) = dir else {
            return Ok(PageSource::Embedded);
        };
        let index = dir.join("index.html");
        match std::fs::File::open(&index) {
            Ok(_) => Ok(PageSource::Folder(dir.to_owned())),
            Err(e) => Err(WebDirError {
                path: dir.to_owned(),
                reason: format!("cannot read {}: {e}", index.display()),
            }),
        }
    }

    /// Adds the page's routes (everything not routed elsewhere) to a scope.
    pub(crate) fn serve(&self, scope: actix_web::Scope) -> actix_web::Scope {
        match self {
            PageSource::Embedded => scope.default_service(web::to(embedded)),
            PageSource::Folder(dir) => {
                scope.service(actix_files::Files::new("/", dir).index_file("index.html"))
            }
        }
    }
}

/// Answers a page file from the embedded copy: `/` is `index.html`.
async fn embedded(req: HttpRequest) -> HttpResponse {
    let path = req.path().trim_start_matches('/');
    let path = if path.is_empty() || path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_owned()
    };
    let Some(file) = Embedded::get(&path) else {
        return api::not_found(req).await;
    };
    let etag = EntityTag::new_strong(hex(&file.metadata.sha256_hash()[..8]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_string()));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response.insert_header(header::ETag(etag)).insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_str(file.metadata.mimetype())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    ));
    if fresh {
        response.finish()
    } else {
        response.body(file.data.into_owned())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
