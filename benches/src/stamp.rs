//! What a results page says about its run: the command as a user would type
//! it, the machine, the time, and how busy the machine was.

use chat_loadgen::process;

/// The command as a user would type it, from this process's arguments.
pub fn command_line(args: &str) -> String {
    let flags: Vec<&str> = args.split(' ').skip(1).collect();
    let mut line = "cargo run --release -p chat-benches --bin compare".to_owned();
    if !flags.is_empty() {
        line.push_str(" -- ");
        line.push_str(&flags.join(" "));
    }
    line
}

/// The CPU model, from `/proc/cpuinfo`.
pub fn machine() -> String {
    process::cpu_model().unwrap_or_else(|| "an unknown CPU".to_owned())
}

/// The date and time now, as `date -u` prints it.
pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "an unknown date".to_owned())
}

/// The one-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// The number of cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
