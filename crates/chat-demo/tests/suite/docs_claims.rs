//! The figures the docs' prose quotes, each tied to the cell of
//! docs/results.md or docs/measurements.md it comes from; `docs.rs` checks
//! them (`prose_figures_match_their_source`).

/// A figure in prose: in `source`, the table under `heading`, the row whose
/// first cell is the first `|`-separated part of `row` (and which has the
/// other parts as cells), column `column`, holds `value`.
pub(crate) struct Figure {
    pub(crate) source: &'static str,
    pub(crate) heading: &'static str,
    pub(crate) row: &'static str,
    pub(crate) column: &'static str,
    pub(crate) value: &'static str,
}

/// A sentence of the docs and the figures in it.
pub(crate) struct Claim {
    pub(crate) file: &'static str,
    pub(crate) phrase: &'static str,
    pub(crate) figures: &'static [Figure],
}

pub(crate) const RESULTS: &str = "docs/results.md";
pub(crate) const MEASUREMENTS: &str = "docs/measurements.md";
pub(crate) const WIRE: &str = "Wire overhead per delivered message";
pub(crate) const IDLE: &str = "The cost of waiting: an idle client";
pub(crate) const LOAD: &str = "Under load";
pub(crate) const MEMORY: &str = "Server memory per connection, once connected";
pub(crate) const IDLE_MEMORY: &str = "Server memory per idle connection";
pub(crate) const LATENCY: &str = "Send-to-deliver latency, one subscriber, every transport";
pub(crate) const TLS: &str = "HTTP/2 over TLS";
pub(crate) const BURST: &str = "Burst: 1,000 messages to 10 subscribers";
pub(crate) const LINKS: &str = "Slow links: latency by round trip";
pub(crate) const CHAOS: &str = "Chaos: forced disconnects on every transport";
pub(crate) const HEAP: &str = "Where the memory of a connection goes";
pub(crate) const HEAP_BUFFERS: &str =
    "actix-http's read and write buffers, 8 KiB each (`Dispatcher::new`, `h1/dispatcher.rs`)";
pub(crate) const HEAP_ALL: &str = "per connection, in all (the first three rows)";

pub(crate) const fn fig(
    source: &'static str,
    heading: &'static str,
    row: &'static str,
    column: &'static str,
    value: &'static str,
) -> Figure {
    Figure {
        source,
        heading,
        row,
        column,
        value,
    }
}

