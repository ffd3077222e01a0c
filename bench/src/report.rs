//! What a comparison says: one [`Row`] per forwarder and setting, printed as
//! a table on the terminal, written as a JSON array, and drawn as an SVG
//! (pps bars with min/max whiskers beside the latency CDFs).

use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::gen::Traffic;
use crate::sink::SinkCounts;
use crate::stats::Spread;

/// Percentiles at which a latency CDF is kept for the plot.
const CDF_PERCENTILES: &[f64] =
    &[1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0];

/// CPU cost on the device under test, per forwarded packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuCost {
    /// The DUT's NAPI kernel threads (receive, XDP, and for XDP_TX the transmit).
    pub kernel_napi_ns_per_packet: f64,
    /// Every thread of the forwarder process (0 for in-kernel forwarders).
    pub forwarder_ns_per_packet: f64,
    /// The user-mode part of the forwarder's time.
    pub forwarder_user_ns_per_packet: f64,
    /// How it was counted.
    pub counted: String,
}

/// Latency of a paced run, from the sink's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Median, ns.
    pub p50: u64,
    /// 99th percentile, ns.
    pub p99: u64,
    /// 99.9th percentile, ns.
    pub p999: u64,
    /// Largest sample, ns.
    pub max: u64,
    /// The rate the paced run delivered, frames/s.
    pub at_pps: f64,
    /// The rate the generator offered in that run, frames/s.
    pub offered_pps: f64,
    /// Samples the figures come from.
    pub samples: u64,
    /// Samples lost (ring full) or unreadable (no plausible timestamp).
    pub samples_lost: u64,
    /// (percentile, ns) points of the CDF.
    pub cdf: Vec<(f64, u64)>,
    /// Drop and error counters of the veth ends that moved in this run.
    pub losses: std::collections::BTreeMap<String, u64>,
}

impl LatencySummary {
    /// Summarises `histogram`; the delivered and offered rates and the
    /// sink's counters are recorded beside it.
    pub fn from_histogram(
        histogram: &Histogram<u64>,
        at_pps: f64,
        offered_pps: f64,
        counts: SinkCounts,
    ) -> Self {
        let q = |p: f64| histogram.value_at_quantile(p / 100.0);
        Self {
            p50: q(50.0),
            p99: q(99.0),
            p999: q(99.9),
            max: histogram.max(),
            at_pps,
            offered_pps,
            samples: histogram.len(),
            samples_lost: counts.ring_full + counts.bad_timestamp,
            cdf: CDF_PERCENTILES.iter().map(|&p| (p, q(p))).collect(),
            losses: std::collections::BTreeMap::new(),
        }
    }
}

