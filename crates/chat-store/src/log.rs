//! Where messages are kept: in this process's memory (the default, nothing
//! to install), or in a Redis log that any number of server instances share.
//!
//! Either way the transports read from the same in-process [`Store`]: its
//! ring of recent messages and its wake-ups. What the backend changes is who
//! numbers a new message and how it gets into that ring:
//!
//! - **memory**: [`Log::send`] appends to the store directly, which numbers
//!   it, and the store is the whole truth. A restart starts a new epoch.
//! - **redis**: [`Log::send`] runs one Lua script in Redis that numbers the
//!   message and appends it to a stream (see `redis_log.rs`); every
//!   instance, this one included, has a tailer that reads the stream in
//!   order and pushes each message into its own store. The answer to a send
//!   is the message Redis stored; its subscribers get it from the tailer a
//!   moment later, like everyone else's.

use std::sync::Arc;

use crate::message::{NewMessage, SendError};
use crate::redis_log::{self, RedisLog};
use crate::store::{Appended, Store, StoreConfig};

/// The store and the backend that feeds it.
pub struct Log {
    store: Arc<Store>,
    backend: Backend,
}

enum Backend {
    Memory,
    Redis(RedisLog),
}

/// Why a send was not stored.
#[derive(Debug, thiserror::Error)]
pub enum SendFailure {
    /// The message breaks a rule; nothing is stored (a 400).
    #[error(transparent)]
    Invalid(#[from] SendError),
    /// The shared log cannot be reached; nothing is acknowledged (a 503).
    #[error("the message store is unavailable: {0}")]
    Unavailable(String),
}

/// Why a log could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `--store` is not a URL this project knows.
    #[error("--store {url:?}: {reason}")]
    Url {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis did not answer, or answered with an error.
    #[error("cannot reach the store at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// What happened.
        reason: String,
    },
}

impl Log {
    /// A store in this process's memory.
    pub fn memory(config: StoreConfig) -> Self {
        Log::with_store(Arc::new(Store::new(config)))
    }

    /// A memory log around an existing store (tests fill stores directly).
    pub fn with_store(store: Arc<Store>) -> Self {
        Log {
            store,
            backend: Backend::Memory,
        }
    }

    /// The log `url` names: `None` or `memory` for memory, `redis://HOST:PORT`
    /// for a shared Redis log (which must answer now). Must be called inside
    /// a Tokio runtime, which then runs the tailer.
    pub async fn open(config: StoreConfig, url: Option<&str>) -> Result<Self, OpenError> {
        match url {
            None | Some("memory") => Ok(Log::memory(config)),
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                let (redis, store) = redis_log::open(url, config).await?;
                Ok(Log {
                    store,
                    backend: Backend::Redis(redis),
                })
            }
            Some(url) => Err(OpenError::Url {
                url: url.to_owned(),
                reason: "must be `memory` or redis://HOST:PORT".into(),
            }),
        }
    }

    /// The store the transports read.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// `memory` or `redis`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Validates, numbers and stores a message, or returns the one stored
    /// before under the same (`user`, `client_msg_id`).
    pub async fn send(&self, new: NewMessage) -> Result<Appended, SendFailure> {
        match &self.backend {
            Backend::Memory => Ok(self.store.append(new)?),
            Backend::Redis(redis) => redis.append(new, self.store.config()).await,
        }
    }

    /// Redis commands sent so far (0 for memory): the cost of the shared log.
    pub fn commands(&self) -> u64 {
        match &self.backend {
            Backend::Memory => 0,
            Backend::Redis(redis) => redis.commands(),
        }
    }
}
