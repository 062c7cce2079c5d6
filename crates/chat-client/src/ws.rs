//! WebSocket: one socket, message frames down, sends up.

use futures_util::{SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Batch, ClientError, Cursor, Options, Retry};

/// Bytes reserved for reading per socket.
const READ_BUFFER: usize = 8 * 1024;

/// A connected socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Reads `/ws`, reconnecting with `since` from the last id seen.
pub(crate) struct WsFeed {
    url: String,
    options: Options,
    /// Boxed: a socket is a few hundred bytes, an idle feed need not be.
    socket: Option<Box<Socket>>,
}

/// `ws://host/ws` for `http://host`.
pub(crate) fn ws_url(base: &str) -> String {
    format!("{}/ws", base.replacen("http", "ws", 1))
}

impl WsFeed {
    pub(crate) fn new(base: &str, options: Options) -> Self {
        WsFeed {
            url: ws_url(base),
            options,
            socket: None,
        }
    }

    /// Drops the connection; the next fetch reconnects.
    pub(crate) fn disconnect(&mut self) {
        self.socket = None;
    }

    /// The next gap notice or message.
    pub(crate) async fn fetch(
        &mut self,
        cursor: Option<Cursor>,
        reconnects: &mut u64,
    ) -> Result<Batch, ClientError> {
        let mut retry = Retry::new(&self.options, reconnects);
        loop {
            let socket = match &mut self.socket {
                Some(socket) => socket,
                None => match connect(&self.url, cursor).await {
                    Ok(socket) => self.socket.insert(Box::new(socket)),
                    Err(error) => {
                        retry.after(error).await?;
                        continue;
                    }
                },
            };
            match socket.next().await {
                Some(Ok(Frame::Text(text))) => {
                    if let Some(batch) = to_batch(text.as_str())? {
                        return Ok(batch);
                    }
                }
                // Pings are answered by tungstenite as it reads.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    self.socket = None;
                    retry.pause().await;
                }
            }
        }
    }
}

/// Opens `/ws?since=N`.
pub(crate) async fn connect(url: &str, cursor: Option<Cursor>) -> Result<Socket, ClientError> {
    let url = match cursor {
        Some(cursor) => format!("{url}?since={cursor}"),
        None => url.to_owned(),
    };
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
fn to_batch(text: &str) -> Result<Option<Batch>, ClientError> {
    #[derive(serde::Deserialize)]
    struct Control {
        #[serde(rename = "type")]
        kind: Option<String>,
        missed: Option<u64>,
        id: Option<u64>,
    }
    let control: Control =
        serde_json::from_str(text).map_err(|e| ClientError::Protocol(format!("frame: {e}")))?;
    match (control.kind.as_deref(), control.missed, control.id) {
        (Some("gap"), Some(missed), _) => Ok(Some(Batch {
            messages: Vec::new(),
            cursor: Cursor(0),
            missed,
        })),
        (Some(_), _, _) => Ok(None),
        (None, _, Some(id)) => Ok(Some(Batch {
            messages: vec![
                RawValue::from_string(text.to_owned())
                    .map_err(|e| ClientError::Protocol(format!("frame: {e}")))?,
            ],
            cursor: Cursor(id),
            missed: 0,
        })),
        (None, _, None) => Err(ClientError::Protocol(format!("frame without id: {text}"))),
    }
}

/// Sends one message over a fresh socket, waits for its ack and for the
/// message itself to come back, and returns the message's JSON.
pub(crate) async fn send_once(base: &str, frame: serde_json::Value) -> Result<String, ClientError> {
    let mut socket = connect(&ws_url(base), None).await?;
    socket
        .send(Frame::text(frame.to_string()))
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
                let value: serde_json::Value = serde_json::from_str(text.as_str())
                    .map_err(|e| ClientError::Protocol(format!("frame: {e}")))?;
                match (value["type"].as_str(), value["id"].as_u64()) {
                    (Some("ack"), Some(id)) => acked = Some(id),
                    (Some("error"), _) => {
                        break Err(ClientError::Refused {
                            status: 400,
                            body: value.to_string(),
                        });
                    }
                    (None, Some(id)) => {
                        seen.insert(id, text.as_str().to_owned());
                    }
                    _ => {}
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