/// One forwarder in one setting: the JSON object of the contract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `generator_ceiling`, `xdp_tx`, `testpmd_macswap`, `kernel_forward` or `xdplb`.
    pub forwarder: String,
    /// What else tells this row apart (e.g. "poll=busy").
    pub variant: Option<String>,
    /// What the frames carried.
    pub traffic: Traffic,
    /// Frame length without FCS.
    pub frame_bytes: usize,
    /// Distinct 5-tuples.
    pub flows: u32,
    /// DUT workers (queues, cores).
    pub workers: u32,
    /// Measured runs.
    pub runs: usize,
    /// Seconds per measured run.
    pub duration_s: f64,
    /// Frames per second delivered back to the sink (for the ceiling: into
    /// the DUT's XDP_DROP).
    pub pps: Spread,
    /// Frames per second the generator ran during the same runs.
    pub generator_pps: Option<Spread>,
    /// Share of wall time the generator's thread got its core during the
    /// full-speed runs: well below 1 means other work shared the core
    /// (a busy machine), and the figures are low for that reason.
    pub generator_cpu_share: Option<Spread>,
    /// The generator's ceiling (into XDP_DROP) measured in the same runs.
    pub generator_ceiling_pps: Option<Spread>,
    /// Whether the median reached 90 % of the ceiling: the figure then says
    /// more about the generator than about the forwarder.
    pub generator_bound: bool,
    /// Latency at half this forwarder's median rate.
    pub latency_ns: Option<LatencySummary>,
    /// Median pps over xdp_tx's.
    pub ratio_to_xdp_tx: Option<f64>,
    /// Median pps over testpmd's; null when testpmd did not run.
    pub ratio_to_testpmd: Option<f64>,
    /// DUT CPU time per delivered packet, ns (see `cpu`).
    pub cpu_ns_per_packet: f64,
    /// Its parts and how it was counted.
    pub cpu: CpuCost,
    /// Which core ran what.
    pub cpu_placement: String,
    /// The forwarder's own counters over all measured runs, warm-ups
    /// included (xdplb's final counters); null for the others.
    pub forwarder_counters: Option<std::collections::BTreeMap<String, u64>>,
    /// Where frames were lost over the measured runs: the drop and error
    /// counters of both veth ends that moved ("gen." / "dut." + the
    /// `ethtool -S` name; e.g. `dut.rx_queue_0_drops`: the DUT's receive
    /// ring was full).
    pub losses: std::collections::BTreeMap<String, u64>,
    /// What the reader must know to read this row (e.g. which receive
    /// queues were fed); null when nothing.
    #[serde(default)]
    pub note: Option<String>,
    /// Frames each of the DUT's receive queues took in over the measured
    /// runs (veth `rx_queue_N_xdp_packets`), by queue.
    #[serde(default)]
    pub dut_rx_queue_frames: Vec<u64>,
    /// xdplb: each worker's busy seconds (`xdplb status --json`
    /// `worker_stats`), by the queue it serves, added up over the runs'
    /// processes (warm-ups included); empty for the others.
    #[serde(default)]
    pub worker_busy_seconds: Vec<f64>,
    /// The SYN-flood setting's insertion and full-table figures; null in
    /// the other rows.
    #[serde(default)]
    pub syn_flood: Option<SynFlood>,
    /// xdplb's main rows: kernel XDP_TX paced at this row's latency rate,
    /// the reference the latency goal names ("p99 at the same rate"); null
    /// elsewhere and with `--quick`.
    #[serde(default)]
    pub xdp_tx_latency_same_rate: Option<LatencySummary>,
    /// `latency_ns.p99` over `xdp_tx_latency_same_rate.p99`.
    #[serde(default)]
    pub p99_ratio_to_xdp_tx_same_rate: Option<f64>,
}

/// The SYN-flood row: every frame a TCP SYN of a new 5-tuple against a
/// small flow table, each run starting with an empty one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynFlood {
    /// Flow-table entries of the worker (`flow_table_size`).
    pub flow_table_size: u32,
    /// Frames the worker took in, per run (`worker.rx`).
    pub received: Vec<u64>,
    /// Flows inserted and their SYN forwarded, per run (`worker.forward.new_flow`).
    pub new_flows: Vec<u64>,
    /// SYNs dropped because the table was full, per run (`worker.drop.flow_table_full`).
    pub flow_table_full: Vec<u64>,
    /// Frames the worker took in per second of generator time: how fast it
    /// turns a flood away once the table is full.
    pub received_pps: Option<Spread>,
    /// The DUT's CPU time (NAPI + xdplb) per frame the worker took in, ns.
    pub cpu_ns_per_received_frame: f64,
    /// Whether some run inserted more flows than the table holds, which
    /// only eviction could make room for.
    pub evicted: bool,
}

impl SynFlood {
    /// The summary of per-run counters; `dut_ns` is the DUT's CPU time over
    /// all runs.
    pub fn new(
        flow_table_size: u32,
        received: Vec<u64>,
        new_flows: Vec<u64>,
        flow_table_full: Vec<u64>,
        received_pps: Option<Spread>,
        dut_ns: u64,
    ) -> Self {
        let total: u64 = received.iter().sum();
        Self {
            cpu_ns_per_received_frame: if total > 0 { dut_ns as f64 / total as f64 } else { 0.0 },
            evicted: new_flows.iter().any(|&n| n > u64::from(flow_table_size)),
            flow_table_size,
            received,
            new_flows,
            flow_table_full,
            received_pps,
        }
    }

    /// What the flood showed, in a sentence.
    pub fn note(&self) -> String {
        let max_new = self.new_flows.iter().copied().max().unwrap_or(0);
        let full: u64 = self.flow_table_full.iter().sum();
        let rate = self.received_pps.map_or(0.0, |s| s.median / 1e6);
        let policy = if self.evicted {
            "more than the table holds: entries were evicted".to_owned()
        } else if full > 0 {
            "then every further SYN was dropped and counted as flow_table_full, none evicted"
                .to_owned()
        } else {
            "the table never filled".to_owned()
        };
        format!(
            "a new 5-tuple per frame against flow_table_size={}: at most {max_new} flows \
             inserted per run, {policy} ({full} in all); the worker took in {rate:.3} Mpps \
             ({:.0} ns of DUT CPU per frame); pps counts only the forwarded SYNs",
            self.flow_table_size, self.cpu_ns_per_received_frame
        )
    }
}

