//! The socket under every connection, watched: what actix took from a
//! streaming response and could not write yet, so that a connection's byte
//! bound (`--max-unsent`, [`crate::streaming::Backlog`]) counts the bytes in
//! actix's write buffer too, and the descriptor, so that a stalled
//! connection can be reset ([`crate::streaming::Connection::reset`]).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The descriptor of an accepted connection, remembered when it is accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Socket(pub(crate) RawFd);

/// What actix took from a connection's responses and could not write to its
/// socket yet, shared by the socket ([`Wired`]) and the streaming response
/// served on it.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Bytes left in actix's write buffer after its last write: the socket
    /// (the kernel's buffer, then the client) took no more.
    pub(crate) unflushed: Cell<usize>,
    /// Bytes the socket has taken, in all.
    pub(crate) written: Cell<u64>,
    /// Woken when bytes move towards the client: actix took some from the
    /// body, or the socket took some; told only while someone waits
    /// ([`Wire::awaiting_moves`]), which is rare: every delivery moves bytes.
    pub(crate) moved: Notify,
    /// How many wait on `moved` now.
    awaiting: Cell<u32>,
    /// Woken when a write leaves bytes behind: the first sign of a client
    /// that does not keep up (a connection's task waits for it, so that a
    /// client that keeps up never wakes the task).
    pub(crate) backed_up: Notify,
}

/// An accepted TCP connection that notes how much of what actix writes the
/// socket takes. actix writes its whole write buffer each time (the part not
/// written yet), so what is left after a write is what it still holds.
pub(crate) struct Wired {
    io: TcpStream,
    wire: Rc<Wire>,
}

impl Wired {
    /// Wraps an accepted connection.
    pub(crate) fn new(io: TcpStream) -> Self {
        Wired {
            io,
            wire: Rc::default(),
        }
    }

    /// Stores the connection's descriptor and its [`Wire`] in its
    /// extensions (actix's `on_connect`), where [`Connection::serve`] finds
    /// them.
    pub(crate) fn remember(&self, ext: &mut actix_web::dev::Extensions) {
        ext.insert(Socket(self.io.as_raw_fd()));
        ext.insert(self.wire.clone());
    }
}

impl Wire {
    /// Counts a wait on `moved` for as long as the guard lives: take it
    /// before the `Notified` future, so that no move in between goes untold.
    pub(crate) fn awaiting_moves(&self) -> Awaiting<'_> {
        self.awaiting.set(self.awaiting.get() + 1);
        Awaiting(self)
    }

    /// Wakes the waits on `moved`, if there are any.
    pub(crate) fn tell_moved(&self) {
        if self.awaiting.get() > 0 {
            self.moved.notify_waiters();
        }
    }
}

/// A wait on [`Wire::moved`], counted while it lives.
pub(crate) struct Awaiting<'a>(&'a Wire);

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        self.0.awaiting.set(self.0.awaiting.get() - 1);
    }
}

impl AsyncRead for Wired {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wired {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        match &written {
            Poll::Ready(Ok(n)) => {
                let left = buf.len().saturating_sub(*n);
                this.wire.unflushed.set(left);
                this.wire.written.set(this.wire.written.get() + *n as u64);
                if *n > 0 {
                    this.wire.tell_moved();
                }
                if left > 0 {
                    this.wire.backed_up.notify_waiters();
                }
            }
            Poll::Pending => {
                this.wire.unflushed.set(buf.len());
                this.wire.backed_up.notify_waiters();
            }
            Poll::Ready(Err(_)) => {}
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
