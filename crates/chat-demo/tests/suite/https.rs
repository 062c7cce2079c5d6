//! A small HTTPS client for the TLS tests: hyper over rustls (the ring
//! provider, as the server uses), trusting one certificate, speaking
//! HTTP/2 or HTTP/1.1 as ALPN decides.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::PATIENCE;

/// A rustls client configuration that trusts only `certificate` (DER) and
/// offers `alpn`, in that order.
pub fn client_config(certificate: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certificate.to_vec()))
        .expect("a root certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr`, checked against the name `127.0.0.1`.
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("a name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTPS connection.
pub struct Https {
    sender: Sender,
    authority: String,
}

impl Https {
    /// Connects to `addr`, trusting `certificate`; offers `h2` first when
    /// `h2`, else only `http/1.1`.
    pub async fn connect(addr: SocketAddr, certificate: &[u8], h2: bool) -> Https {
        let alpn: &[&[u8]] = if h2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let tls = tls_connect(addr, client_config(certificate, alpn)).await;
        let chose_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let sender = if chose_h2 {
            let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("HTTP/2 handshake");
            tokio::spawn(connection);
            Sender::H2(sender)
        } else {
            let (sender, connection) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
            tokio::spawn(connection);
            Sender::H1(sender)
        };
        Https {
            sender,
            authority: format!("127.0.0.1:{}", addr.port()),
        }
    }

    /// Another handle on the same HTTP/2 connection (a request each at
    /// once); `None` over HTTP/1.1, one request at a time.
    pub fn stream(&self) -> Option<Https> {
        match &self.sender {
            Sender::H2(sender) => Some(Https {
                sender: Sender::H2(sender.clone()),
                authority: self.authority.clone(),
            }),
            Sender::H1(_) => None,
        }
    }

    /// Sends a request; `body` is JSON.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Response<Incoming> {
        let mut builder = Request::builder().method(method);
        builder = match &self.sender {
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.authority)),
            Sender::H1(_) => builder.uri(path).header("host", &self.authority),
        };
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(body.unwrap_or_default().to_owned()));
        let request = builder.body(body).expect("a request");
        let sent = async {
            match &mut self.sender {
                Sender::H2(sender) => sender.send_request(request).await,
                Sender::H1(sender) => {
                    sender.ready().await.expect("connection ready");
                    sender.send_request(request).await
                }
            }
        };
        tokio::time::timeout(PATIENCE, sent)
            .await
            .expect("an answer within the patience")
            .expect("an answer")
    }

    /// `GET path`, read whole.
    pub async fn get(&mut self, path: &str) -> (Response<()>, String) {
        let response = self.request(Method::GET, path, None).await;
        whole(response).await
    }

    /// `POST /api/messages` with `text` from `ana`, sent `via`.
    pub async fn send(&mut self, text: &str, via: &str) -> Response<()> {
        let body = serde_json::json!({"user": "ana", "text": text, "via": via}).to_string();
        let response = self
            .request(Method::POST, "/api/messages", Some(&body))
            .await;
        whole(response).await.0
    }
}

/// A response's head and its whole body as text.
pub async fn whole(response: Response<Incoming>) -> (Response<()>, String) {
    let (head, body) = response.into_parts();
    let bytes = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("the body within the patience")
        .expect("a body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (Response::from_parts(head, ()), text)
}

/// Reads a streamed body until what it has read contains every one of
/// `needles`; returns what it read.
pub async fn read_until(body: &mut Incoming, needles: &[&str]) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !needles.iter().all(|n| text.contains(n)) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("never read {needles:?}; read {text:?}"))
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}
