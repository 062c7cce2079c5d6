//! The shared log in Redis: one stream of messages, numbered by a counter,
//! appended to atomically by a Lua script, and read in order by a tailer in
//! every instance.
//!
//! Keys (the whole log; deleting them all starts a new one):
//! - `chat:log`: a stream; message `N` is the entry with the explicit id
//!   `N-0`, fields `user`, `text`, `via`, `t` (sent_at_ms). Trimmed with
//!   `MAXLEN ~ history`, so Redis keeps at least what each instance keeps.
//! - `chat:next`: the last id handed out (`INCR` gives the next).
//! - `chat:epoch`: the log's epoch, made when `chat:next` is (re)created.
//! - `chat:idem:<len>:<user>:<client_msg_id>`: the id a keyed send got, with
//!   a TTL; a retry finds the message and stores nothing.
//!
//! Why a script: numbering, idempotency and the append must be one step, or
//! two instances could hand out the same id, or a retry racing its original
//! could be stored twice. Redis runs a script atomically, so ids are 1, 2,
//! 3, … without gaps across every instance.
//!
//! Why a tailer that reads from the last id it has (`XREAD BLOCK … <id>`),
//! never from `$`: `$` means "whatever comes after now", so a tailer that
//! reconnects would silently skip what was appended while it was away.
//! Reading from its own last id, it catches up on everything Redis kept.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Script};

use chat_protocol::{Epoch, MessageId, Via};

use crate::log::{OpenError, SendFailure};
use crate::message::{NewMessage, StoredMessage, validate};
use crate::store::{Appended, Store, StoreConfig, new_epoch, now_ms};

const LOG: &str = "chat:log";
const NEXT: &str = "chat:next";
const EPOCH: &str = "chat:epoch";
/// How long a `client_msg_id` is remembered (the message must also still be
/// in the log for a retry to find it).
const IDEMPOTENCY_TTL_S: u64 = 24 * 60 * 60;
/// How long the tailer's `XREAD` blocks before it checks the epoch again.
const TAIL_BLOCK: Duration = Duration::from_millis(500);
/// Most entries one `XREAD` returns.
const TAIL_BATCH: usize = 1_000;
/// A command that takes longer than this counts as Redis being unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// First and longest pause before the tailer reconnects.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Creates the log's counter and epoch if the log does not exist (yet, or
/// any more); answers the epoch and the last id handed out.
const INIT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], 0)
  redis.call('SET', KEYS[2], ARGV[1])
end
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
return {epoch, redis.call('GET', KEYS[1])}
";

/// Numbers and appends one message, or finds the one a keyed send stored.
const APPEND: &str = r"
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[3], ARGV[5])
end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', KEYS[3], epoch)
end
if ARGV[8] == '1' then
  local known = redis.call('GET', KEYS[4])
  if known then
    local found = redis.call('XRANGE', KEYS[1], known .. '-0', known .. '-0')
    if #found == 1 then
      local f = found[1][2]
      local m = {}
      for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
      return {'existing', epoch, known, m['user'], m['text'], m['via'], m['t']}
    end
  end
end
-- Scripts are not rolled back: check what could fail before INCR, so that a
-- refused send never uses up an id (ids stay gapless).
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' holds a ' .. kind .. ', not a stream')
end
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], id .. '-0',
  'user', ARGV[1], 'text', ARGV[2], 'via', ARGV[3], 't', ARGV[4])
if ARGV[8] == '1' then
  redis.call('SET', KEYS[4], id, 'EX', ARGV[7])
end
return {'created', epoch, tostring(id)}
";

/// The sending half of the shared log (the tailer runs on its own).
pub(crate) struct RedisLog {
    manager: ConnectionManager,
    append: Script,
    /// Commands sent by this instance, sends and tailer together.
    commands: Arc<AtomicU64>,
}

/// Connects, reads the epoch and the recent history, and starts the tailer.
pub(crate) async fn open(
    url: &str,
    config: StoreConfig,
) -> Result<(RedisLog, Arc<Store>), OpenError> {
    let unreachable = |e: redis::RedisError| OpenError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    };
    let client = redis::Client::open(url).map_err(|e| OpenError::Url {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1);
    let mut manager = client
        .get_connection_manager_with_config(manager_config)
        .await
        .map_err(unreachable)?;
    let commands = Arc::new(AtomicU64::new(0));
    let (epoch, _) = init(&mut manager, &commands).await.map_err(unreachable)?;
    let store = Arc::new(Store::with_epoch(config, epoch));
    load_recent(&mut manager, &store, &commands)
        .await
        .map_err(unreachable)?;
    tokio::spawn(tail(client, Arc::downgrade(&store), commands.clone()));
    let log = RedisLog {
        manager,
        append: Script::new(APPEND),
        commands,
    };
    Ok((log, store))
}

