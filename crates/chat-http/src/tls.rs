//! `--tls`: HTTPS with HTTP/2 and HTTP/1.1 (chosen by ALPN), through rustls
//! with the ring provider.
//!
//! The certificate is the one `--cert` and `--key` name (PEM files), or one
//! made at start for `localhost`, `127.0.0.1` and `::1` (rcgen), which no
//! browser trusts until told to: the binary prints its SHA-256 fingerprint
//! and, for Chromium, the pin of its public key
//! (`--ignore-certificate-errors-spki-list`).
//!
//! Every accepted connection is one `Io`: plain TCP, or TLS over TCP. The
//! TLS one counts its bytes on the socket (records and handshakes included)
//! into [`crate::stats::TlsCounters`], the only exact count over HTTP/2,
//! where one connection carries every transport's requests at once.
//!
//! Two things differ on an HTTP/2 connection:
//! - [`crate::Connection::reset`] does nothing there (resetting the socket
//!   would cut every other request the connection carries): a slow reader's
//!   stream just ends.
//! - actix's HTTP/2 dispatcher does not listen to the graceful-stop signal,
//!   so once a stop begins each HTTP/2 connection gets [`H2_STOP_GRACE`]
//!   (held requests answer and streams end at once on shutdown) and is then
//!   treated as closed by its client.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::{Protocol, error::DispatchError};
use actix_server::GracefulShutdownSignal;
use actix_web::rt::net::TcpStream;
use base64::Engine;
use rcgen::PublicKeyData;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Config;
use crate::stats::Stats;
use crate::wire::{Socket, Wired};

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an HTTP/2 connection may go on once a graceful stop has begun
/// (see the module's documentation).
pub const H2_STOP_GRACE: Duration = Duration::from_secs(2);

/// The names a made certificate is valid for.
pub const GENERATED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A server's TLS setup: the acceptor and what a client needs to trust it.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    certificate: CertificateDer<'static>,
    spki_pin: Option<String>,
    generated: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint())
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up (exit code 6).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A `--cert` or `--key` file cannot be read or holds no PEM of its kind.
    #[error("cannot read the TLS {what} {}: {reason}", path.display())]
    File {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match, say).
    #[error("the TLS certificate and key are not usable: {0}")]
    Rejected(#[from] rustls::Error),
    /// rcgen could not make a certificate.
    #[error("cannot make a TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

impl Tls {
    /// What `config` asks for: nothing without `--tls`; the `--cert` and
    /// `--key` files; or a certificate made now.
    pub fn from_config(config: &Config) -> Result<Option<Tls>, TlsError> {
        if !config.tls {
            return Ok(None);
        }
        match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => Tls::from_pem_files(cert, key).map(Some),
            // clap requires both or neither; a `Config` built by hand
            // with one of them gets a made certificate.
            _ => Tls::generate().map(Some),
        }
    }

    /// A certificate for [`GENERATED_NAMES`], made now, with a new key.
    pub fn generate() -> Result<Tls, TlsError> {
        let names: Vec<String> = GENERATED_NAMES.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names)?;
        let pin = spki_pin(&made.signing_key.subject_public_key_info());
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let mut tls = Tls::with(vec![made.cert.der().clone()], key, Some(pin))?;
        tls.generated = true;
        Ok(tls)
    }

    /// The chain in `cert` and the key in `key` (PEM files).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let file_error = |what, path: &Path, reason: String| TlsError::File {
            what,
            path: path.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| file_error("certificate", cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(file_error(
                "certificate",
                cert,
                "no CERTIFICATE in it".into(),
            ));
        }
        let private =
            PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("key", key, e.to_string()))?;
        // The pin is the key's public half; rcgen reads PKCS#8 keys only.
        let pin = std::fs::read_to_string(key)
            .ok()
            .and_then(|pem| rcgen::KeyPair::from_pem(&pem).ok())
            .map(|pair| spki_pin(&pair.subject_public_key_info()));
        Tls::with(chain, private, pin)
    }

    fn with(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        spki_pin: Option<String>,
    ) -> Result<Tls, TlsError> {
        let certificate = chain[0].clone();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
            spki_pin,
            generated: false,
        })
    }

    /// The served certificate (the first of the chain), DER-encoded: a
    /// client that trusts it as a root can connect.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// Whether the certificate was made at start.
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// The certificate's SHA-256 fingerprint, as browsers show it
    /// (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.certificate);
        let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        hex.join(":")
    }

    /// The base64 SHA-256 of the certificate's public key (its
    /// SubjectPublicKeyInfo), as Chromium's
    /// `--ignore-certificate-errors-spki-list` takes it; `None` for a
    /// `--key` that is not PKCS#8.
    pub fn spki_pin(&self) -> Option<&str> {
        self.spki_pin.as_deref()
    }

    /// Completes the handshake on an accepted connection; the connection
    /// then speaks what ALPN chose (HTTP/1.1 if the client named nothing).
    /// `closing` resolves when an HTTP/2 connection should be treated as
    /// closed (see the module's documentation).
    pub(crate) async fn accept(
        &self,
        io: TcpStream,
        stats: Arc<Stats>,
        closing: Pin<Box<dyn Future<Output = ()>>>,
    ) -> io::Result<(Io, Protocol)> {
        let metered = Metered {
            inner: Wired::new(io),
            stats: stats.clone(),
            closing: None,
        };
        let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(metered))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        stats.tls.connections.fetch_add(1, Relaxed);
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        if !h2 {
            return Ok((Io::Tls(Box::new(stream), false), Protocol::Http1));
        }
        stats.tls.h2_connections.fetch_add(1, Relaxed);
        stream.get_mut().0.closing = Some(closing);
        Ok((Io::Tls(Box::new(stream), true), Protocol::Http2))
    }
}

