//! What a `wsgi_status` location answers: the zone's figures, summed over
//! the totals and the running workers, as JSON or in Prometheus' text
//! format. The JSON names are the Prometheus names without `ngx_wsgi_`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::zone::{self, Slot};
use super::{Counter, Gauge, BUCKETS, COUNTERS, GAUGES, HISTOGRAMS};
use crate::rss;

pub enum Format {
    Json,
    Prometheus,
}

/// A counter family: its name, help, and the label of each counter.
struct Family {
    name: &'static str,
    help: &'static str,
    /// (label name, [(label value, counter index)]); no label: one counter.
    label: Option<&'static str>,
    counters: &'static [(&'static str, usize)],
}

const FAMILIES: [Family; 10] = [
    Family {
        name: "requests_total",
        help: "Requests the module took, by where their app runs.",
        label: Some("mode"),
        counters: &[("inline", 0), ("threads", 1), ("asgi", 18)],
    },
    Family {
        name: "responses_total",
        help: "Responses to the module's requests, by status class.",
        label: Some("class"),
        counters: &[("1xx", 2), ("2xx", 3), ("3xx", 4), ("4xx", 5), ("5xx", 6)],
    },
    Family {
        name: "app_exceptions_total",
        help: "Exceptions an app raised, its import included (logged with their traceback).",
        label: None,
        counters: &[("", 7)],
    },
    Family {
        name: "read_timeouts_total",
        help: "Calls into an app that took longer than wsgi_read_timeout.",
        label: None,
        counters: &[("", 8)],
    },
    Family {
        name: "refused_total",
        help: "Requests answered 503 without their app: the queue was full, or no thread was free in time.",
        label: Some("reason"),
        counters: &[("queue_full", 9), ("queue_timeout", 10)],
    },
    Family {
        name: "client_aborts_total",
        help: "Requests whose client went away before the response's end.",
        label: None,
        counters: &[("", 11)],
    },
    Family {
        name: "recycles_total",
        help: "Workers that retired, by reason.",
        label: Some("reason"),
        counters: &[("max_requests", 12), ("max_rss", 13), ("stuck", 14)],
    },
    Family {
        name: "sent_bytes_total",
        help: "Bytes sent to clients for the module's requests, headers included.",
        label: None,
        counters: &[("", 15)],
    },
    Family {
        name: "request_body_bytes_total",
        help: "Request body bytes handed to apps.",
        label: None,
        counters: &[("", 16)],
    },
    Family {
        name: "app_import_failures_total",
        help: "Times an app could not be imported.",
        label: None,
        counters: &[("", 17)],
    },
];

const GAUGE_NAMES: [(&str, &str); GAUGES] = [
    ("requests_in_flight", "Requests the module has now."),
    ("threads", "Pool threads (wsgi_threads), over every pool."),
    ("threads_busy", "Pool threads inside a request now."),
    ("queue_length", "Requests waiting for a pool thread now."),
];

const HISTOGRAM_NAMES: [(&str, &str); HISTOGRAMS] = [
    (
        "queue_wait_seconds",
        "How long requests waited for a pool thread.",
    ),
    ("app_seconds", "From calling the app to its response's end."),
];

/// One running worker, as the zone has it.
struct Worker {
    pid: u64,
    requests: u64,
    rss: Option<u64>,
    in_flight: i64,
}

/// The zone's figures at one moment.
struct Snapshot {
    counters: [u64; COUNTERS],
    gauges: [i64; GAUGES],
    /// Per histogram: its buckets (not cumulative, +Inf last) and sum (µs).
    histograms: [([u64; BUCKETS.len() + 1], u64); HISTOGRAMS],
    workers: Vec<Worker>,
}

fn add_slot(s: &mut Snapshot, slot: &Slot) {
    for (total, cell) in s.counters.iter_mut().zip(&slot.counters) {
        *total += cell.load(Ordering::Relaxed);
    }
    for (total, cell) in s.gauges.iter_mut().zip(&slot.gauges) {
        *total += cell.load(Ordering::Relaxed) as i64;
    }
    for ((buckets, sum), cell) in s.histograms.iter_mut().zip(&slot.histograms) {
        for (b, c) in buckets.iter_mut().zip(&cell.buckets) {
            *b += c.load(Ordering::Relaxed);
        }
        *sum += cell.sum_us.load(Ordering::Relaxed);
    }
}

fn snapshot() -> Snapshot {
    let mut s = Snapshot {
        counters: [0; COUNTERS],
        gauges: [0; GAUGES],
        histograms: [([0; BUCKETS.len() + 1], 0); HISTOGRAMS],
        workers: Vec::new(),
    };
    let Some(zone) = zone::get() else {
        return s;
    };
    add_slot(&mut s, &zone.totals);
    for slot in &zone.slots {
        let pid = slot.pid.load(Ordering::Relaxed);
        // A worker that died without exit_process left its slot: its
        // counts stay in the sums until a new worker takes the slot.
        if pid == 0 {
            continue;
        }
        add_slot(&mut s, slot);
        // SAFETY: kill with signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid as libc::pid_t, 0) } != 0 {
            continue;
        }
        let requests = slot.counters[Counter::RequestsInline as usize].load(Ordering::Relaxed)
            + slot.counters[Counter::RequestsThreads as usize].load(Ordering::Relaxed)
            + slot.counters[Counter::RequestsAsgi as usize].load(Ordering::Relaxed);
        s.workers.push(Worker {
            pid,
            requests,
            rss: rss::resident_bytes(Some(pid)),
            in_flight: slot.gauges[Gauge::InFlight as usize].load(Ordering::Relaxed) as i64,
        });
    }
    s
}