impl RedisLog {
    /// Runs the append script for a validated message.
    pub(crate) async fn append(
        &self,
        new: NewMessage,
        config: StoreConfig,
    ) -> Result<Appended, SendFailure> {
        let valid = validate(new, config.max_text_chars)?;
        let sent_at_ms = now_ms();
        let key = valid
            .client_msg_id
            .as_ref()
            .map(|id| format!("chat:idem:{}:{}:{id}", valid.user.len(), valid.user));
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(LOG)
            .key(NEXT)
            .key(EPOCH)
            .key(key.as_deref().unwrap_or("chat:idem:-"))
            .arg(&valid.user)
            .arg(&valid.text)
            .arg(valid.via.as_str())
            .arg(sent_at_ms)
            .arg(new_epoch().as_str())
            .arg(config.history)
            .arg(IDEMPOTENCY_TTL_S)
            .arg(if key.is_some() { "1" } else { "0" });
        let mut manager = self.manager.clone();
        self.commands.fetch_add(1, Relaxed);
        let reply: Vec<String> = invocation
            .invoke_async(&mut manager)
            .await
            .map_err(|e| SendFailure::Unavailable(e.to_string()))?;
        let bad = || SendFailure::Unavailable(format!("unexpected answer {reply:?}"));
        match reply.as_slice() {
            [kind, _epoch, id] if kind == "created" => {
                let id = MessageId(id.parse().map_err(|_| bad())?);
                Ok(Appended::Created(StoredMessage::encode(
                    id, &valid, sent_at_ms,
                )))
            }
            [kind, _epoch, id, user, text, via, t] if kind == "existing" => {
                let message = decode(id, user, text, via, t).ok_or_else(bad)?;
                Ok(Appended::Existing(message))
            }
            _ => Err(bad()),
        }
    }

    pub(crate) fn commands(&self) -> u64 {
        self.commands.load(Relaxed)
    }
}

/// The log's epoch and last id, creating them if the log is new.
async fn init<C: redis::aio::ConnectionLike>(
    con: &mut C,
    commands: &AtomicU64,
) -> redis::RedisResult<(Epoch, u64)> {
    commands.fetch_add(1, Relaxed);
    let (epoch, last): (String, u64) = Script::new(INIT)
        .key(NEXT)
        .key(EPOCH)
        .arg(new_epoch().as_str())
        .invoke_async(con)
        .await?;
    let epoch = Epoch::parse(&epoch).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "bad epoch",
            e.to_string(),
        ))
    })?;
    Ok((epoch, last))
}

/// Fills `store` with the most recent `history` messages of the log.
async fn load_recent<C: redis::aio::ConnectionLike>(
    con: &mut C,
    store: &Store,
    commands: &AtomicU64,
) -> redis::RedisResult<()> {
    commands.fetch_add(1, Relaxed);
    let recent: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(LOG)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(store.config().history)
        .query_async(con)
        .await?;
    for entry in recent.ids.iter().rev() {
        if let Some(message) = decode_entry(entry) {
            store.push(message);
        }
    }
    Ok(())
}

/// Reads the log in order into `store` for as long as the store lives,
/// reconnecting with backoff; notices when the log was deleted (its epoch
/// changed) and starts the store over.
async fn tail(client: redis::Client, store: Weak<Store>, commands: Arc<AtomicU64>) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT + TAIL_BLOCK));
    let mut connection: Option<MultiplexedConnection> = None;
    let mut pause = RECONNECT_MIN;
    loop {
        let Some(store) = store.upgrade() else {
            return; // the server is gone
        };
        let result = match &mut connection {
            Some(con) => step(con, &store, &commands).await,
            None => match client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            {
                Ok(con) => {
                    connection = Some(con);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        drop(store);
        match result {
            Ok(()) => pause = RECONNECT_MIN,
            Err(e) => {
                tracing::warn!(error = %e, "redis tailer: will retry from the last id held");
                connection = None;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RECONNECT_MAX);
            }
        }
    }
}

/// One round of the tailer: check the epoch, then wait up to `TAIL_BLOCK`
/// for entries after the last id held and push them.
async fn step(
    con: &mut MultiplexedConnection,
    store: &Store,
    commands: &AtomicU64,
) -> redis::RedisResult<()> {
    let (epoch, _) = init(con, commands).await?;
    if epoch != store.epoch() {
        tracing::warn!(%epoch, "the shared log started again: new epoch");
        store.reset(epoch);
        return load_recent(con, store, commands).await;
    }
    commands.fetch_add(1, Relaxed);
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(TAIL_BATCH)
        .arg("BLOCK")
        .arg(TAIL_BLOCK.as_millis() as u64)
        .arg("STREAMS")
        .arg(LOG)
        .arg(format!("{}-0", store.newest().0))
        .query_async(con)
        .await?;
    for key in reply.map(|r| r.keys).unwrap_or_default() {
        for entry in &key.ids {
            if let Some(message) = decode_entry(entry) {
                store.push(message);
            }
        }
    }
    Ok(())
}

fn decode_entry(entry: &StreamId) -> Option<StoredMessage> {
    let id = entry.id.strip_suffix("-0")?;
    let field = |name: &str| entry.get::<String>(name);
    decode(
        id,
        &field("user")?,
        &field("text")?,
        &field("via")?,
        &field("t")?,
    )
}

/// A message as every instance encodes it from the log's fields: the same
/// bytes everywhere, because the encoding is deterministic.
fn decode(id: &str, user: &str, text: &str, via: &str, t: &str) -> Option<StoredMessage> {
    let valid = crate::message::Valid {
        user: user.to_owned(),
        text: text.to_owned(),
        client_msg_id: None,
        via: via.parse::<Via>().ok()?,
    };
    Some(StoredMessage::encode(
        MessageId(id.parse().ok()?),
        &valid,
        t.parse().ok()?,
    ))
}