impl Row {
    /// "xdplb poll=busy" or "xdp_tx".
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{} {v}", self.forwarder),
            None => self.forwarder.clone(),
        }
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing a file.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// Serialising.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Drawing.
    #[error("drawing {path}: {reason}")]
    Plot {
        /// The file.
        path: String,
        /// What plotters said.
        reason: String,
    },
}

/// The rows as the JSON array of the contract.
pub fn to_json(rows: &[Row]) -> Result<String, ReportError> {
    Ok(serde_json::to_string_pretty(rows)?)
}

/// Reads rows back from a JSON array written by [`write_json`].
pub fn read_json(path: &Path) -> Result<Vec<Row>, ReportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ReportError::Write { path: path.display().to_string(), source })?;
    Ok(serde_json::from_str(&text)?)
}

/// Writes the JSON array to `path`.
pub fn write_json(rows: &[Row], path: &Path) -> Result<(), ReportError> {
    let mut text = to_json(rows)?;
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|source| ReportError::Write { path: path.display().to_string(), source })
}

/// The terminal table.
pub fn table(rows: &[Row], skipped: &[(String, String)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:>6} {:>7} {:>24} {:>8} {:>7} {:>7} {:>20} {:>9} {:>9}",
        "forwarder",
        "bytes",
        "flows",
        "Mpps min/median/max",
        "gen Mpps",
        "/xdp_tx",
        "/tpmd",
        "lat p50/p99/p99.9 µs",
        "ns/pkt",
        "user ns"
    );
    let mut notes = Vec::new();
    for row in rows {
        let mark = match &row.note {
            Some(note) => {
                notes.push((row.label(), note.clone()));
                format!("  [{}]", notes.len())
            }
            None => String::new(),
        };
        let pps = row.pps.scaled(1e6);
        let ratio = |r: Option<f64>| r.map_or("-".to_owned(), |r| format!("{r:.2}"));
        let latency = row.latency_ns.as_ref().map_or("-".to_owned(), |l| {
            format!(
                "{:.1}/{:.1}/{:.1}",
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3,
                l.p999 as f64 / 1e3
            )
        });
        let _ = writeln!(
            out,
            "{:<32} {:>6} {:>7} {:>24} {:>8} {:>7} {:>7} {:>20} {:>9.0} {:>9.0}{}{}",
            row.label(),
            row.frame_bytes,
            row.flows,
            format!("{:.3}/{:.3}/{:.3}", pps.min, pps.median, pps.max),
            row.generator_pps.map_or("-".to_owned(), |g| format!("{:.3}", g.median / 1e6)),
            ratio(row.ratio_to_xdp_tx),
            ratio(row.ratio_to_testpmd),
            latency,
            row.cpu_ns_per_packet,
            row.cpu.forwarder_user_ns_per_packet,
            if row.generator_bound { "  (generator-bound)" } else { "" },
            mark,
        );
    }
    for (name, why) in skipped {
        let _ = writeln!(out, "{name:<32} skipped: {why}");
    }
    for row in rows {
        if let (Some(own), Some(reference)) = (&row.latency_ns, &row.xdp_tx_latency_same_rate) {
            let _ = writeln!(
                out,
                "same rate: {} ({} flows) p99 {:.1} µs at {:.3} Mpps; xdp_tx p99 {:.1} µs at {:.3} \
                 Mpps: {}",
                row.label(),
                row.flows,
                own.p99 as f64 / 1e3,
                own.at_pps / 1e6,
                reference.p99 as f64 / 1e3,
                reference.at_pps / 1e6,
                row.p99_ratio_to_xdp_tx_same_rate
                    .map_or("-".to_owned(), |r| format!("{r:.2} × XDP_TX's p99")),
            );
        }
    }
    for (i, (label, note)) in notes.iter().enumerate() {
        let _ = writeln!(out, "[{}] {label}: {note}", i + 1);
    }
    out
}