/// The status page in `format`; `python` is the version the module runs.
pub fn render(format: Format, python: &str) -> String {
    let s = snapshot();
    match format {
        Format::Json => json(&s, python),
        Format::Prometheus => prometheus(&s, python),
    }
}

fn bound(b: f64) -> String {
    format!("{b}")
}

fn json(s: &Snapshot, python: &str) -> String {
    let mut out = String::from("{");
    for family in &FAMILIES {
        match family.label {
            None => write!(
                out,
                "\"{}\":{},",
                family.name, s.counters[family.counters[0].1]
            ),
            Some(_) => {
                let values: Vec<String> = family
                    .counters
                    .iter()
                    .map(|(label, i)| format!("\"{label}\":{}", s.counters[*i]))
                    .collect();
                write!(out, "\"{}\":{{{}}},", family.name, values.join(","))
            }
        }
        .ok();
    }
    for ((name, _), value) in GAUGE_NAMES.iter().zip(s.gauges) {
        write!(out, "\"{name}\":{value},").ok();
    }
    for ((name, _), (buckets, sum_us)) in HISTOGRAM_NAMES.iter().zip(&s.histograms) {
        let mut cumulative = 0;
        let mut cells = Vec::new();
        for (i, count) in buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| bound(*b));
            cells.push(format!("\"{le}\":{cumulative}"));
        }
        write!(
            out,
            "\"{name}\":{{\"buckets\":{{{}}},\"sum\":{:.6},\"count\":{cumulative}}},",
            cells.join(","),
            *sum_us as f64 / 1e6
        )
        .ok();
    }
    let workers: Vec<String> = s
        .workers
        .iter()
        .map(|w| {
            format!(
                "{{\"pid\":{},\"requests_total\":{},\"resident_memory_bytes\":{},\"requests_in_flight\":{}}}",
                w.pid,
                w.requests,
                w.rss.map_or("null".to_owned(), |r| r.to_string()),
                w.in_flight
            )
        })
        .collect();
    writeln!(
        out,
        "\"workers\":[{}],\"python_version\":\"{python}\"}}",
        workers.join(",")
    )
    .ok();
    out
}

fn prometheus(s: &Snapshot, python: &str) -> String {
    let mut out = String::new();
    for family in &FAMILIES {
        let name = format!("ngx_wsgi_{}", family.name);
        writeln!(out, "# HELP {name} {}\n# TYPE {name} counter", family.help).ok();
        for (label, i) in family.counters {
            match family.label {
                None => writeln!(out, "{name} {}", s.counters[*i]),
                Some(key) => writeln!(out, "{name}{{{key}=\"{label}\"}} {}", s.counters[*i]),
            }
            .ok();
        }
    }
    for ((name, help), value) in GAUGE_NAMES.iter().zip(s.gauges) {
        writeln!(
            out,
            "# HELP ngx_wsgi_{name} {help}\n# TYPE ngx_wsgi_{name} gauge\nngx_wsgi_{name} {value}"
        )
        .ok();
    }
    for ((name, help), (buckets, sum_us)) in HISTOGRAM_NAMES.iter().zip(&s.histograms) {
        writeln!(
            out,
            "# HELP ngx_wsgi_{name} {help}\n# TYPE ngx_wsgi_{name} histogram"
        )
        .ok();
        let mut cumulative = 0;
        for (i, count) in buckets.iter().enumerate() {
            cumulative += count;
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| bound(*b));
            writeln!(out, "ngx_wsgi_{name}_bucket{{le=\"{le}\"}} {cumulative}").ok();
        }
        writeln!(
            out,
            "ngx_wsgi_{name}_sum {:.6}\nngx_wsgi_{name}_count {cumulative}",
            *sum_us as f64 / 1e6
        )
        .ok();
    }
    let workers = "ngx_wsgi_worker";
    writeln!(
        out,
        "# HELP {workers}_requests_total Requests each running worker took.\n# TYPE {workers}_requests_total counter"
    )
    .ok();
    for w in &s.workers {
        writeln!(
            out,
            "{workers}_requests_total{{pid=\"{}\"}} {}",
            w.pid, w.requests
        )
        .ok();
    }
    writeln!(
        out,
        "# HELP {workers}_resident_memory_bytes Each running worker's resident set size.\n# TYPE {workers}_resident_memory_bytes gauge"
    )
    .ok();
    for w in &s.workers {
        if let Some(rss) = w.rss {
            writeln!(
                out,
                "{workers}_resident_memory_bytes{{pid=\"{}\"}} {rss}",
                w.pid
            )
            .ok();
        }
    }
    writeln!(
        out,
        "# HELP ngx_wsgi_info The module's Python.\n# TYPE ngx_wsgi_info gauge\nngx_wsgi_info{{python_version=\"{python}\"}} 1"
    )
    .ok();
    out
}