/// The figures the docs' prose quotes, each tied to its source cell. When a
/// new run changes a source, the claim fails until the prose is updated.
pub(crate) const CLAIMS: &[Claim] = &[
    // The slow links (`compare -- --links-only`).
    Claim {
        file: "docs/pitfalls.md",
        phrase: "at 150 ms round trip SSE delivers at p50 77.26 ms and p99 81.13 ms (WebSocket and streaming within 0.3 ms of it); long polling has about the same median, 77.56 ms, but a p99 of 206.91 ms; polling's p50 is 639.69 ms",
        figures: &[
            fig(RESULTS, LINKS, "sse|150", "p50 ms", "77.26"),
            fig(RESULTS, LINKS, "sse|150", "p99 ms", "81.13"),
            fig(RESULTS, LINKS, "longpoll|150", "p50 ms", "77.56"),
            fig(RESULTS, LINKS, "longpoll|150", "p99 ms", "206.91"),
            fig(RESULTS, LINKS, "polling|150", "p50 ms", "639.69"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "SSE's p50 is 27.23 ms at 50 ms round trip and 77.26 ms at 150, its p99 30.37 ms and 81.13 ms",
        figures: &[
            fig(RESULTS, LINKS, "sse|50", "p50 ms", "27.23"),
            fig(RESULTS, LINKS, "sse|150", "p50 ms", "77.26"),
            fig(RESULTS, LINKS, "sse|50", "p99 ms", "30.37"),
            fig(RESULTS, LINKS, "sse|150", "p99 ms", "81.13"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "its p99 (72.55 ms at 50, 206.91 ms at 150)",
        figures: &[
            fig(RESULTS, LINKS, "longpoll|50", "p99 ms", "72.55"),
            fig(RESULTS, LINKS, "longpoll|150", "p99 ms", "206.91"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "Its request per message, 292.9 bytes down and 113.5 up at 50 ms",
        figures: &[
            fig(RESULTS, LINKS, "longpoll|50", "bytes down/msg", "292.9"),
            fig(RESULTS, LINKS, "longpoll|50", "bytes up/msg", "113.5"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "(395.87, 573.12 and 639.69 ms at 0, 50 and 150 ms)",
        figures: &[
            fig(RESULTS, LINKS, "polling|0", "p50 ms", "395.87"),
            fig(RESULTS, LINKS, "polling|50", "p50 ms", "573.12"),
            fig(RESULTS, LINKS, "polling|150", "p50 ms", "639.69"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "at 150 ms round trip long polling's p99 is 206.91 ms against 81.13 ms for SSE",
        figures: &[
            fig(RESULTS, LINKS, "longpoll|150", "p99 ms", "206.91"),
            fig(RESULTS, LINKS, "sse|150", "p99 ms", "81.13"),
        ],
    },
    // comparison.md, HTTP/2 (`--bin tls`).
    Claim {
        file: "docs/comparison.md",
        phrase: "a poll answered with one message costs 310.9 bytes down over HTTPS with HTTP/1.1 and 179.1 with HTTP/2, while SSE goes from 137.9 to 140.9",
        figures: &[
            fig(RESULTS, TLS, "polling", "bytes down/msg HTTPS h1", "310.9"),
            fig(RESULTS, TLS, "polling", "bytes down/msg HTTPS h2", "179.1"),
            fig(RESULTS, TLS, "sse", "bytes down/msg HTTPS h1", "137.9"),
            fig(RESULTS, TLS, "sse", "bytes down/msg HTTPS h2", "140.9"),
        ],
    },
    // The README's decision guide.
    Claim {
        file: "README.md",
        phrase: "one subscriber, no load: SSE 120 µs, WebSocket 154 µs, long polling 159 µs",
        figures: &[
            fig(
                MEASUREMENTS,
                LATENCY,
                "server-sent events",
                "median",
                "120 µs",
            ),
            fig(MEASUREMENTS, LATENCY, "WebSocket", "median", "154 µs"),
            fig(MEASUREMENTS, LATENCY, "long polling", "median", "159 µs"),
        ],
    },
    // comparison.md.
    Claim {
        file: "docs/comparison.md",
        phrase: "one subscriber and no load gives SSE 120 µs, WebSocket 154 µs, long polling 159 µs and polling its interval, 51.5 ms at 50 ms",
        figures: &[
            fig(
                MEASUREMENTS,
                LATENCY,
                "server-sent events",
                "median",
                "120 µs",
            ),
            fig(MEASUREMENTS, LATENCY, "WebSocket", "median", "154 µs"),
            fig(MEASUREMENTS, LATENCY, "long polling", "median", "159 µs"),
            fig(
                MEASUREMENTS,
                LATENCY,
                "polling (50 ms interval)",
                "median",
                "51.5 ms",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "200 of 500 messages with 1,000 clients, 47 of 100 with 10,000; with SSE, 84 of 100 with 10,000 (and 458 of 500 with 1,000); WebSocket managed 89 of 100 and streaming 92 with 10,000",
        figures: &[
            fig(RESULTS, LOAD, "longpoll|1000", "sent", "200"),
            fig(RESULTS, LOAD, "longpoll|10000", "sent", "47"),
            fig(RESULTS, LOAD, "sse|10000", "sent", "84"),
            fig(RESULTS, LOAD, "sse|1000", "sent", "458"),
            fig(RESULTS, LOAD, "websocket|10000", "sent", "89"),
            fig(RESULTS, LOAD, "stream|10000", "sent", "92"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "22.7 KiB allocated per connection, of which 16.4 KiB (72%)",
        figures: &[
            fig(MEASUREMENTS, HEAP, HEAP_ALL, "per connection", "22.7 KiB"),
            fig(
                MEASUREMENTS,
                HEAP,
                HEAP_BUFFERS,
                "per connection",
                "16.4 KiB",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "cheap idle (76 bytes a minute, no requests)",
        figures: &[fig(RESULTS, IDLE, "sse", "bytes down/min", "76")],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "Idle, polling costs 11,328 bytes and 59 requests a minute per client, SSE 76 bytes and none",
        figures: &[
            fig(RESULTS, IDLE, "polling", "bytes down/min", "11,328"),
            fig(RESULTS, IDLE, "polling", "requests/min", "59"),
            fig(RESULTS, IDLE, "sse", "bytes down/min", "76"),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "polling costs 100.3 bytes per message and SSE 120.8",
        figures: &[
            fig(
                RESULTS,
                WIRE,
                "polling|burst of 1000",
                "bytes down/msg (relay)",
                "100.3",
            ),
            fig(
                RESULTS,
                WIRE,
                "sse|burst of 1000",
                "bytes down/msg (relay)",
                "120.8",
            ),
        ],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "(959 k/s against 295 k/s and 437 k/s)",
        figures: &[
            fig(
                MEASUREMENTS,
                BURST,
                "long polling",
                "deliveries/s",
                "959 k/s",
            ),
            fig(
                MEASUREMENTS,
                BURST,
                "server-sent events",
                "deliveries/s",
                "295 k/s",
            ),
            fig(MEASUREMENTS, BURST, "WebSocket", "deliveries/s", "437 k/s"),
        ],
    },
    // The chapters.
    Claim {
        file: "docs/polling.md",
        phrase: "An idle polling client makes 59 requests and downloads 11,328 bytes a minute, against 76 bytes for an idle SSE stream",
        figures: &[
            fig(RESULTS, IDLE, "polling", "requests/min", "59"),
            fig(RESULTS, IDLE, "polling", "bytes down/min", "11,328"),
            fig(RESULTS, IDLE, "sse", "bytes down/min", "76"),
        ],
    },
    Claim {
        file: "docs/polling.md",
        phrase: "51.5 ms with a 50 ms interval",
        figures: &[fig(
            MEASUREMENTS,
            LATENCY,
            "polling (50 ms interval)",
            "median",
            "51.5 ms",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "5.5 KiB per held long poll",
        figures: &[fig(
            RESULTS,
            IDLE_MEMORY,
            "longpoll",
            "KiB per idle connection",
            "5.5",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "It was 19.6 KiB",
        figures: &[fig(
            RESULTS,
            MEMORY,
            "longpoll",
            "KiB per connection",
            "19.6",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "291.9 bytes down and 112.9 up per message one at a time",
        figures: &[
            fig(
                RESULTS,
                WIRE,
                "longpoll|100 one at a time",
                "bytes down/msg (relay)",
                "291.9",
            ),
            fig(
                RESULTS,
                WIRE,
                "longpoll|100 one at a time",
                "bytes up/msg (relay)",
                "112.9",
            ),
        ],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "polling sends 101.9 up",
        figures: &[fig(
            RESULTS,
            WIRE,
            "polling|100 one at a time",
            "bytes up/msg (relay)",
            "101.9",
        )],
    },
    Claim {
        file: "docs/longpoll.md",
        phrase: "a burst of 1,000 cost 100.3 bytes per message",
        figures: &[fig(
            RESULTS,
            WIRE,
            "longpoll|burst of 1000",
            "bytes down/msg (relay)",
            "100.3",
        )],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "the 76 bytes a minute of the idle SSE row",
        figures: &[fig(RESULTS, IDLE, "sse", "bytes down/min", "76")],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "4.1 KiB of server memory per connected stream",
        figures: &[fig(
            RESULTS,
            IDLE_MEMORY,
            "sse",
            "KiB per idle connection",
            "4.1",
        )],
    },
    Claim {
        file: "docs/comparison.md",
        phrase: "an idle connection costs 3.9 to 5.9 KiB",
        figures: &[
            fig(
                RESULTS,
                IDLE_MEMORY,
                "stream",
                "KiB per idle connection",
                "3.9",
            ),
            fig(
                RESULTS,
                IDLE_MEMORY,
                "websocket",
                "KiB per idle connection",
                "5.9",
            ),
        ],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "It was 17.0 KiB",
        figures: &[fig(RESULTS, MEMORY, "sse", "KiB per connection", "17.0")],
    },
    Claim {
        file: "docs/sse.md",
        phrase: "22.7 KiB allocated per connection, 72% of it (16.4 KiB)",
        figures: &[
            fig(MEASUREMENTS, HEAP, HEAP_ALL, "per connection", "22.7 KiB"),
            fig(
                MEASUREMENTS,
                HEAP,
                HEAP_BUFFERS,
                "per connection",
                "16.4 KiB",
            ),
        ],
    },
    Claim {
        file: "docs/websocket.md",
        phrase: "16.1 KiB of server memory per connected socket",
        figures: &[fig(
            RESULTS,
            MEMORY,
            "websocket",
            "KiB per connection",
            "16.1",
        )],
    },
    Claim {
        file: "docs/streaming.md",
        phrase: "14.6 KiB of server memory per connected stream, against SSE's 17.0 KiB",
        figures: &[
            fig(RESULTS, MEMORY, "stream", "KiB per connection", "14.6"),
            fig(RESULTS, MEMORY, "sse", "KiB per connection", "17.0"),
        ],
    },
    // The chaos run (`loadgen --chaos --write-results docs`).
    Claim {
        file: "docs/pitfalls.md",
        phrase: "4,480 forced disconnects (2,277 closes, 2,203 resets; the machine's TCP stack \
                 counted 2,728 resets sent) over 4,519 connections",
        figures: &[
            fig(RESULTS, CHAOS, "**all**", "forced disconnects", "4,480"),
            fig(RESULTS, CHAOS, "**all**", "closes (FIN)", "2,277"),
            fig(RESULTS, CHAOS, "**all**", "resets (RST)", "2,203"),
            fig(RESULTS, CHAOS, "**all**", "connections", "4,519"),
        ],
    },
];