/// Draws the pps bars (median, min-max whiskers) and the latency CDFs.
pub fn write_svg(rows: &[Row], path: &Path) -> Result<(), ReportError> {
    let plot_err = |e: &dyn std::fmt::Display| ReportError::Plot {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let (left, right) = root.split_horizontally(640);

    let n = rows.len().max(1);
    let top = rows.iter().map(|r| r.pps.max / 1e6).fold(0.1, f64::max) * 1.1;
    let labels: Vec<String> = rows.iter().map(|r| format!("{} f={}", r.label(), r.flows)).collect();
    let mut bars = ChartBuilder::on(&left)
        .caption("Frames per second delivered (median, min-max)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(230)
        .build_cartesian_2d(0f64..top, (0..n).into_segmented())
        .map_err(|e| plot_err(&e))?;
    bars.configure_mesh()
        .disable_y_mesh()
        .x_desc("Mpps")
        .y_labels(n)
        .y_label_formatter(&|y| match y {
            // Row 0 at the top: segment n-1 holds it.
            SegmentValue::CenterOf(i) if *i < n => labels[n - 1 - *i].clone(),
            _ => String::new(),
        })
        .y_label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| plot_err(&e))?;
    for (i, row) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pps = row.pps.scaled(1e6);
        let at = n - 1 - i;
        let mut bar = Rectangle::new(
            [(0.0, SegmentValue::Exact(at)), (pps.median, SegmentValue::Exact(at + 1))],
            color.filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bars.draw_series(std::iter::once(bar)).map_err(|e| plot_err(&e))?;
        bars.draw_series(std::iter::once(PathElement::new(
            vec![(pps.min, SegmentValue::CenterOf(at)), (pps.max, SegmentValue::CenterOf(at))],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| plot_err(&e))?;
    }

    let with_latency: Vec<(usize, &Row, &LatencySummary)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.latency_ns.as_ref().map(|l| (i, r, l)))
        .collect();
    let max_us = with_latency
        .iter()
        .flat_map(|(_, _, l)| l.cdf.iter().map(|(_, ns)| *ns as f64 / 1e3))
        .fold(1.0, f64::max)
        * 1.1;
    let mut cdf = ChartBuilder::on(&right)
        .caption("Latency CDF at half of each forwarder's rate", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((0.1f64..max_us).log_scale(), 0f64..100.0)
        .map_err(|e| plot_err(&e))?;
    cdf.configure_mesh()
        .x_desc("latency, µs (log)")
        .y_desc("percentile")
        .draw()
        .map_err(|e| plot_err(&e))?;
    for (i, row, latency) in with_latency {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> =
            latency.cdf.iter().map(|(p, ns)| ((*ns as f64 / 1e3).max(0.1), *p)).collect();
        cdf.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| plot_err(&e))?
            .label(format!("{} f={}", row.label(), row.flows))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    cdf.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn row(forwarder: &str, median: f64, latency: bool) -> Row {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in 1..=1000u64 {
            histogram.record(v * 100).unwrap();
        }
        Row {
            forwarder: forwarder.to_owned(),
            variant: None,
            traffic: Traffic::Udp,
            frame_bytes: 64,
            flows: 100_000,
            workers: 1,
            runs: 3,
            duration_s: 1.0,
            pps: Spread { min: median * 0.9, median, max: median * 1.1 },
            generator_pps: None,
            generator_cpu_share: None,
            generator_ceiling_pps: Some(Spread { min: 8e6, median: 8e6, max: 8e6 }),
            generator_bound: false,
            latency_ns: latency.then(|| {
                LatencySummary::from_histogram(
                    &histogram,
                    median / 2.0,
                    median / 2.0,
                    SinkCounts::default(),
                )
            }),
            ratio_to_xdp_tx: Some(1.0),
            ratio_to_testpmd: None,
            cpu_ns_per_packet: 150.0,
            cpu: CpuCost {
                kernel_napi_ns_per_packet: 150.0,
                forwarder_ns_per_packet: 0.0,
                forwarder_user_ns_per_packet: 0.0,
                counted: "test".to_owned(),
            },
            cpu_placement: "cpu 0 / cpu 1".to_owned(),
            forwarder_counters: None,
            losses: std::collections::BTreeMap::new(),
            note: None,
            dut_rx_queue_frames: vec![100, 0],
            xdp_tx_latency_same_rate: None,
            p99_ratio_to_xdp_tx_same_rate: None,
            worker_busy_seconds: Vec::new(),
            syn_flood: None,
        }
    }

    /// The JSON carries every key of the contract, with the right
    /// types, and null where a reference is absent.
    #[test]
    fn json_has_the_contract_keys() {
        let rows = vec![row("xdp_tx", 3e6, true), row("xdplb", 1.5e6, false)];
        let value: serde_json::Value = serde_json::from_str(&to_json(&rows).unwrap()).unwrap();
        let array = value.as_array().unwrap();
        assert_eq!(array.len(), 2);
        let first = &array[0];
        assert_eq!(first["forwarder"], "xdp_tx");
        for key in ["frame_bytes", "flows", "workers", "cpu_ns_per_packet", "ratio_to_xdp_tx"] {
            assert!(first[key].is_number(), "{key}");
        }
        for key in ["min", "median", "max"] {
            assert!(first["pps"][key].is_number(), "pps.{key}");
        }
        for key in ["p50", "p99", "p999"] {
            assert!(first["latency_ns"][key].is_u64(), "latency_ns.{key}");
        }
        // hdrhistogram reports the top of the bucket (3 significant digits).
        let p50 = first["latency_ns"]["p50"].as_u64().unwrap();
        assert!((50_000..=50_050).contains(&p50), "{p50}");
        assert!(first["ratio_to_testpmd"].is_null());
        assert!(first["cpu_placement"].is_string());
        assert!(first["cpu"]["counted"].is_string());
        assert!(array[1]["latency_ns"].is_null());
    }

    #[test]
    fn table_has_a_line_per_row_and_per_skip() {
        let rows = vec![row("xdp_tx", 3e6, true), row("xdplb", 1.5e6, false)];
        let skipped = vec![("testpmd_macswap".to_owned(), "not installed".to_owned())];
        let text = table(&rows, &skipped);
        assert_eq!(text.lines().count(), 1 + 2 + 1);
        assert!(text.contains("2.700/3.000/3.300"), "{text}");
        assert!(text.contains("testpmd_macswap") && text.contains("not installed"));
    }

    #[test]
    fn notes_become_footnotes() {
        let mut noted = row("xdplb", 1.0e6, false);
        noted.note = Some("the second worker idled".to_owned());
        let rows = vec![row("xdp_tx", 3e6, true), noted];
        let text = table(&rows, &[]);
        assert_eq!(text.lines().count(), 1 + 2 + 1);
        let marked = text.lines().find(|l| l.starts_with("xdplb")).unwrap();
        assert!(marked.ends_with("[1]"), "{text}");
        assert!(text.lines().last().unwrap().starts_with("[1] xdplb: the second"), "{text}");
    }

    #[test]
    fn syn_flood_summary_tells_eviction_from_the_full_table_policy() {
        let spread = Some(Spread { min: 1e6, median: 1e6, max: 1e6 });
        let kept =
            SynFlood::new(100, vec![1000, 900], vec![100, 100], vec![900, 800], spread, 1900);
        assert!(!kept.evicted);
        assert_eq!(kept.cpu_ns_per_received_frame, 1.0);
        assert!(kept.note().contains("none evicted"), "{}", kept.note());
        let evicting = SynFlood::new(100, vec![1000], vec![1000], vec![0], spread, 0);
        assert!(evicting.evicted);
        assert!(evicting.note().contains("evicted"));
        assert!(SynFlood::new(100, vec![50], vec![50], vec![0], None, 0)
            .note()
            .contains("never filled"));
    }

    /// JSON written before the new keys existed still reads.
    #[test]
    fn rows_without_the_new_keys_read_back() {
        let mut value = serde_json::to_value(row("xdp_tx", 3e6, false)).unwrap();
        let object = value.as_object_mut().unwrap();
        for key in ["note", "dut_rx_queue_frames", "worker_busy_seconds", "syn_flood"] {
            object.remove(key).unwrap();
        }
        let back: Row = serde_json::from_value(value).unwrap();
        assert_eq!(back.note, None);
        assert!(back.dut_rx_queue_frames.is_empty());
    }

    #[test]
    fn svg_is_written() {
        let rows = vec![row("xdp_tx", 3e6, true), row("xdplb", 1.5e6, true)];
        let path =
            std::env::temp_dir().join(format!("xdplb-bench-test-{}.svg", std::process::id()));
        write_svg(&rows, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(text.starts_with("<svg") || text.contains("<svg"));
        assert!(text.contains("xdp_tx") && text.contains("Latency CDF"));
    }
}