/// An accepted TCP connection made ready for actix's `HttpService`: plain
/// HTTP/1.1 without `tls`, else TLS with what ALPN chose. `stopping` is the
/// server's graceful-stop signal.
pub(crate) async fn connection(
    io: TcpStream,
    tls: Option<Tls>,
    stats: Arc<Stats>,
    stopping: GracefulShutdownSignal,
) -> Result<(Io, Protocol, Option<SocketAddr>), DispatchError> {
    let peer = io.peer_addr().ok();
    let Some(tls) = tls else {
        return Ok((Io::Plain(Wired::new(io)), Protocol::Http1, peer));
    };
    // actix's HTTP/2 dispatcher ignores the graceful stop: the connection
    // reads as closed a grace after it begins.
    let closing = Box::pin(async move {
        stopping.notified().await;
        tokio::time::sleep(H2_STOP_GRACE).await;
    });
    let (io, protocol) = tls
        .accept(io, stats, closing)
        .await
        .map_err(DispatchError::Io)?;
    Ok((io, protocol, peer))
}

/// Prints where the server listens, on stdout, and with TLS what a client
/// needs to trust it: the certificate's fingerprint and, when known, the
/// Chromium flag that trusts its key.
pub(crate) fn announce(name: &str, addr: SocketAddr, tls: Option<&Tls>) {
    let Some(tls) = tls else {
        println!("{name} listening on http://{addr}");
        return;
    };
    println!("{name} listening on https://{addr}");
    println!("certificate sha256 {}", tls.fingerprint());
    if let Some(pin) = tls.spki_pin() {
        println!("chromium --ignore-certificate-errors-spki-list={pin}");
    }
}

/// The base64 SHA-256 of a SubjectPublicKeyInfo.
fn spki_pin(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// An accepted connection: plain TCP, or TLS over TCP (`true`: HTTP/2).
pub(crate) enum Io {
    Plain(Wired),
    Tls(Box<TlsStream<Metered>>, bool),
}

impl Io {
    /// What a streaming response needs to know of its socket (see
    /// [`Wired::remember`]); an HTTP/2 connection is never reset whole.
    pub(crate) fn remember(&self, ext: &mut actix_web::dev::Extensions) {
        match self {
            Io::Plain(wired) => wired.remember(ext),
            Io::Tls(stream, h2) => {
                stream.get_ref().0.inner.remember(ext);
                if *h2 {
                    ext.remove::<Socket>();
                }
            }
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Io::Tls(io, _) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Io::Tls(io, _) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_flush(cx),
            Io::Tls(io, _) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Io::Tls(io, _) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TCP side of a TLS connection: counts what crosses the socket, and
/// reads as closed once `closing` (set on HTTP/2 connections) resolves.
pub(crate) struct Metered {
    inner: Wired,
    stats: Arc<Stats>,
    closing: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl AsyncRead for Metered {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(closing) = &mut this.closing
            && closing.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.stats.tls.bytes_in.fetch_add(n as u64, Relaxed);
        read
    }
}

impl AsyncWrite for Metered {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &written {
            this.stats.tls.bytes_out.fetch_add(*n as u64, Relaxed);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
