//! The numbers the contract fixes, and the defaults it names.

use std::ops::RangeInclusive;

/// Longest `user` name, in characters, after trimming.
pub const MAX_USER_CHARS: usize = 32;
/// Longest `client_msg_id`, in characters.
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
/// Default longest `text`, in characters, after trimming (configurable).
pub const DEFAULT_MAX_TEXT_CHARS: usize = 2_000;
/// Default largest request body, in bytes (64 KiB, configurable).
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;
/// Most messages one polling or long-polling answer carries: the default and
/// the largest `limit`. An answer this full means "ask again at once".
pub const MAX_PAGE: usize = 500;
/// How long a long poll is held when the client names no `wait_s`.
pub const DEFAULT_LONGPOLL_WAIT_S: u64 = 25;
/// The shortest and longest hold a client may ask for. 55 s stays below the
/// 60 s idle timeout common to proxies and load balancers.
pub const LONGPOLL_WAIT_RANGE_S: RangeInclusive<u64> = 1..=55;
/// Seconds without anything to send after which a push transport sends a
/// keep-alive (an SSE comment, a WebSocket ping).
pub const DEFAULT_KEEPALIVE_S: u64 = 15;
