//! `compare`'s section "Several instances on a shared Redis log": the same
//! 1,000 subscribers on one server with its memory store, then split over
//! two servers that share one Redis log, for every transport; deliveries
//! per second, send-to-deliver p50/p99, lost and duplicated messages, and
//! the Redis commands each message cost.
//!
//! It starts its own `redis-server` ([`RedisProcess`]) and skips itself,
//! saying why, when there is none. Each Redis row starts from an empty log
//! (`FLUSHALL` before its servers start) and counts the commands Redis ran
//! from just before `loadgen` to just after (`INFO commandstats`).

use std::fmt::Write as _;
use std::path::Path;

use chat_client::Transport;
use chat_loadgen::report::RowFigures;

use crate::processes::{CommandCalls, RedisProcess, ServerProcess, run_loadgen};

/// One load: subscribers, messages per second, seconds of sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Subscribers, split evenly over the instances.
    pub clients: u32,
    /// Messages per second, in total (below saturation on two cores).
    pub rate: u32,
    /// Seconds of sending.
    pub seconds: u32,
}

/// The load of a full run.
pub const FULL: Load = Load {
    clients: 1_000,
    rate: 100,
    seconds: 10,
};
/// `--quick`: the same subscribers and rate, sending for 3 s.
pub const QUICK: Load = Load {
    clients: 1_000,
    rate: 100,
    seconds: 3,
};

/// Where the messages live, and how many server processes share them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// One server, its own memory store: the baseline.
    Memory,
    /// Two servers on one Redis log.
    Redis,
}

impl Setup {
    /// The label in the table.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Memory => "memory ×1",
            Setup::Redis => "redis ×2",
        }
    }
}

/// One measured row.
#[derive(Debug, Clone)]
pub struct Row {
    /// What every subscriber used.
    pub transport: Transport,
    /// Memory ×1 or Redis ×2.
    pub setup: Setup,
    /// What `loadgen` reported.
    pub figures: RowFigures,
    /// Commands Redis ran during the run (Redis rows only).
    pub redis: Option<CommandCalls>,
}

/// The section: measured, or skipped with the reason.
#[derive(Debug, Clone)]
pub enum Section {
    /// Every row, at `load`.
    Measured {
        /// The load every row ran.
        load: Load,
        /// Two per transport: memory ×1, then Redis ×2.
        rows: Vec<Row>,
    },
    /// Not measured, and why.
    Skipped(String),
}

/// Runs the section: `server` is the binary that serves with `--serve ADDR
/// [--serve-store URL]` (`compare` itself), `loadgen` the load generator.
pub async fn measure(server: &Path, loadgen: &Path, load: Load) -> anyhow::Result<Section> {
    let Some(binary) = RedisProcess::binary() else {
        let looked = match std::env::var_os("CHAT_REDIS_SERVER") {
            Some(path) => format!(
                "CHAT_REDIS_SERVER={} does not exist",
                path.to_string_lossy()
            ),
            None => "no redis-server in /usr/bin or /usr/local/bin".to_owned(),
        };
        let note = format!(
            "{looked} (`apt-get install redis-server` installs it), so this section was \
             not measured"
        );
        eprintln!("scale: SKIPPED: {note}");
        return Ok(Section::Skipped(note));
    };
    let redis = RedisProcess::start(&binary)?;
    let mut rows = Vec::new();
    for transport in Transport::ALL {
        for setup in [Setup::Memory, Setup::Redis] {
            eprintln!(
                "scale: {} × {} on {} at {}/s",
                transport.as_str(),
                load.clients,
                setup.label(),
                load.rate
            );
            rows.push(measure_row(server, loadgen, &redis, transport, setup, load).await?);
        }
    }
    Ok(Section::Measured { load, rows })
}

/// One row: its servers started, `loadgen` run over them, the servers
/// stopped.
async fn measure_row(
    server: &Path,
    loadgen: &Path,
    redis: &RedisProcess,
    transport: Transport,
    setup: Setup,
    load: Load,
) -> anyhow::Result<Row> {
    let servers = match setup {
        Setup::Memory => vec![ServerProcess::start(server, None).await?],
        Setup::Redis => {
            // A new log for every row: no history, a new epoch.
            redis.command(&["FLUSHALL"])?;
            let url = redis.url();
            vec![
                ServerProcess::start(server, Some(&url)).await?,
                ServerProcess::start(server, Some(&url)).await?,
            ]
        }
    };
    let before = redis.command_calls()?;
    let all: Vec<&ServerProcess> = servers.iter().collect();
    let output = run_loadgen(
        loadgen,
        &all,
        transport,
        load.clients,
        load.rate,
        load.seconds,
    )
    .await;
    let after = redis.command_calls()?;
    for server in servers {
        server.stop().await;
    }
    let output = output?;
    let figures = output
        .figures()
        .ok_or_else(|| anyhow::anyhow!("unreadable loadgen row: {}", output.row))?;
    Ok(Row {
        transport,
        setup,
        figures,
        redis: (setup == Setup::Redis).then(|| after.since(&before)),
    })
}

