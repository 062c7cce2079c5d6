//! The probe codec: what `loadgen` writes in a message so that a subscriber
//! can tell, from the message alone, whose it is, which one it is and when
//! it was sent.
//!
//! A probe's text is `loadgen RUN SEQ SENT_US`: the word [`PROBE_USER`],
//! this run's id (`PID.UNIX_MS`), the message's sequence number in the run,
//! and its send time in microseconds on the run's clock. Anything else on
//! the same server (another run, a person on the page) does not decode and
//! is ignored. The `client_msg_id` of a probe is `RUN-SEQ`, so a retried
//! send is stored once.

use std::time::{SystemTime, UNIX_EPOCH};

/// The `user` of every message sent, and the first word of its text.
pub const PROBE_USER: &str = "loadgen";

/// One decoded probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The message's sequence number in its run.
    pub seq: u32,
    /// When it was sent, in microseconds on the run's clock.
    pub sent_us: u64,
}

/// Writes and reads the probes of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeCodec {
    /// Tells this run's messages from anyone else's.
    run: String,
}

impl ProbeCodec {
    /// The codec of a run with this id (no whitespace in it).
    pub fn new(run: impl Into<String>) -> Self {
        ProbeCodec { run: run.into() }
    }

    /// A codec with a fresh id for a run of this process: `PID.UNIX_MS`.
    pub fn for_this_run() -> Self {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        ProbeCodec::new(format!("{}.{unix_ms}", std::process::id()))
    }

    /// The codec of this run's warm-up messages (`--warmup`): another id,
    /// so that no subscriber takes one for a timed message.
    pub fn warmup(&self) -> Self {
        ProbeCodec::new(format!("{}.warmup", self.run))
    }

    /// The text of message `seq`, sent at `sent_us`.
    pub fn text(&self, seq: u32, sent_us: u64) -> String {
        format!("{PROBE_USER} {} {seq} {sent_us}", self.run)
    }

    /// The `client_msg_id` of message `seq`.
    pub fn client_msg_id(&self, seq: u32) -> String {
        format!("{}-{seq}", self.run)
    }

    /// The probe in `text`, if it is one of this run's; `None` for anyone
    /// else's message.
    pub fn decode(&self, text: &str) -> Option<Probe> {
        let mut words = text.split_whitespace();
        if words.next()? != PROBE_USER || words.next()? != self.run {
            return None;
        }
        Some(Probe {
            seq: words.next()?.parse().ok()?,
            sent_us: words.next()?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is written reads back.
    #[test]
    fn round_trip() {
        let codec = ProbeCodec::new("12.345");
        let text = codec.text(7, 1_234_567);
        assert_eq!(text, "loadgen 12.345 7 1234567");
        assert_eq!(
            codec.decode(&text),
            Some(Probe {
                seq: 7,
                sent_us: 1_234_567
            })
        );
        assert_eq!(codec.client_msg_id(7), "12.345-7");
    }

    /// Other runs' probes and other people's messages are ignored.
    #[test]
    fn other_messages_are_not_probes() {
        let codec = ProbeCodec::new("12.345");
        assert_eq!(codec.decode(&ProbeCodec::new("12.3456").text(1, 2)), None);
        assert_eq!(codec.decode("hello"), None);
        assert_eq!(codec.decode("loadgen 12.345 seven 1"), None);
        assert_eq!(codec.decode("loadgen 12.345 7"), None);
        assert_eq!(codec.decode("loadgenx 12.345 7 1"), None);
    }
}
