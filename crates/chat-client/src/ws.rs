//! WebSocket: one socket, message frames down, sends up.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use chat_protocol::{ClientFrame, Control, Epoch, Incoming, PageBody};

use crate::epoch::SharedEpoch;
use crate::{ClientError, Cursor, Transport};

/// Bytes reserved for reading per socket.
const READ_BUFFER: usize = 8 * 1024;

/// A connected socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads `/ws`, reconnecting with `since` from the last id seen.
pub(crate) struct WsFeed {
    url: String,
    /// Boxed: a socket is a few hundred bytes, an idle feed need not be.
    socket: Option<Box<Socket>>,
    /// The epoch every connection names.
    epoch: SharedEpoch,
    /// `user=NAME` for presence, if named.
    user: Option<(&'static str, String)>,
}

/// `ws://host/ws` for `http://host`.
pub(crate) fn ws_url(base: &str) -> String {
    format!(
        "{}{}",
        base.replacen("http", "ws", 1),
        Transport::Websocket.route()
    )
}

impl WsFeed {
    pub(crate) fn new(
        base: &str,
        epoch: SharedEpoch,
        user: Option<(&'static str, String)>,
    ) -> Self {
        WsFeed {
            url: ws_url(base),
            socket: None,
            epoch,
            user,
        }
    }

    /// Whether a socket is open.
    pub(crate) fn is_open(&self) -> bool {
        self.socket.is_some()
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.socket = None;
    }

    /// Opens the socket, resuming after `cursor`: one attempt. An answer
    /// other than `101 Switching Protocols` is [`ClientError::Refused`].
    pub(crate) async fn open(&mut self, cursor: Option<Cursor>) -> Result<(), ClientError> {
        let epoch = self.epoch.get();
        let user = self.user.as_ref().map(|(_, user)| user.as_str());
        self.socket = Some(Box::new(
            connect(&self.url, cursor, epoch.as_ref(), user).await?,
        ));
        Ok(())
    }

    /// The next gap notice or message on the open socket; `None` once the
    /// socket has closed or broken (it is then dropped).
    pub(crate) async fn read(&mut self) -> Result<Option<PageBody>, ClientError> {
        let Some(socket) = &mut self.socket else {
            return Ok(None);
        };
        loop {
            match socket.next().await {
                Some(Ok(Frame::Text(text))) => {
                    if let Some(batch) = to_batch(text.as_str())? {
                        return Ok(Some(batch));
                    }
                }
                // Pings are answered by tungstenite as it reads.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.socket = None;
                    return Ok(None);
                }
            }
        }
    }
}

/// Opens `/ws?since=N&epoch=E&user=NAME`.
pub(crate) async fn connect(
    url: &str,
    cursor: Option<Cursor>,
    epoch: Option<&Epoch>,
    user: Option<&str>,
) -> Result<Socket, ClientError> {
    let mut url =
        reqwest::Url::parse(url).map_err(|e| ClientError::Protocol(format!("url {url}: {e}")))?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(cursor) = cursor {
            query.append_pair("since", &cursor.to_string());
        }
        if let Some(epoch) = epoch {
            query.append_pair("epoch", epoch.as_str());
        }
        if let Some(user) = user {
            // Percent-encoded: a name may hold any character but controls.
            query.append_pair("user", user);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let url = url.to_string();
    // tungstenite reserves 128 KiB per socket for reading by default; chat
    // frames are small, and a load test holds thousands of sockets.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    match tokio_tungstenite::connect_async_with_config(url, Some(config), true).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(ClientError::Refused {
            status: response.status().as_u16(),
            body: response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        }),
        Err(e) => Err(ClientError::Protocol(format!("websocket: {e}"))),
    }
}

/// A message or gap frame as a batch; `None` for acks and errors.
fn to_batch(text: &str) -> Result<Option<PageBody>, ClientError> {
    let incoming =
        Incoming::parse(text).map_err(|e| ClientError::Protocol(format!("frame: {e}")))?;
    Ok(PageBody::from_incoming(incoming))
}

/// Sends one message over a fresh socket, waits for its ack and for the
/// message itself to come back, and returns the message's JSON.
pub(crate) async fn send_once(base: &str, frame: ClientFrame) -> Result<String, ClientError> {
    let mut socket = connect(&ws_url(base), None, None, None).await?;
    socket
        .send(Frame::text(frame.to_json()))
        .await
        .map_err(|e| ClientError::Protocol(format!("websocket send: {e}")))?;
    let mut acked = None;
    let mut seen = std::collections::HashMap::new();
    let result = loop {
        if let Some(json) = acked.and_then(|id| seen.remove(&id)) {
            break Ok(json);
        }
        match socket.next().await {
            Some(Ok(Frame::Text(text))) => {
                let incoming = Incoming::parse(text.as_str())
                    .map_err(|e| ClientError::Protocol(format!("frame: {e}")))?;
                match incoming {
                    Incoming::Control(Control::Ack { id, .. }) => acked = Some(id),
                    Incoming::Control(Control::Error { .. }) => {
                        break Err(ClientError::Refused {
                            status: 400,
                            body: text.as_str().to_owned(),
                        });
                    }
                    Incoming::Control(_) => {}
                    Incoming::Message { id, raw } => {
                        seen.insert(id, raw.get().to_owned());
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => break Err(ClientError::Protocol(format!("websocket: {e}"))),
            None => break Err(ClientError::Protocol("socket closed before the ack".into())),
        }
    };
    let _ = socket.close(None).await;
    result
}