/// The section as Markdown.
pub fn markdown(section: &Section) -> Result<String, std::fmt::Error> {
    let mut md = String::new();
    writeln!(md, "\n## Several instances on a shared Redis log\n")?;
    let (load, rows) = match section {
        Section::Skipped(note) => {
            writeln!(md, "Skipped: {note}.")?;
            return Ok(md);
        }
        Section::Measured { load, rows } => (load, rows),
    };
    writeln!(
        md,
        "| transport | setup | subscribers | deliveries/s | p50 ms | p99 ms | lost/dup \
         | Redis commands/msg | sent to Redis/msg |"
    )?;
    writeln!(
        md,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )?;
    let mut redis_total = CommandCalls::default();
    let mut redis_messages = 0;
    for row in rows {
        let f = &row.figures;
        let per_message = |n: u64| n as f64 / f.sent.max(1) as f64;
        let (commands, sent) = match &row.redis {
            Some(calls) => {
                for (name, n) in &calls.0 {
                    *redis_total.0.entry(name.clone()).or_default() += n;
                }
                redis_messages += f.sent;
                (
                    format!("{:.2}", per_message(calls.total())),
                    format!("{:.2}", per_message(calls.sent())),
                )
            }
            None => ("–".to_owned(), "–".to_owned()),
        };
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {}/{} | {commands} | {sent} |",
            row.transport.as_str(),
            row.setup.label(),
            load.clients,
            f.deliveries_per_second,
            f.p50_ms,
            f.p99_ms,
            f.lost,
            f.duplicated,
        )?;
    }
    if redis_messages > 0 {
        let by_command: Vec<String> = redis_total
            .0
            .iter()
            .map(|(name, n)| format!("`{name}` {:.2}", *n as f64 / redis_messages as f64))
            .collect();
        writeln!(
            md,
            "\nRedis commands per message over every *redis ×2* row, by command: {}.",
            by_command.join(", ")
        )?;
    }
    writeln!(
        md,
        "\nEach row: {} subscribers of one transport, {} messages a second for {} s, through \
         `loadgen`. *memory ×1* is one server process on its own memory store, the baseline. \
         *redis ×2* is two server processes (`compare --serve … --serve-store redis://…`, the \
         store `chat-demo --store` opens) on one `redis-server` started for this section on a \
         loopback port and emptied before each row, saving nothing (`--save '' --appendonly \
         no`, so no disk write or fsync is measured). Subscriber *i* is on instance *i* mod 2 \
         and message *n* is sent through instance *n* mod 2 (`loadgen --url A --url B`), so \
         half of the deliveries cross from one instance to the other, and every subscriber \
         must still get every message once and in order (*lost/dup* 0/0). Latency runs from \
         just before the send's `POST` to the subscriber having the message: on Redis it \
         includes the append script's round trip and each instance's tailer waking from \
         `XREAD` (the sending instance too: it learns of its own message from the log, like \
         everyone else). *Redis commands/msg* is every command Redis ran during the run \
         (`INFO commandstats`, the commands inside the Lua scripts included, `compare`'s \
         own left out) over the messages sent; *sent to Redis/msg* counts only those that \
         crossed the network (`EVALSHA`, `XREAD`). As `crates/chat-store/src/redis_log.rs` \
         has them, a send is one `EVALSHA` of the append script, which runs seven commands \
         inside (`EXISTS`, `GET` of the epoch, `GET` of the idempotency key, `TYPE` of the \
         log, `INCR`, `XADD`, `SET … EX`): 8. Each instance's tailer, every time its `XREAD` returns, checks the \
         epoch (an `EVALSHA` running `EXISTS`, `GET`, `GET`) and reads again (`XREAD`): 5 \
         per batch, 10 for two instances. At this rate most batches hold one message, so a \
         message costs about 18 commands, 5 of them round trips (a little more with the \
         idle tailers' 10 commands per 500 ms `XREAD` timeout during ramp-up and drain); at \
         higher rates batches grow and the tailers' share per message shrinks. Nothing is \
         pinned to a core (no load run of `compare` is): the servers, Redis and `loadgen` \
         share this machine's cores. So the latency of *redis ×2* is the Redis hop plus \
         one more server process and Redis on the same CPUs, but also half the fan-out per \
         process (500 subscribers each): it can come out on either side of *memory ×1*.",
        load.clients, load.rate, load.seconds
    )?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A skipped section says why; a measured one has a row per run, with
    /// Redis costs per message on Redis rows only.
    #[test]
    fn markdown_rows() {
        let skipped = markdown(&Section::Skipped("no redis-server".into())).expect("written");
        assert!(skipped.contains("Skipped: no redis-server."));
        let figures = RowFigures {
            sent: 100,
            deliveries_per_second: 99_000.0,
            p50_ms: 1.5,
            p99_ms: 4.25,
            lost: 0,
            duplicated: 0,
        };
        let calls = CommandCalls::parse("cmdstat_evalsha:calls=300\r\ncmdstat_get:calls=600\r\n");
        let md = markdown(&Section::Measured {
            load: QUICK,
            rows: vec![
                Row {
                    transport: Transport::Sse,
                    setup: Setup::Memory,
                    figures,
                    redis: None,
                },
                Row {
                    transport: Transport::Sse,
                    setup: Setup::Redis,
                    figures,
                    redis: Some(calls),
                },
            ],
        })
        .expect("written");
        assert!(md.contains("| sse | memory ×1 | 1000 | 99000 | 1.50 | 4.25 | 0/0 | – | – |"));
        assert!(md.contains("| sse | redis ×2 | 1000 | 99000 | 1.50 | 4.25 | 0/0 | 9.00 | 3.00 |"));
        assert!(
            md.contains("by command: `evalsha` 3.00, `get` 6.00."),
            "{md}"
        );
    }
}
